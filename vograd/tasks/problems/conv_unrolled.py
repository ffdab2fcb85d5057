"""A convolution whose ``vmap`` over per-task kernels runs one convolution per task.

``jax.vmap`` of ``lax.conv_general_dilated`` with batched kernels becomes one
grouped convolution (``feature_group_count`` = population), which XLA's CPU
backend runs several times slower than the same convolutions issued one by one.
``conv2d_unrolled`` gives ``vmap`` a custom rule (``jax.custom_batching``) that
unrolls the population axis instead; kernels shared by the population are
folded into the batch axis.

``custom_vmap`` functions cannot be differentiated in reverse mode, so the
convolution and its two transposes are each wrapped in ``jax.custom_vjp``;
the three bilinear maps are closed under taking VJPs, so gradients of any
order work (forward-mode ``jvp`` does not). Let ``C(x, w)`` be the
convolution, ``Dx(g, w) = C(., w)^T g`` and ``Dw(x, g) = C(x, .)^T g``. Then
``<c, Dx(g, w)> = <C(c, w), g>`` and ``<c, Dw(x, g)> = <C(x, c), g>``, whose
derivatives give every VJP below.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from vograd.tasks.problems.conv_canonical import kernel_gradient

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(x, w, stride):
    return lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=_DIMENSIONS)


def _conv_dx(g, w, stride, x_shape):
    x_struct = jax.ShapeDtypeStruct(x_shape, g.dtype)
    return jax.linear_transpose(lambda x: _conv(x, w, stride), x_struct)(g)[0]


def _conv_dw(x, g, stride, w_shape):
    # A canonical convolution: XLA:CPU runs the linear_transpose form as a naive
    # loop nest inside rolled scans (see conv_canonical.py).
    return kernel_gradient(x, g, stride, w_shape)


def _unrolled_rule(fn, weight_args):
    """Returns a vmap rule: loop over the population if an arg in ``weight_args`` is batched,
    else merge the population into the (leading) example axis of the batched args."""

    def rule(axis_size, in_batched, *args):
        if any(in_batched[i] for i in weight_args):
            outs = [
                fn(*(a[p] if b else a for a, b in zip(args, in_batched))) for p in range(axis_size)
            ]
            return jnp.stack(outs), True
        merged = [
            a.reshape(axis_size * a.shape[1], *a.shape[2:]) if b else a
            for a, b in zip(args, in_batched)
        ]
        out = fn(*merged)
        return out.reshape(axis_size, -1, *out.shape[1:]), True

    return rule


@functools.cache
def _ops(stride: int, x_shape: tuple[int, ...], w_shape: tuple[int, ...]):
    """Returns the custom_vjp-wrapped ``(C, Dx, Dw)`` for one stride and operand shapes."""

    # The primal maps with custom vmap rules (C and Dx: the kernel is the per-task
    # argument; Dw: its result is per task whenever either input is).
    c_raw = jax.custom_batching.custom_vmap(lambda x, w: _conv(x, w, stride))
    dx_raw = jax.custom_batching.custom_vmap(lambda g, w: _conv_dx(g, w, stride, x_shape))
    dw_raw = jax.custom_batching.custom_vmap(lambda x, g: _conv_dw(x, g, stride, w_shape))
    c_raw.def_vmap(_unrolled_rule(c_raw, weight_args=(1,)))
    dx_raw.def_vmap(_unrolled_rule(dx_raw, weight_args=(1,)))
    # Dw sums over examples: a batched x or g means one kernel gradient per task.
    dw_raw.def_vmap(_unrolled_rule(dw_raw, weight_args=(0, 1)))

    conv, conv_dx, conv_dw = (jax.custom_vjp(f) for f in (c_raw, dx_raw, dw_raw))
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


def conv2d_unrolled(
    x: Float[Array, "b h w cin"], w: Float[Array, "kh kw cin cout"], stride: int
) -> Float[Array, "b oh ow cout"]:
    """Returns the same 'SAME' strided convolution as ``lax.conv_general_dilated``; under
    ``vmap`` over per-task kernels it runs one convolution per task (see module docstring)."""
    return _ops(int(stride), tuple(x.shape), tuple(w.shape))[0](x, w)
