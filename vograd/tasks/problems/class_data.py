"""Device-resident images of one class pool, with fixed-size per-class index tables.

A task is a set of ``k`` class *positions* in the pool; drawing a batch picks a
class per example and then an example of that class through the tables, so
every shape is fixed and the whole draw is a few gathers (jit/vmap friendly).

Validation data: for every class, the last ``valid_fraction`` of that class's
examples of the dataset's ``train`` split (in file order) are held out as
``"valid"``; ``"train"`` batches come from the rest and ``"test"`` batches from
the dataset's ``test`` split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, UInt8

from vograd.tasks.datasets import Dataset, load
from vograd.tasks.problems.class_pools import split_classes

PoolName = Literal["train", "test", "all"]


def _index_table(rows: Sequence[np.ndarray]) -> tuple[jax.Array, jax.Array]:
    """Returns ``(index [P, S], count [P])``: ``rows[p]`` left-aligned, zero-padded to ``S``."""
    width = max(1, max(len(r) for r in rows))
    index = np.zeros((len(rows), width), dtype=np.int32)
    for p, r in enumerate(rows):
        index[p, : len(r)] = r
    return jnp.asarray(index), jnp.asarray(np.array([len(r) for r in rows], dtype=np.int32))


class ClassData(eqx.Module):
    """Images of the pool's classes and index tables for the splits train/valid/test.

    Attributes:
        train_images: uint8 ``[N, H, W, C]``, the pool's examples of the dataset's train split
            (both the ``"train"`` and the held-out ``"valid"`` examples).
        test_images: uint8 ``[M, H, W, C]``, the pool's examples of the test split.
        index: split -> int32 ``[P, S]``; row ``p`` lists example rows of pool class ``p``.
        count: split -> int32 ``[P]``; the number of valid entries in each row.
        classes: the pool, as dataset class ids (pool position ``p`` is class ``classes[p]``).
        name, source: the dataset's name and provenance.
    """

    train_images: UInt8[Array, "n h w c"]
    test_images: UInt8[Array, "m h w c"]
    index: dict[str, Int[Array, "p s"]]
    count: dict[str, Int[Array, " p"]]
    classes: tuple[int, ...] = eqx.field(static=True)
    name: str = eqx.field(static=True)
    source: str = eqx.field(static=True)

    @property
    def pool_size(self) -> int:
        """Returns the number of classes in the pool."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Returns ``(H, W, C)``."""
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    def draw(
        self, u: Float[Array, " b"], positions: Int[Array, " b"], split: str
    ) -> UInt8[Array, "b h w c"]:
        """Returns example ``floor(u[i] * count)`` of pool class ``positions[i]`` for every ``i``.

        ``u`` is uniform in ``[0, 1)``, so each example of the class is equally likely.
        """
        if split not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {split!r}; expected 'train', 'valid' or 'test'")
        count = self.count[split][positions]
        slot = jnp.minimum((u * count).astype(jnp.int32), count - 1)
        rows = self.index[split][positions, slot]
        images = self.test_images if split == "test" else self.train_images
        return images[rows]


def build_class_data(
    train: Dataset,
    test: Dataset,
    classes: Sequence[int],
    valid_fraction: float = 1 / 6,
) -> ClassData:
    """Returns the ``ClassData`` of ``classes`` of a dataset, moved to the default device.

    Only the pool's examples are kept. Per class, the last
    ``ceil(valid_fraction * n_c)`` train examples become the ``"valid"`` split.
    """
    classes = tuple(int(c) for c in classes)
    if len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"classes must be distinct and non-empty, got {classes}")
    bad = [c for c in classes if not 0 <= c < train.num_classes]
    if bad:
        raise ValueError(
            f"classes {bad} not in dataset {train.name!r} ({train.num_classes} classes)"
        )
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    if train.image_shape != test.image_shape:
        raise ValueError(
            f"train/test image shapes differ: {train.image_shape} vs {test.image_shape}"
        )

    keep_train = np.flatnonzero(np.isin(train.labels, classes))
    keep_test = np.flatnonzero(np.isin(test.labels, classes))
    train_labels, test_labels = train.labels[keep_train], test.labels[keep_test]
    counts = np.array([np.sum(train_labels == c) for c in classes])
    num_valid = np.ceil(valid_fraction * counts).astype(int)
    if np.any(counts - num_valid < 1) or np.any([np.sum(test_labels == c) < 1 for c in classes]):
        raise ValueError(f"every class needs train, valid and test examples; train counts {counts}")

    per_class = [np.flatnonzero(train_labels == c) for c in classes]
    index_t, count_t = _index_table([w[: len(w) - v] for w, v in zip(per_class, num_valid)])
    index_v, count_v = _index_table([w[len(w) - v :] for w, v in zip(per_class, num_valid)])
    index_s, count_s = _index_table([np.flatnonzero(test_labels == c) for c in classes])
    return ClassData(
        train_images=jnp.asarray(train.images[keep_train]),
        test_images=jnp.asarray(test.images[keep_test]),
        index={"train": index_t, "valid": index_v, "test": index_s},
        count={"train": count_t, "valid": count_v, "test": count_s},
        classes=classes,
        name=train.name,
        source=train.source,
    )


def load_class_data(
    dataset: str | tuple[Dataset, Dataset],
    classes: PoolName | Sequence[int] = "train",
    *,
    num_test_classes: int | None = None,
    valid_fraction: float = 1 / 6,
    data_dir: str | None = None,
    sources: Sequence[str] | None = None,
    downsample: int = 1,
) -> ClassData:
    """Returns the ``ClassData`` of a named dataset (or a ``(train, test)`` pair) and class pool.

    ``classes`` is ``"train"`` / ``"test"`` (the pools of
    ``split_classes(num_classes, num_test_classes)``), ``"all"``, or explicit class ids.
    ``downsample``: average-pool the images by this factor (`Dataset.downsample`).
    """
    if isinstance(dataset, str):
        train = load(dataset, "train", data_dir=data_dir, sources=sources)
        test = load(dataset, "test", data_dir=data_dir, sources=sources)
    else:
        train, test = dataset
    train, test = train.downsample(downsample), test.downsample(downsample)
    if isinstance(classes, str):
        if classes == "all":
            classes = tuple(range(train.num_classes))
        elif classes in ("train", "test"):
            classes = getattr(split_classes(train.num_classes, num_test_classes), classes)
        else:
            raise ValueError(
                f"classes must be 'train', 'test', 'all' or class ids, got {classes!r}"
            )
    return build_class_data(train, test, classes, valid_fraction)
