"""Shared pieces of the convolutional families: 'SAME' 3x3 convolutions, init, forward.

Two implementations of the same convolution (identical results):
- ``"lax"``: ``lax.conv_general_dilated``, with reverse-mode derivatives whose
  kernel gradient is a canonical convolution (``conv_canonical.py``; same numbers,
  40-70x faster inside a rolled ``lax.scan`` on CPU; reverse-mode only). Under
  ``vmap`` over per-task kernels JAX turns it into one grouped convolution
  (``feature_group_count`` = population), which XLA's CPU backend runs slowly.
- ``"im2col"``: pad, take the ``kh * kw`` strided slices, concatenate them on the
  channel axis and multiply by the reshaped kernel. Under ``vmap`` this is a
  batched matrix product, and its backward pass is slices and pads only.
- ``"unrolled"``: ``lax`` convolutions with a custom ``vmap`` rule that issues
  one convolution per task (``conv_unrolled.py``); reverse-mode only.
See docs/datasets.md ("Convolutions and populations") for the measured speeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.tasks.problems.conv_canonical import conv2d_same
from vograd.tasks.problems.conv_unrolled import conv2d_unrolled
from vograd.tasks.problems.image_family import (
    ImageClassificationFamily,
    ImageTask,
    as_class_data,
    check_range,
    dense,
    normal_arrays,
    resolve_k,
)

ConvImpl = Literal["lax", "im2col", "unrolled"]


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Returns the (low, high) padding of 'SAME' convolution, as XLA computes it."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d(
    x: Float[Array, "b h w cin"], w: Float[Array, "kh kw cin cout"], stride: int, impl: ConvImpl
) -> Float[Array, "b oh ow cout"]:
    """Returns the 'SAME'-padded strided convolution of ``x`` and ``w``; ``oh = ceil(h/stride)``."""
    if impl == "lax":
        return conv2d_same(x, w, stride)
    if impl == "unrolled":
        return conv2d_unrolled(x, w, stride)
    if impl != "im2col":
        raise ValueError(f"unknown conv_impl {impl!r}; expected 'lax', 'im2col' or 'unrolled'")
    kh, kw, cin, cout = w.shape
    h, wd = x.shape[1:3]
    oh, ow = -(-h // stride), -(-wd // stride)
    x = jnp.pad(x, ((0, 0), _same_padding(h, kh, stride), _same_padding(wd, kw, stride), (0, 0)))
    # Column order (i, j, cin) matches w.reshape(kh * kw * cin, cout).
    columns = [
        x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]
    return jnp.concatenate(columns, axis=-1) @ w.reshape(kh * kw * cin, cout)


def check_architecture(channels: Sequence[int], strides: Sequence[int], kernel: int, impl: str):
    """Raises ValueError unless the conv stack description is consistent."""
    if not channels or len(channels) != len(strides):
        raise ValueError(f"need one stride per conv layer: channels {channels}, strides {strides}")
    if any(c < 1 for c in channels) or any(s < 1 for s in strides) or kernel < 1:
        raise ValueError(
            f"channels, strides and kernel must be >= 1: {channels}, {strides}, {kernel}"
        )
    if impl not in ("lax", "im2col", "unrolled"):
        raise ValueError(f"unknown conv_impl {impl!r}; expected 'lax', 'im2col' or 'unrolled'")


class ConvNetFamily(ImageClassificationFamily):
    """ReLU conv stack, global average pool, linear head; subclasses give the sizes.

    Params: ``{"conv_i": {"w": [kernel, kernel, c_in, c_i], "b": [c_i]}, ...,
    "head": {"w": [c_last, k_max], "b": [k_max]}}``. Convolutions use He
    initialisation ``N(0, 2 / fan_in)``, the head ``N(0, 1 / fan_in)``, zero biases.
    """

    channels: eqx.AbstractVar[tuple[int, ...]]
    strides: eqx.AbstractVar[tuple[int, ...]]
    kernel: eqx.AbstractVar[int]
    conv_impl: eqx.AbstractVar[str]

    def _setup(self, dataset, classes, *, k, channels, strides, kernel, conv_impl, batch_size,
               tint_range, valid_fraction, num_test_classes, data_dir, sources,
               downsample=1) -> None:
        """Checks and sets the fields shared by every conv family (called from ``__init__``)."""
        check_architecture(channels, strides, kernel, conv_impl)
        self.data = as_class_data(
            dataset,
            classes,
            num_test_classes=num_test_classes,
            valid_fraction=valid_fraction,
            data_dir=data_dir,
            sources=sources,
            downsample=downsample,
        )
        self.k_range = resolve_k(k, self.data.pool_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.tint_range = check_range("tint_range", tint_range)
        self.channels = tuple(int(c) for c in channels)
        self.strides = tuple(int(s) for s in strides)
        self.kernel = int(kernel)
        self.conv_impl = conv_impl

    def init_params(self, task: ImageTask, key: PRNGKeyArray) -> dict:
        """Returns fresh parameters (shapes in the class docstring)."""
        del task
        c_ins = (self.data.image_shape[-1], *self.channels[:-1])
        shapes = [(self.kernel, self.kernel, c_in, c) for c_in, c in zip(c_ins, self.channels)]
        weights = normal_arrays(key, [*shapes, (self.channels[-1], self.k_max)])
        params = {}
        for i, w in enumerate(weights[:-1]):
            fan_in = self.kernel * self.kernel * w.shape[2]
            params[f"conv_{i}"] = {"w": w * jnp.sqrt(2.0 / fan_in), "b": jnp.zeros((w.shape[-1],))}
        params["head"] = dense(weights[-1], gain=1.0)
        return params

    def logits(self, params: dict, images: Float[Array, "b h w c"]) -> Float[Array, "b k"]:
        """Returns ``head(mean_hw(relu(conv(... relu(conv(x)) ...))))``, shape ``[B, k_max]``."""
        x = images
        for i, stride in enumerate(self.strides):
            layer = params[f"conv_{i}"]
            x = jax.nn.relu(conv2d(x, layer["w"], stride, self.conv_impl) + layer["b"])
        x = jnp.mean(x, axis=(1, 2))
        return x @ params["head"]["w"] + params["head"]["b"]

