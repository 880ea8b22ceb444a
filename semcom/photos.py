"""Full-resolution colour photos shipped inside installed packages (the ``photos`` data set).

Nothing is downloaded: every source is a file inside a wheel that is already installed.

============================  ===========  =============================================
source                        size (HxW)   package
============================  ===========  =============================================
astronaut                     512 x 512    scikit-image (``skimage.data``)
rocket                        427 x 640    scikit-image
hubble_deep_field             872 x 1000   scikit-image
immunohistochemistry          512 x 512    scikit-image
retina                        1411 x 1411  scikit-image
motorcycle                    500 x 741    scikit-image (left view of ``stereo_motorcycle``)
coffee                        400 x 600    scikit-image
chelsea                       300 x 451    scikit-image
china                         427 x 640    scikit-learn (``load_sample_images``)
flower                        427 x 640    scikit-learn
grace_hopper                  600 x 512    matplotlib (``mpl-data/sample_data``)
============================  ===========  =============================================

(scikit-image's ``lily``, ``skin`` and ``cells3d`` need a download and are not used;
``colorwheel`` and ``logo`` are synthetic; ``cat`` is ``chelsea``.)

**Split by source photo.** The test split is :data:`TEST_SOURCES` (coffee, chelsea, china,
flower, grace_hopper); the train split is patches of :data:`TRAIN_SOURCES`, the other six,
which are exactly the train sources of the ``patches`` data set: with the same options the train
split equals ``patches``' train split, image for image. No pixel of a test photo is in the
train split, and a model trained on ``patches`` may be evaluated on ``photos`` too.

- **train**: ``size x size`` patches on a grid of stride ``stride`` of each train source, flat
  patches (pixel standard deviation below ``min_std``) dropped, at most ``max_per_image`` per
  source (a seeded subset), as ``patches`` does.
- **test**: ``crop x crop`` crops (default 256) on a grid of stride ``crop_stride`` (default
  ``crop // 2``) centred in each test photo, so every crop lies inside its photo. With the
  defaults this gives 33 crops (coffee 6, chelsea 2, china 8, flower 8, grace_hopper 9).
  Overlapping crops share pixels, so their errors are correlated: the intervals over images
  then treat them as more independent than they are (``crop_stride = crop`` gives 11
  disjoint crops). With ``whole=True`` each test photo is one image instead: its centred
  window of the size common to all test photos (``300 x 451`` rounded down to multiples of
  16, ``288 x 448``), the largest that every photo holds.

Labels are the index of the source in its split's source list (``-1`` never occurs), so an
image can be traced back to its photo.

**The codec at another size.** A model's ``input_shape`` is that of the train split
(:func:`semcom.data.image_shape`). The fully convolutional ``cnn`` (channel features,
``scalar_features=False``) runs at any size that is a multiple of 4: evaluated on ``H x W``
images, feature ``i`` stays latent channel ``i``, now of ``L = (H/4)(W/4)`` scalars (4096 for
256 x 256 instead of 64 for 32 x 32 patches). ``N`` and the meaning of every feature are
unchanged, so the importance weights and the allocation keep their meaning, and the link sends
``L·Q`` bits per feature: the channel uses per pixel (the bandwidth ratio) are the same as on
the patches. :func:`semcom.models.build.at_input_shape` builds that view (same weights).

Examples:
    >>> from semcom.data import load_dataset
    >>> test = load_dataset("photos", "test")
    >>> tuple(test.images.shape), int(test.labels.max())
    ((33, 3, 256, 256), 4)
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from channels.errors import ConfigError

TRAIN_SOURCES = (
    "astronaut",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle",
)
"""Photos whose patches form the train split (the train sources of ``patches``)."""

TEST_SOURCES = ("coffee", "chelsea", "china", "flower", "grace_hopper")
"""Photos whose crops form the test split."""

SKLEARN_SOURCES = ("china", "flower")
WHOLE_MULTIPLE = 16
"""``whole=True`` windows are rounded down to this multiple (a cnn needs multiples of 4)."""

DEFAULTS: dict[str, Any] = {
    "size": 32,
    "stride": 32,
    "max_per_image": 256,
    "min_std": 0.02,
    "seed": 0,
    "crop": 256,
    "crop_stride": None,
    "whole": False,
}
"""Options of the ``photos`` data set (``crop_stride=None`` is ``crop // 2``)."""


@functools.lru_cache(maxsize=16)
def photo(source: str) -> np.ndarray:
    """Source photo ``source`` as read-only uint8 ``[H, W, 3]`` (module docstring's table).

    Raises:
        ConfigError: an unknown source, or a package file that cannot be read.
    """
    if source not in (*TRAIN_SOURCES, *TEST_SOURCES):
        raise ConfigError(
            f"photo: {source!r} is invalid; allowed: {', '.join((*TRAIN_SOURCES, *TEST_SOURCES))}"
        )
    try:
        if source in SKLEARN_SOURCES:
            from sklearn.datasets import load_sample_image

            image = load_sample_image(f"{source}.jpg")
        elif source == "grace_hopper":
            from matplotlib import cbook
            from PIL import Image

            with cbook.get_sample_data("grace_hopper.jpg") as fh, Image.open(fh) as im:
                image = np.asarray(im.convert("RGB"))
        else:
            import skimage.data

            if source == "motorcycle":
                image = skimage.data.stereo_motorcycle()[0]
            else:
                image = getattr(skimage.data, source)()
    except (OSError, ImportError, ValueError) as exc:
        raise ConfigError(
            f"photo: {source!r} could not be read from its installed package "
            f"({type(exc).__name__}); nothing is downloaded"
        ) from None
    image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
    image.setflags(write=False)
    return image


def _grid(length: int, window: int, stride: int) -> list[int]:
    """Offsets of ``window``-long windows at ``stride`` steps, the whole grid centred."""
    count = (length - window) // stride + 1
    start = (length - (window + (count - 1) * stride)) // 2
    return [start + k * stride for k in range(count)]


def train_patches(opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Patches of :data:`TRAIN_SOURCES`: float32 ``[B, 3, size, size]``, labels = source index."""
    size, stride = opts["size"], opts["stride"]
    out, labels = [], []
    for k, source in enumerate(TRAIN_SOURCES):
        image = photo(source).astype(np.float32) / 255.0
        h, w = image.shape[:2]
        patches = np.stack(
            [image[t : t + size, left : left + size]
             for t in range(0, h - size + 1, stride) for left in range(0, w - size + 1, stride)]
        ).transpose(0, 3, 1, 2)  # fmt: skip
        patches = patches[patches.std(axis=(1, 2, 3)) >= opts["min_std"]]
        if len(patches) > opts["max_per_image"]:
            rng = np.random.default_rng([opts["seed"], k, 0])  # the ``patches`` train draw
            keep = np.sort(rng.choice(len(patches), opts["max_per_image"], replace=False))
            patches = patches[keep]
        out.append(patches)
        labels.append(np.full(len(patches), k, dtype=np.int64))
    return np.concatenate(out), np.concatenate(labels)


def whole_shape() -> tuple[int, int]:
    """``(H, W)`` of the ``whole=True`` test images: the smallest height and width of the test
    photos, each rounded down to a multiple of :data:`WHOLE_MULTIPLE`."""
    h = min(photo(s).shape[0] for s in TEST_SOURCES)
    w = min(photo(s).shape[1] for s in TEST_SOURCES)
    return h // WHOLE_MULTIPLE * WHOLE_MULTIPLE, w // WHOLE_MULTIPLE * WHOLE_MULTIPLE


def eval_crops(opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Crops (or whole windows) of :data:`TEST_SOURCES`: float32 ``[B, 3, h, w]``, labels =
    source index (module docstring)."""
    out, labels = [], []
    if opts["whole"]:
        hh, ww = whole_shape()
    else:
        hh = ww = opts["crop"]
    stride = opts["crop_stride"] or max(1, opts["crop"] // 2)
    for k, source in enumerate(TEST_SOURCES):
        image = photo(source).astype(np.float32) / 255.0
        h, w = image.shape[:2]
        if opts["whole"]:
            tops, lefts = [(h - hh) // 2], [(w - ww) // 2]
        else:
            tops, lefts = _grid(h, hh, stride), _grid(w, ww, stride)
        crops = [image[t : t + hh, left : left + ww] for t in tops for left in lefts]
        out.append(np.stack(crops).transpose(0, 3, 1, 2))
        labels.append(np.full(len(crops), k, dtype=np.int64))
    return np.concatenate(out), np.concatenate(labels)


def smallest_test_side() -> int:
    """The smallest side of the test photos (300, chelsea's height): the largest crop."""
    return min(min(photo(s).shape[:2]) for s in TEST_SOURCES)


__all__ = [
    "DEFAULTS",
    "TEST_SOURCES",
    "TRAIN_SOURCES",
    "photo",
    "smallest_test_side",
    "eval_crops",
    "train_patches",
    "whole_shape",
]
