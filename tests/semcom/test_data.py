"""semcom.data: the embedded sets and the on-disk loaders (fake files made in tmp_path)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from channels.errors import ConfigError
from semcom.data import (
    CIFAR_TRAIN_FILES,
    PATCH_TEST_SOURCES,
    PATCH_TRAIN_SOURCES,
    ImageDataset,
    image_shape,
    load_dataset,
    resolve_options,
)

# ---------------------------------------------------------------------------------------------
# embedded sets


@pytest.fixture(scope="module")
def patches() -> dict[str, ImageDataset]:
    return {split: load_dataset("patches", split) for split in ("train", "test")}


def test_patches_shape_range_and_determinism(patches: dict[str, ImageDataset]) -> None:
    for split, ds in patches.items():
        assert ds.images.dtype == torch.float32 and ds.labels.dtype == torch.int64
        assert ds.input_shape == (3, 32, 32) == image_shape("patches", ds.options)
        assert len(ds) > 300
        assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
        image, label = ds[0]
        assert image.shape == (3, 32, 32) and label.ndim == 0
        again = load_dataset("patches", split)
        assert torch.equal(again.images, ds.images) and torch.equal(again.labels, ds.labels)


def test_patches_split_by_source_image(patches: dict[str, ImageDataset]) -> None:
    assert not set(PATCH_TRAIN_SOURCES) & set(PATCH_TEST_SOURCES)
    # labels are source indices: every source contributes, none beyond its list
    assert set(patches["train"].labels.tolist()) == set(range(len(PATCH_TRAIN_SOURCES)))
    assert set(patches["test"].labels.tolist()) == set(range(len(PATCH_TEST_SOURCES)))
    # no test patch equals any training patch
    train = patches["train"].images.flatten(1)
    test = patches["test"].images.flatten(1)
    assert float(torch.cdist(test, train).min()) > 1e-3
    # flat patches are filtered and no source dominates
    assert float(patches["train"].images.flatten(1).std(1).min()) >= 0.02 - 1e-6
    assert int(patches["train"].labels.bincount().max()) <= 256


def test_patches_options() -> None:
    ds = load_dataset("patches", "test", size=16, stride=16, max_per_image=10, limit=15)
    assert ds.images.shape == (15, 3, 16, 16)
    assert ds.options["max_per_image"] == 10 and ds.options["limit"] == 15
    with pytest.raises(ConfigError, match="size"):
        load_dataset("patches", size=2)
    with pytest.raises(ConfigError, match="patches option"):
        load_dataset("patches", colour=True)
    with pytest.raises(ConfigError, match="limit"):
        load_dataset("patches", limit=0)


def test_digits_split() -> None:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797
    assert len(test) == round(0.2 * 1797)
    assert train.input_shape == (1, 8, 8)
    assert float(train.images.min()) == 0.0 and float(train.images.max()) == 1.0
    assert set(test.labels.tolist()) == set(range(10)) and train.num_classes == 10
    # deterministic, and another seed gives another split
    assert torch.equal(load_dataset("digits", "test").images, test.images)
    assert not torch.equal(load_dataset("digits", "test", seed=1).images, test.images)
    with pytest.raises(ConfigError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.0)


def test_names_and_splits_are_validated() -> None:
    with pytest.raises(ConfigError, match="dataset: 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(ConfigError, match="split: 'val'"):
        load_dataset("digits", "val")
    with pytest.raises(ConfigError, match="root: None"):
        load_dataset("cifar10")
    assert resolve_options("folder")["size"] == 32


# ---------------------------------------------------------------------------------------------
# CIFAR-10


def _write_cifar(folder: Path, n: int = 3) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = {}
    for k, name in enumerate((*CIFAR_TRAIN_FILES, "test_batch")):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [(k + i) % 10 for i in range(n)]
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, fh)
        written[name] = data
    return written


def test_cifar10_loader(tmp_path: Path) -> None:
    written = _write_cifar(tmp_path / "cifar-10-batches-py")
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):  # parent or the folder itself
        train = load_dataset("cifar10", "train", root=root)
        assert train.images.shape == (15, 3, 32, 32)
        first = written["data_batch_1"][0]
        # row = R plane (1024), then G, then B, each row-major 32x32
        assert np.allclose(train.images[0, 0].numpy(), first[:1024].reshape(32, 32) / 255.0)
        assert np.allclose(train.images[0, 2, 0, 5].item(), first[2048 + 5] / 255.0)
        assert train.labels.tolist()[:3] == [0, 1, 2]
    test = load_dataset("cifar10", "test", root=tmp_path, limit=2)
    assert test.images.shape == (2, 3, 32, 32) and test.labels.tolist() == [5, 6]


def test_cifar10_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lacks data_batch_1, data_batch_2"):
        load_dataset("cifar10", "train", root=tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        load_dataset("cifar10", "train", root=tmp_path / "nope")
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match=r"data_batch_3.*CIFAR-10 python batch"):
        load_dataset("cifar10", "train", root=tmp_path)
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(ConfigError, match="test_batch"):
        load_dataset("cifar10", "test", root=tmp_path)


# ---------------------------------------------------------------------------------------------
# MNIST


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(5),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (2, 28, 28)),
        "t10k-labels-idx1-ubyte": np.array([7, 3]),
    }
    for name, array in arrays.items():
        if name.startswith("train"):  # gzipped train files, raw test files
            (root / (name + ".gz")).write_bytes(gzip.compress(_idx(array)))
        else:
            (root / name).write_bytes(_idx(array))
    return arrays


def test_mnist_loader(tmp_path: Path) -> None:
    arrays = _write_mnist(tmp_path)
    train = load_dataset("mnist", "train", root=tmp_path)
    assert train.images.shape == (5, 1, 28, 28) and train.labels.tolist() == [0, 1, 2, 3, 4]
    assert np.allclose(train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte"] / 255.0)
    test = load_dataset("mnist", "test", root=tmp_path)
    assert test.labels.tolist() == [7, 3] and image_shape("mnist", {}) == (1, 28, 28)


def test_mnist_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte\[.gz\]"):
        load_dataset("mnist", "train", root=tmp_path)
    _write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x09\x03garbage")
    with pytest.raises(ConfigError, match=r"t10k-images-idx3-ubyte.*IDX"):
        load_dataset("mnist", "test", root=tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(np.zeros((3, 28, 28))))
    with pytest.raises(ConfigError, match="3 images"):
        load_dataset("mnist", "test", root=tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"truncated gzip")
    with pytest.raises(ConfigError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("mnist", "train", root=tmp_path)


# ---------------------------------------------------------------------------------------------
# image folder


def test_folder_loader_crops_resizes_and_converts(tmp_path: Path) -> None:
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = 200  # the centre square is uniformly 200
    Image.fromarray(wide).save(tmp_path / "a.png")
    Image.fromarray(np.full((64, 64), 100, np.uint8), mode="L").save(tmp_path / "b.jpg")
    Image.fromarray(np.full((32, 32, 4), 50, np.uint8), mode="RGBA").save(tmp_path / "c.png")
    (tmp_path / "notes.txt").write_text("ignored")
    ds = load_dataset("folder", root=tmp_path, size=16)
    assert ds.images.shape == (3, 3, 16, 16) and ds.labels.tolist() == [-1, -1, -1]
    assert np.allclose(ds.images[0].numpy(), 200 / 255.0, atol=1e-6)  # centre crop
    assert np.allclose(ds.images[1].numpy(), 100 / 255.0, atol=2 / 255.0)  # grey -> RGB
    assert np.allclose(ds.images[2].numpy(), 50 / 255.0, atol=1e-6)  # alpha dropped


def test_folder_split_subfolder_and_errors(tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "test" / "x.png")
    assert len(load_dataset("folder", "test", root=tmp_path, size=8)) == 1
    with pytest.raises(ConfigError, match="holds no images"):
        load_dataset("folder", "train", root=tmp_path)
    (tmp_path / "test" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="broken.png"):
        load_dataset("folder", "test", root=tmp_path)
