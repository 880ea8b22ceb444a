"""Image data sets: two embedded sets and loaders for standard on-disk formats (no download).

Every data set is an :class:`ImageDataset`: ``images`` float32 ``[B, C, H, W]`` with pixel values
in ``[0, 1]`` and ``labels`` int64 ``[B]`` (``-1`` where a set has no labels).

Names (``load_dataset(name, split, root, **options)``):

``"patches"`` (embedded, the default of docs/method.md §1.3)
    ``size x size`` RGB patches (default 32) cut on a regular grid with stride ``stride``
    (``size // 4 .. 4096``, default 32) from
    the colour sample images that ship inside the scikit-image wheel (read offline, never
    downloaded). The split is **by source image**: every patch of a test image is a test patch
    and no test patch comes from a training image. Train sources: astronaut, rocket,
    hubble_deep_field, immunohistochemistry, retina, motorcycle (left view of
    ``stereo_motorcycle``); test sources: coffee, chelsea. At most ``max_per_image`` patches per
    source image (a seeded subset, default 256) so that no one image dominates, and patches whose
    pixel standard deviation is below ``min_std`` (flat background, e.g. retina's black border)
    are dropped. Deterministic: same options -> same tensor.
``"photos"`` (embedded, :mod:`semcom.photos`)
    full-resolution colour photos of scikit-image, scikit-learn and matplotlib (nothing
    downloaded), split by photo: the test split is ``crop x crop`` crops (default 256, stride
    ``crop_stride``, default ``crop // 2``) of coffee, chelsea, china, flower and grace_hopper
    (or, with ``whole=True``, one centred 288 x 448 window of each); the train split is
    ``size x size`` patches (options as ``patches``) of the six other photos, the train sources
    of ``patches``. :func:`image_shape` is the train split's; a fully convolutional ``cnn`` is
    evaluated on the larger test images with the same weights
    (:func:`semcom.models.build.at_input_shape`).
``"digits"`` (embedded)
    scikit-learn's bundled ``load_digits()`` (1,797 grey 8x8 images of 0..9, pixel values 0..16),
    scaled by 1/16 to ``[0, 1]``, shape ``1 x 8 x 8``, labels 0..9. A seeded permutation puts a
    fraction ``test_fraction`` (default 0.2) in the test split.
``"cifar10"`` (local ``root``)
    the CIFAR-10 "python version": pickle batches ``data_batch_1`` .. ``data_batch_5`` (train) and
    ``test_batch`` (test), each a dict with ``data`` uint8 ``[10000, 3072]`` (R, G, B planes of
    32x32) and ``labels``; ``root`` may be the folder ``cifar-10-batches-py`` itself or its parent.
    The batches are Python pickles: only load files you trust.
``"mnist"`` (local ``root``)
    the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each may be gzipped, ``.gz``);
    images ``1 x 28 x 28``.
``"folder"`` (local ``root``)
    PNG/JPEG/BMP/TIFF images in ``root/<split>/`` when that folder exists, else directly in
    ``root`` (e.g. the 24 Kodak images as a test set), sorted by file name. Each image is
    converted to RGB (grey replicated, alpha dropped), centre-cropped to a square and resized to
    ``size x size`` (default 32, anti-aliased). No labels.

Common option: ``limit`` keeps the first ``limit`` samples of the split (after its deterministic
ordering), for quick runs. Missing or unreadable files raise :class:`channels.errors.ConfigError`
naming the path and the files expected there.

Examples:
    >>> ds = load_dataset("digits", "test")
    >>> tuple(ds.images.shape[1:]), ds.images.dtype, int(ds.labels.max())
    ((1, 8, 8), torch.float32, 9)
"""

from __future__ import annotations

import functools
import gzip
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from channels.errors import ConfigError, check_choice, check_flag, check_int, check_real, fail
from semcom.photos import DEFAULTS as PHOTO_DEFAULTS

DATASETS = ("patches", "digits", "cifar10", "mnist", "folder", "photos")
SPLITS = ("train", "test")

PATCH_TRAIN_SOURCES = (
    "astronaut",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle",
)
PATCH_TEST_SOURCES = ("coffee", "chelsea")

