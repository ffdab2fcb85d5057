"""Disjoint train/test class pools, so that meta-test tasks use unseen classes."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ClassPools(NamedTuple):
    """Sorted, disjoint tuples of class ids: ``train`` for meta-training, ``test`` for meta-test."""

    train: tuple[int, ...]
    test: tuple[int, ...]


def split_classes(num_classes: int, num_test: int | None = None, *, seed: int = 0) -> ClassPools:
    """Returns a deterministic random split of ``range(num_classes)`` into two disjoint pools.

    Args:
        num_classes: classes in the dataset (10 for Fashion-MNIST, 1000 for ImageNet).
        num_test: size of the test pool; default ``round(0.3 * num_classes)``
            for 100 classes or more (the paper's 700/300 ImageNet split) and
            ``round(0.4 * num_classes)`` below (6 train / 4 test on 10 classes,
            so each pool still holds several-class problems).
        seed: numpy seed of the split; the same arguments always give the same pools.
    """
    if num_test is None:
        num_test = round((0.3 if num_classes >= 100 else 0.4) * num_classes)
    if not 0 < num_test < num_classes:
        raise ValueError(
            f"split_classes: num_test must be in [1, {num_classes - 1}], got {num_test}"
        )
    order = np.random.default_rng(seed).permutation(num_classes)
    return ClassPools(
        train=tuple(sorted(int(c) for c in order[num_test:])),
        test=tuple(sorted(int(c) for c in order[:num_test])),
    )
