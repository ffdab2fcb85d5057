"""A 'SAME' convolution whose kernel gradient XLA:CPU runs fast inside loops.

Reverse mode through ``lax.conv_general_dilated`` computes the kernel
gradient ``Dw(x, g) = C(x, .)^T g`` as a convolution with dimension labels
``f01b_i01o->01bf``. Outside loops XLA rewrites it into the canonical
``b01f_01io->b01f`` form that its CPU backend runs with a fast library kernel;
inside the body of a ``while`` loop (every rolled ``lax.scan``) it does not,
and falls back to a naive loop nest: a rolled scan of conv training steps then
runs 40-70x slower than the same steps unrolled (docs/performance.md).

`conv2d_same` computes the same numbers, but writes the kernel gradient itself
as a canonical convolution: input channels become the batch, examples become
the contracted feature axis, the output gradient becomes a kernel dilated by
the stride. The convolution ``C``, its input transpose ``Dx`` and that kernel
gradient ``Dw`` are each a ``jax.custom_vjp`` whose VJPs are again ``C``,
``Dx`` and ``Dw`` (the three bilinear maps are closed under taking VJPs:
``<c, Dx(g, w)> = <C(c, w), g>``, ``<c, Dw(x, g)> = <C(x, c), g>``), so
reverse-mode derivatives of every order stay canonical. Forward mode
(``jax.jvp``) is not supported, as for any ``custom_vjp``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Returns the (low, high) padding of 'SAME' convolution, as XLA computes it."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(x, w, stride: int):
    return lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=_DIMENSIONS)


def _conv_dx(g, w, stride: int, x_shape: tuple[int, ...]):
    # The input transpose XLA already emits in canonical form.
    x_struct = jax.ShapeDtypeStruct(x_shape, g.dtype)
    return jax.linear_transpose(lambda x: _conv(x, w, stride), x_struct)(g)[0]


def kernel_gradient(x, g, stride: int, w_shape: tuple[int, ...]):
    """Returns ``dw[p, q, i, o] = sum_{b, u, v} xpad[b, s u + p, s v + q, i] g[b, u, v, o]``
    as ONE canonical convolution: lhs ``[cin, H, W, B]``, kernel ``[oh, ow, B, cout]``
    dilated by the stride, output ``[cin, kh, kw, cout]``."""
    kh, kw = w_shape[:2]
    h, wd = x.shape[1:3]
    oh, ow = g.shape[1:3]
    pads = []
    for size, k, o in ((h, kh, oh), (wd, kw, ow)):
        low, _ = same_padding(size, k, stride)
        # Enough high padding for the dilated kernel to reach offset k - 1.
        pads.append((low, max((o - 1) * stride + k - size - low, 0)))
    dw = lax.conv_general_dilated(
        jnp.transpose(x, (3, 1, 2, 0)),
        jnp.transpose(g, (1, 2, 0, 3)),
        (1, 1),
        pads,
        rhs_dilation=(stride, stride),
        dimension_numbers=_DIMENSIONS,
    )
    return jnp.transpose(dw[:, :kh, :kw, :], (1, 2, 0, 3))


@functools.cache
def _ops(stride: int, x_shape: tuple[int, ...], w_shape: tuple[int, ...]):
    """Returns the custom_vjp-wrapped ``(C, Dx, Dw)`` for one stride and operand shapes."""
    conv = jax.custom_vjp(lambda x, w: _conv(x, w, stride))
    conv_dx = jax.custom_vjp(lambda g, w: _conv_dx(g, w, stride, x_shape))
    conv_dw = jax.custom_vjp(lambda x, g: kernel_gradient(x, g, stride, w_shape))
    conv.defvjp(
        lambda x, w: (conv(x, w), (x, w)),
        lambda res, c: (conv_dx(c, res[1]), conv_dw(res[0], c)),
    )
    conv_dx.defvjp(
        lambda g, w: (conv_dx(g, w), (g, w)),
        lambda res, c: (conv(c, res[1]), conv_dw(c, res[0])),
    )
    conv_dw.defvjp(
        lambda x, g: (conv_dw(x, g), (x, g)),
        lambda res, c: (conv_dx(res[1], c), conv(res[0], c)),
    )
    return conv, conv_dx, conv_dw


def conv2d_same(
    x: Float[Array, "b h w cin"], w: Float[Array, "kh kw cin cout"], stride: int
) -> Float[Array, "b oh ow cout"]:
    """Returns ``lax.conv_general_dilated(x, w, (stride, stride), "SAME")`` (NHWC, HWIO),
    whose reverse-mode derivatives of any order use canonical convolutions (module doc)."""
    return _ops(int(stride), tuple(x.shape), tuple(w.shape))[0](x, w)