CIFAR_TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
CIFAR_TEST_FILES = ("test_batch",)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Default options of every data set; the resolved options of a load are these updated by the
# caller's (unknown keys raise ConfigError). ``None`` for limit means "all samples".
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "patches": {"size": 32, "stride": 32, "max_per_image": 256, "min_std": 0.02, "seed": 0},
    "digits": {"test_fraction": 0.2, "seed": 0},
    "cifar10": {},
    "mnist": {},
    "folder": {"size": 32},
    "photos": dict(PHOTO_DEFAULTS),
}


@dataclass
class ImageDataset:
    """A split of an image data set held in memory.

    Attributes:
        images: float32 ``[B, C, H, W]`` in ``[0, 1]``.
        labels: int64 ``[B]``; ``-1`` for unlabelled images.
        name: data set name (``"patches"``, ``"digits"``, ...).
        split: ``"train"`` or ``"test"``.
        options: the resolved loader options (defaults filled in).
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    split: str = "train"
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image [C, H, W], label [])`` of sample ``index``."""
        return self.images[index], self.labels[index]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        """``max(label) + 1`` (0 for an unlabelled set)."""
        return int(self.labels.max().item()) + 1 if len(self) else 0


# ---------------------------------------------------------------------------------------------
# options


MAX_STRIDE = 4096


def resolve_options(name: str, split: str = "train", **options: Any) -> dict[str, Any]:
    """Validate ``name``, ``split`` and ``options`` and fill in defaults (no data is read).

    Returns the resolved options, including ``limit`` (``None`` = all samples).
    """
    check_choice("dataset", name, DATASETS)
    check_choice("split", split, SPLITS, " or ".join(SPLITS))
    resolved = dict(DEFAULT_OPTIONS[name])
    resolved["limit"] = None
    unknown = sorted(set(options) - set(resolved))
    if unknown:
        raise fail(f"{name} option", unknown[0], ", ".join(sorted(resolved)) or "none")
    resolved.update(options)
    if resolved["limit"] is not None:
        resolved["limit"] = check_int("limit", resolved["limit"], 1)
    if name in ("patches", "photos"):
        resolved["size"] = check_int("size", resolved["size"], 4, 128)
        # a finer grid would stack (image side / stride)² patches at once: 2.8 GB per image
        # at stride 1 and size 32, before max_per_image keeps 256 of them
        low = max(1, resolved["size"] // 4)
        resolved["stride"] = check_int("stride", resolved["stride"], low, MAX_STRIDE)
        resolved["max_per_image"] = check_int("max_per_image", resolved["max_per_image"], 1)
        resolved["min_std"] = check_real("min_std", resolved["min_std"], 0.0, 1.0)
        resolved["seed"] = check_int("seed", resolved["seed"], 0)
    if name == "photos":
        _resolve_photos(resolved)
    elif name == "digits":
        tf = check_real("test_fraction", resolved["test_fraction"], 0.0, 1.0, open_high=True)
        if tf <= 0.0:
            raise fail("test_fraction", tf, "a number in (0, 1)")
        resolved["test_fraction"] = tf
        resolved["seed"] = check_int("seed", resolved["seed"], 0)
    elif name == "folder":
        resolved["size"] = check_int("size", resolved["size"], 1, 4096)
    return resolved


def _resolve_photos(resolved: dict[str, Any]) -> None:
    """Validate the test-split options of ``photos`` in place (the rest are ``patches``')."""
    from semcom.photos import smallest_test_side

    largest = smallest_test_side()
    resolved["crop"] = check_int("crop", resolved["crop"], 16, largest)
    if resolved["crop"] % 4:
        raise fail("crop", resolved["crop"], f"a multiple of 4 in 16..{largest}")
    if resolved["crop_stride"] is not None:
        resolved["crop_stride"] = check_int("crop_stride", resolved["crop_stride"], 1, MAX_STRIDE)
    resolved["whole"] = check_flag("whole", resolved["whole"])


def image_shape(name: str, options: dict[str, Any]) -> tuple[int, int, int]:
    """``(C, H, W)`` of the images of data set ``name`` with resolved ``options`` (no data read).

    A ``"folder"`` is always RGB: every image is converted to 3 channels. For ``"photos"`` it
    is the train split's patch shape (the shape a model is built and trained for); its test
    split holds larger crops (:mod:`semcom.photos`).
    """
    if name in ("patches", "folder", "photos"):
        return (3, options["size"], options["size"])
    return {"digits": (1, 8, 8), "cifar10": (3, 32, 32), "mnist": (1, 28, 28)}[name]


def load_dataset(
    name: str, split: str = "train", root: str | Path | None = None, **options: Any
) -> ImageDataset:
    """Load one split of a data set into memory (see the module docstring for the names).

    Args:
        name: ``"patches"``, ``"digits"``, ``"cifar10"``, ``"mnist"`` or ``"folder"``.
        split: ``"train"`` or ``"test"``.
        root: local folder of ``"cifar10"``, ``"mnist"`` and ``"folder"`` (required there,
            ignored by the embedded sets).
        **options: per-set options (``size``, ``stride``, ``max_per_image``, ``min_std``, ``seed``,
            ``test_fraction``, ``limit``), validated before anything is read.

    Returns:
        An :class:`ImageDataset` with float32 images in ``[0, 1]``.

    Raises:
        ConfigError: unknown name, split or option, bad option value, missing ``root``, missing or
            corrupt files (the message names the path and the expected files).
    """
    opts = resolve_options(name, split, **options)
    if name in ("cifar10", "mnist", "folder"):
        if root is None:
            raise fail("root", None, f"a local folder holding the {name} files (no download)")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise ConfigError(
                f"root: {str(root)!r} is not a folder; expected {_expected_files(name, split)}"
            )
    if name == "patches":
        images, labels = _patches(split, opts)
    elif name == "photos":
        from semcom import photos

        images, labels = (photos.train_patches if split == "train" else photos.eval_crops)(opts)
    elif name == "digits":
        images, labels = _digits(split, opts)
    elif name == "cifar10":
        images, labels = _cifar10(root, split)
    elif name == "mnist":
        images, labels = _mnist(root, split)
    else:
        images, labels = _folder(root, split, opts["size"])
    if opts["limit"] is not None:
        images, labels = images[: opts["limit"]], labels[: opts["limit"]]
    return ImageDataset(
        images=torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)),
        labels=torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        name=name,
        split=split,
        options=opts,
    )


