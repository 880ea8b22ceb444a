"""The ``photos`` data set (:mod:`semcom.photos`) and the codec at another input size.

- every source photo loads from its installed package (no download), with the documented size;
- the split is by photo: no test photo is a train photo, every train patch is a window of its
  own train photo and every test crop a window of its own test photo, at the documented grid;
- test crops, whole windows and option errors (one line, naming the field);
- :func:`semcom.models.build.at_input_shape` keeps the weights (the copy's features equal the
  convolutions applied to the larger image) and refuses size-dependent models;
- a scenario trains on the patches and evaluates on crops, reporting MS-SSIM next to PSNR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from channels.errors import ConfigError
from semcom.cli import main
from semcom.data import image_shape, load_dataset, resolve_options
from semcom.models.build import at_input_shape, build_model
from semcom.photos import TEST_SOURCES, TRAIN_SOURCES, photo, whole_shape

ROOT = Path(__file__).resolve().parents[2]
SIZES = {
    "astronaut": (512, 512), "rocket": (427, 640), "hubble_deep_field": (872, 1000),
    "immunohistochemistry": (512, 512), "retina": (1411, 1411), "motorcycle": (500, 741),
    "coffee": (400, 600), "chelsea": (300, 451), "china": (427, 640), "flower": (427, 640),
    "grace_hopper": (600, 512),
}  # fmt: skip


def test_every_photo_loads_offline_with_its_size() -> None:
    assert set(SIZES) == {*TRAIN_SOURCES, *TEST_SOURCES}
    for source, size in SIZES.items():
        image = photo(source)
        assert image.shape == (*size, 3) and image.dtype == np.uint8
        assert not image.flags.writeable
    with pytest.raises(ConfigError, match="photo: 'lily' is invalid"):
        photo("lily")


def test_split_is_by_photo() -> None:
    assert not set(TRAIN_SOURCES) & set(TEST_SOURCES)
    # no test photo is a train photo under another name (as skimage's cat is chelsea)
    for a in TEST_SOURCES:
        for b in TRAIN_SOURCES:
            assert photo(a).shape != photo(b).shape or not np.array_equal(photo(a), photo(b))
    train = load_dataset("photos", "train")
    assert train.images.shape[1:] == (3, 32, 32)
    patches = load_dataset("patches", "train")  # the same photos, the same draw
    assert torch.equal(train.images, patches.images)
    assert set(train.labels.tolist()) == set(range(len(TRAIN_SOURCES)))
    # every train patch is a grid window (stride 32) of the train photo its label names
    rng = np.random.default_rng(0)
    for b in rng.choice(len(train), 40, replace=False):
        source = photo(TRAIN_SOURCES[int(train.labels[b])]).astype(np.float32) / 255
        patch = train.images[b].numpy().transpose(1, 2, 0)
        windows = np.lib.stride_tricks.sliding_window_view(source, (32, 32, 3))[::32, ::32, 0]
        assert np.any(np.all(windows == patch, axis=(2, 3, 4)))
    # and every test crop a window of its own test photo, on the centred grid of stride 128
    test = load_dataset("photos", "test")
    assert tuple(test.images.shape) == (33, 3, 256, 256)
    counts = np.bincount(test.labels.numpy(), minlength=len(TEST_SOURCES)).tolist()
    assert counts == [6, 2, 8, 8, 9]  # coffee, chelsea, china, flower, grace_hopper
    chelsea = photo("chelsea").astype(np.float32) / 255  # 300 x 451: tops 22, lefts 33, 161
    crops = test.images[test.labels == 1].numpy().transpose(0, 2, 3, 1)
    assert np.array_equal(crops[0], chelsea[22:278, 33:289])
    assert np.array_equal(crops[1], chelsea[22:278, 161:417])


def test_crop_options_and_whole_images() -> None:
    disjoint = load_dataset("photos", "test", crop_stride=256)
    assert tuple(disjoint.images.shape) == (11, 3, 256, 256)
    small = load_dataset("photos", "test", crop=64, crop_stride=64, limit=5)
    assert tuple(small.images.shape) == (5, 3, 64, 64)
    whole = load_dataset("photos", "test", whole=True)
    assert whole_shape() == (288, 448)
    assert tuple(whole.images.shape) == (5, 3, 288, 448) and whole.labels.tolist() == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert image_shape("photos", resolve_options("photos", size=16)) == (3, 16, 16)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"crop": 304}, r"crop: 304 is invalid; allowed: .*300"),
        ({"crop": 30}, r"crop: 30 is invalid; allowed: a multiple of 4"),
        ({"crop_stride": 0}, r"crop_stride: 0 is invalid"),
        ({"whole": "yes"}, r"whole: 'yes' is invalid"),
        ({"size": 2}, r"size: 2 is invalid"),
        ({"crops": 256}, r"photos option: 'crops' is invalid"),
    ],
)
def test_bad_options_are_one_line_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_dataset("photos", "test", **options)
    assert "\n" not in str(err.value)


def test_cnn_runs_at_another_size_with_the_same_weights() -> None:
    torch.manual_seed(0)
    small = build_model("cnn", 8, input_shape=[3, 32, 32]).eval()
    big = at_input_shape(small, (3, 64, 96))
    assert big.scalars_per_feature == 16 * 24 and big.n_features == 8
    assert at_input_shape(small, (3, 32, 32)) is small
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        z = big.encode(x)
        reference = torch.tanh(small.encoder(x)).reshape(2, 8, -1)  # the same convolutions
        torch.testing.assert_close(z, reference, rtol=0, atol=0)
        torch.testing.assert_close(big.decode(z), small.decoder(z.reshape(2, 8, 16, 24)))
    with pytest.raises(ConfigError, match="data: .*fully convolutional"):
        at_input_shape(build_model("mlp", 4), (1, 16, 16))
    with pytest.raises(ConfigError, match="data: .*fully convolutional"):
        at_input_shape(build_model("cnn", 64, scalar_features=True), (3, 64, 64))
    with pytest.raises(ConfigError, match="data: .*3 channels"):
        at_input_shape(small, (1, 64, 64))


@pytest.mark.usefixtures("one_thread")
def test_scenario_trains_on_patches_and_reports_ms_ssim_on_crops(tmp_path: Path) -> None:
    out = tmp_path / "out"
    status = main([
        "run", str(ROOT / "scenarios" / "photos.yaml"), "--out", str(out), "--workers", "1",
        "--no-progress", "--set", "schemes=[isfr-uep]", "--set", "training.epochs=1",
        "--set", "training.batch_size=64", "--set", "data.options.limit=64",
        "--set", "data.options.crop=64", "--set", "output.plots=false",
        "--set", "output.parquet=false",
        "--set", "data.options.crop_stride=128", "--set", "data.eval_images=3",
        "--set", "data.calibration_images=8", "--set", "sweep.snr_db=[10]",
        "--set", "stop.min_draws=1", "--set", "stop.max_draws=1",
        "--set", f"training.checkpoint_dir={tmp_path / 'ck'}",
    ])  # fmt: skip
    assert status == 0
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 1
    row = frame.iloc[0]
    assert 0 < row["ms_ssim"] <= 1 and row["ms_ssim_ci_low"] <= row["ms_ssim"]
    assert np.isfinite(row["psnr_db"])
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 3 and per_image["ms_ssim"].between(0, 1).all()
