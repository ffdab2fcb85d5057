"""The in-memory image classification dataset returned by ``vograd.tasks.datasets.load``."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """One split of an image classification dataset, held on the host.

    Attributes:
        name: the name it was loaded under (e.g. ``"fashion_mnist"``).
        split: ``"train"`` or ``"test"``.
        images: uint8 array ``[N, H, W, C]`` (read-only).
        labels: int32 array ``[N]`` with values in ``[0, num_classes)`` (read-only).
        num_classes: number of classes of the data actually returned.
        source: where the data came from, in words (tfds directory, Debian
            package, shipped subset, ...), including any conversion applied.
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    source: str

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"Dataset {self.name!r}: images must be uint8 [N, H, W, C], "
                f"got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.dtype != np.int32 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"Dataset {self.name!r}: labels must be int32 [N={self.images.shape[0]}], "
                f"got {self.labels.dtype} {self.labels.shape}"
            )
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= self.num_classes):
            raise ValueError(
                f"Dataset {self.name!r}: labels outside [0, {self.num_classes}): "
                f"min {self.labels.min()}, max {self.labels.max()}"
            )
        # Loaded datasets are cached and shared; freeze the buffers.
        self.images.flags.writeable = False
        self.labels.flags.writeable = False

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Returns ``(H, W, C)``."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def class_counts(self) -> np.ndarray:
        """Returns the number of examples of each class, int array ``[num_classes]``."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def downsample(self, factor: int) -> "Dataset":
        """Returns this split with images average-pooled over ``factor x factor`` blocks.

        ``[N, H, W, C] -> [N, H / factor, W / factor, C]``, rounded back to uint8;
        ``factor`` must divide ``H`` and ``W``. Fashion-MNIST at ``factor=2`` is
        14x14 (196 inputs): an MLP on it has 4x fewer first-layer weights, which is
        what a per-parameter learned optimizer's cost scales with.
        """
        factor = int(factor)
        if factor == 1:
            return self
        h, w, c = self.image_shape
        if factor < 1 or h % factor or w % factor:
            raise ValueError(
                f"Dataset {self.name!r}: downsample factor must be >= 1 and divide the "
                f"image size {h}x{w}, got {factor}"
            )
        blocks = self.images.reshape(len(self), h // factor, factor, w // factor, factor, c)
        pooled = np.rint(blocks.mean(axis=(2, 4), dtype=np.float32)).astype(np.uint8)
        return dataclasses.replace(
            self, images=pooled, source=f"{self.source}; average-pooled {factor}x{factor}",
        )