def _expected_files(name: str, split: str) -> str:
    if name == "cifar10":
        files = CIFAR_TRAIN_FILES if split == "train" else CIFAR_TEST_FILES
        return "CIFAR-10 python batches " + ", ".join(files) + " (or a cifar-10-batches-py folder)"
    if name == "mnist":
        return "MNIST IDX files " + ", ".join(f + "[.gz]" for f in MNIST_FILES[split])
    return "image files (" + ", ".join(IMAGE_SUFFIXES) + f") in root/{split}/ or root/"


# ---------------------------------------------------------------------------------------------
# embedded sets


@functools.lru_cache(maxsize=16)
def _sample_image(source: str) -> np.ndarray:
    """An RGB sample image of the scikit-image wheel as uint8 ``[H, W, 3]`` (read-only)."""
    import skimage.data

    if source == "motorcycle":
        image = skimage.data.stereo_motorcycle()[0]
    else:
        image = getattr(skimage.data, source)()
    image = np.asarray(image)[..., :3]
    image.setflags(write=False)
    return image


def _patches(split: str, opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Grid patches of the split's source images: float ``[B, 3, s, s]``, labels = source index.

    The label of a patch is the index of its source image in the split's source list, so a patch
    can be traced back (and test patches are provably from test images only).
    """
    sources = PATCH_TRAIN_SOURCES if split == "train" else PATCH_TEST_SOURCES
    size, stride = opts["size"], opts["stride"]
    out, labels = [], []
    for k, source in enumerate(sources):
        image = _sample_image(source).astype(np.float32) / 255.0
        h, w = image.shape[:2]
        tops = range(0, h - size + 1, stride)
        lefts = range(0, w - size + 1, stride)
        patches = np.stack(
            [image[t : t + size, l : l + size] for t in tops for l in lefts]
        ).transpose(0, 3, 1, 2)
        patches = patches[patches.std(axis=(1, 2, 3)) >= opts["min_std"]]
        if len(patches) > opts["max_per_image"]:
            rng = np.random.default_rng([opts["seed"], k, split == "test"])
            keep = np.sort(rng.choice(len(patches), opts["max_per_image"], replace=False))
            patches = patches[keep]
        out.append(patches)
        labels.append(np.full(len(patches), k, dtype=np.int64))
    return np.concatenate(out), np.concatenate(labels)


def _digits(split: str, opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(opts["seed"]).permutation(len(images))
    n_test = max(1, int(round(opts["test_fraction"] * len(images))))
    idx = order[:n_test] if split == "test" else order[n_test:]
    idx = np.sort(idx)
    return images[idx], labels[idx]


# ---------------------------------------------------------------------------------------------
# CIFAR-10


def _cifar10(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    files = CIFAR_TRAIN_FILES if split == "train" else CIFAR_TEST_FILES
    folder = root
    if not (root / files[0]).is_file() and (root / "cifar-10-batches-py" / files[0]).is_file():
        folder = root / "cifar-10-batches-py"
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise ConfigError(
            f"root: {str(folder)!r} lacks {', '.join(missing)}; "
            f"expected {_expected_files('cifar10', split)}"
        )
    images, labels = [], []
    for f in files:
        path = folder / f
        try:
            with open(path, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            lab = np.asarray(batch[b"labels"], dtype=np.int64)
            if data.ndim != 2 or data.shape[1] != 3072 or lab.shape != (data.shape[0],):
                raise ValueError(f"data {data.shape}, labels {lab.shape}")
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a data error
            raise ConfigError(
                f"cifar10 file: {str(path)!r} is not a CIFAR-10 python batch "
                f"(a pickled dict with b'data' [n, 3072] uint8 and b'labels' [n]): "
                f"{type(exc).__name__}"
            ) from None
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return np.concatenate(images).astype(np.float32) / 255.0, np.concatenate(labels)


# ---------------------------------------------------------------------------------------------
# MNIST (IDX format: big-endian magic 0x0000 <type 0x08 = uint8> <ndim>, then ndim uint32 sizes)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
        if len(raw) < 4 + 4 * ndim or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
            raise ValueError("bad magic")
        if raw[3] != ndim:
            raise ValueError(f"{raw[3]} dimensions")
        dims = tuple(int(d) for d in np.frombuffer(raw[4 : 4 + 4 * ndim], dtype=">u4"))
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        if data.size != int(np.prod(dims)):
            raise ValueError(f"{data.size} bytes for dims {dims}")
    except (OSError, EOFError, ValueError) as exc:
        raise ConfigError(
            f"mnist file: {str(path)!r} is not an IDX uint8 file with {ndim} dimension(s): {exc}"
        ) from None
    return data.reshape(dims)


def _mnist(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    paths = []
    for name in MNIST_FILES[split]:
        candidates = [root / (name + suffix) for suffix in ("", ".gz")]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise ConfigError(
                f"root: {str(root)!r} lacks {name}[.gz]; expected {_expected_files('mnist', split)}"
            )
        paths.append(found)
    images = _read_idx(paths[0], 3)
    labels = _read_idx(paths[1], 1)
    if labels.shape[0] != images.shape[0]:
        raise ConfigError(
            f"mnist file: {str(paths[1])!r} has {labels.shape[0]} labels for "
            f"{images.shape[0]} images in {str(paths[0])!r}"
        )
    return images[:, None].astype(np.float32) / 255.0, labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# image folder


def _folder(root: Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    folder = root / split if (root / split).is_dir() else root
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ConfigError(
            f"root: {str(folder)!r} holds no images; expected {_expected_files('folder', split)}"
        )
    return np.stack([_read_square(p, size) for p in files]), np.full(len(files), -1, np.int64)


def _read_square(path: Path, size: int) -> np.ndarray:
    """Read an image as RGB, centre-crop it to a square, resize to ``[3, size, size]`` in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s))
            if s != size:
                im = im.resize((size, size), Image.Resampling.LANCZOS)
            array = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ConfigError(
            f"folder image: {str(path)!r} could not be read as an image "
            f"({', '.join(IMAGE_SUFFIXES)}): {type(exc).__name__}"
        ) from None
    return array.transpose(2, 0, 1)
