"""Readers for the IDX file format of (Fashion-)MNIST, numpy only."""

from __future__ import annotations

import gzip
import os

import numpy as np

# IDX magic numbers: 0x00000803 for 3-d uint8 (images), 0x00000801 for 1-d uint8 (labels).
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049


def _read_bytes(path: str | os.PathLike) -> bytes:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read()


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Returns the uint8 images of an IDX3 file (optionally gzipped), shape ``[N, H, W]``."""
    raw = _read_bytes(path)
    magic, n, h, w = np.frombuffer(raw[:16], dtype=">i4")
    if magic != _IMAGES_MAGIC:
        raise ValueError(f"{path}: not an IDX image file (magic {magic}, expected {_IMAGES_MAGIC})")
    images = np.frombuffer(raw[16:], dtype=np.uint8)
    if images.size != n * h * w:
        raise ValueError(f"{path}: truncated IDX image file ({images.size} bytes for {n}x{h}x{w})")
    return images.reshape(n, h, w)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Returns the labels of an IDX1 file (optionally gzipped) as int32, shape ``[N]``."""
    raw = _read_bytes(path)
    magic, n = np.frombuffer(raw[:8], dtype=">i4")
    if magic != _LABELS_MAGIC:
        raise ValueError(f"{path}: not an IDX label file (magic {magic}, expected {_LABELS_MAGIC})")
    labels = np.frombuffer(raw[8:], dtype=np.uint8)
    if labels.size != n:
        raise ValueError(
            f"{path}: truncated IDX label file ({labels.size} labels, header says {n})"
        )
    return labels.astype(np.int32)
