"""``ConvFamily``: the 3-layer CNN of Metz et al. 2019 on 32x32x3 images."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx

from vograd.tasks.problems.class_data import ClassData
from vograd.tasks.problems.conv_net import ConvImpl, ConvNetFamily


class ConvFamily(ConvNetFamily):
    """3 conv layers of 32 channels, 3x3, stride 2, ReLU, global average pool, linear head.

    On 32x32x3 inputs the feature maps are 16x16, 8x8 and 4x4; with a 10-way
    head the network has 19,722 parameters (Metz et al. 2019's ~20k).

    Args:
        dataset: a dataset name (default ``"imagenet_resized/32x32"``, the paper's data;
            offline it falls back to Fashion-MNIST padded to 32x32x3 and the per-task
            tint colours it), a ``(train, test)`` pair of ``Dataset``, or a ``ClassData``.
        classes: the class pool: ``"train"`` / ``"test"`` (``split_classes``: 700/300 on
            ImageNet, 6/4 on Fashion-MNIST), ``"all"``, or explicit class ids.
        k: classes per task, an int or ``(k_min, k_max)``; default ``resolve_k``
            (10 on ImageNet, 2 to 5 on the offline 6-class pool).
        channels, strides, kernel: the conv stack.
        conv_impl: ``"lax"``, ``"im2col"`` or ``"unrolled"`` (see ``conv_net``: same numbers,
            different speed; ``"unrolled"`` is the fastest for vmapped populations on CPU).
        batch_size, tint_range, valid_fraction, num_test_classes, data_dir, sources, downsample:
            as for ``ImageMLPFamily``.
    """

    data: ClassData
    k_range: tuple[int, int] = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    tint_range: tuple[float, float] = eqx.field(static=True)
    channels: tuple[int, ...] = eqx.field(static=True)
    strides: tuple[int, ...] = eqx.field(static=True)
    kernel: int = eqx.field(static=True)
    conv_impl: str = eqx.field(static=True)

    def __init__(
        self,
        dataset="imagenet_resized/32x32",
        classes="train",
        *,
        k: int | tuple[int, int] | None = None,
        channels: Sequence[int] = (32, 32, 32),
        strides: Sequence[int] = (2, 2, 2),
        kernel: int = 3,
        conv_impl: ConvImpl = "lax",
        batch_size: int = 128,
        tint_range: tuple[float, float] = (0.25, 1.0),
        valid_fraction: float = 1 / 6,
        num_test_classes: int | None = None,
        data_dir: str | None = None,
        sources: Sequence[str] | None = None,
        downsample: int = 1,
    ):
        self._setup(
            dataset, classes, k=k, channels=channels, strides=strides, kernel=kernel,
            conv_impl=conv_impl, batch_size=batch_size, tint_range=tint_range,
            valid_fraction=valid_fraction, num_test_classes=num_test_classes,
            data_dir=data_dir, sources=sources, downsample=downsample,
        )
