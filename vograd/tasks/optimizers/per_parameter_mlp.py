"""The per-parameter MLP of the coordinatewise learned optimizers: fused forward, blocked backward.

``mlp_outputs(w1, b1, w2, b2, rows) -> (d, s)`` applies one hidden layer of ReLU
units to every scalar parameter of a tensor. With ``F`` feature rows ``x_f``
(each of the tensor's shape, ``n`` scalars) and ``H`` hidden units:

    pre_j = b1_j + sum_f w1[f, j] x_f,   h_j = relu(pre_j),
    d = b2_0 + sum_j w2[j, 0] h_j,       s = b2_1 + sum_j w2[j, 1] h_j.

Why a primitive of its own (docs/performance.md, "The reverse pass through the per-parameter MLP"): with
``F`` and ``H`` of 5-32 the dense form ``[H, F] @ [F, n]`` is memory-bound on a
CPU, because its ``[H, n]`` hidden layer goes through memory at a few FLOPs
per byte (11 GFLOP/s measured against a 190 GFLOP/s matmul peak). So

- the forward is written unit by unit as elementwise expressions, which XLA
  fuses into one pass over the parameters with the hidden layer in registers;
- the backward (a ``jax.custom_vjp``) walks the columns in blocks of `BLOCK`
  with ``lax.fori_loop``: per block it recomputes the hidden layer and runs the
  dense form's VJP (`_block_vjp`), so ``[H, BLOCK]`` stays in cache; the
  weight gradients are summed over blocks. Reverse mode through the
  elementwise form instead would be ``H (F + 2)`` separate reductions over
  ``n``.

The ReLU's derivative at 0 is taken as 0. Forward-mode differentiation
(``jax.jvp``) is not supported, as for any ``custom_vjp``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

# Columns per block of the backward pass. Chosen on the gradient of a 10-step window of
# the Metz optimizer over 16 tasks of the 784-16-10 MLP (so 16 x 256 columns per loop
# step), in one run on 2 CPU cores: 128: 430 ms, 256: 394, 512: 396, 1,024: 389, against
# 469 for the dense VJP over all columns (docs/performance.md). From 256 up is within
# noise; 256 keeps a block's activations smallest ([16, 32, 256] float32: 512 KiB).
BLOCK = 256


def _elementwise(w1, b1, w2, b2, rows: tuple[Array, ...]) -> tuple[Array, Array]:
    d, s = b2[0], b2[1]
    for j in range(w1.shape[1]):
        pre = b1[j]
        for f, x in enumerate(rows):
            pre = pre + w1[f, j] * x
        h = jnp.maximum(pre, 0.0)
        d = d + w2[j, 0] * h
        s = s + w2[j, 1] * h
    return d, s


@jax.custom_vjp
def mlp_outputs(
    w1: Float[Array, "F H"],
    b1: Float[Array, " H"],
    w2: Float[Array, "H 2"],
    b2: Float[Array, " 2"],
    rows: tuple[Array, ...],
) -> tuple[Array, Array]:
    """Returns the MLP's outputs ``(d, s)``, each of the rows' shape (see the module doc).

    ``rows``: ``F`` arrays of one shape. Reverse mode runs the blocked backward.
    """
    return _elementwise(w1, b1, w2, b2, rows)


def _forward(w1, b1, w2, b2, rows):
    return _elementwise(w1, b1, w2, b2, rows), (w1, b1, w2, b2, rows)


def _block_vjp(w1, b1, w2, xc: Float[Array, "F c"], ct: Float[Array, "2 c"]):
    """Returns ``(dw1, db1, dw2, db2)`` of one block of columns and its ``dx`` ``[F, c]``.

    The two products with a short contraction (``F`` for the hidden layer, 2 for the
    output layer's transpose) are written as broadcast multiply-adds, which XLA fuses
    with the ReLU and its mask into one pass (12% off a window gradient against five
    dots, docs/performance.md); the three long ones stay dots.
    """
    pre = b1[:, None]
    for f in range(xc.shape[0]):
        pre = pre + w1[f][:, None] * xc[f][None, :]  # [H, c]
    h = jnp.maximum(pre, 0.0)
    dh = w2[:, 0:1] * ct[0][None, :] + w2[:, 1:2] * ct[1][None, :]
    dpre = jnp.where(pre > 0, dh, 0.0)  # [H, c]
    grads = (xc @ dpre.T, jnp.sum(dpre, axis=1), h @ ct.T, jnp.sum(ct, axis=1))
    return grads, w1 @ dpre


def _backward(residuals, cotangents):
    w1, b1, w2, b2, rows = residuals
    shape = jnp.shape(rows[0])
    n = math.prod(shape)
    dtype = jnp.result_type(rows[0])
    # Rows and cotangents stay separate flat arrays: stacking them into [F, n] and
    # [2, n] made XLA write transposed layouts (18 ms of a 47 ms step VJP, measured).
    flat = [jnp.reshape(r, (n,)) for r in rows] + [jnp.reshape(c, (n,)).astype(dtype)
                                                    for c in cotangents]
    blocks = -(-n // BLOCK) if n > BLOCK else 1
    size = BLOCK if n > BLOCK else n
    pad = blocks * size - n  # padded columns have zero cotangent: they add nothing
    if pad:
        flat = [jnp.pad(a, (0, pad)) for a in flat]
    num_rows = len(rows)

    def block(start):
        cols = [jax.lax.dynamic_slice_in_dim(a, start, size) for a in flat]
        return _block_vjp(w1, b1, w2, jnp.stack(cols[:num_rows]), jnp.stack(cols[num_rows:]))

    if blocks == 1:
        (dw1, db1, dw2, db2), dx = block(0)
        dx = [dx[f] for f in range(num_rows)]
    else:
        def body(i, carry):
            acc, dx = carry
            start = i * size
            grads, dxc = block(start)
            acc = jax.tree.map(jnp.add, acc, grads)
            dx = [jax.lax.dynamic_update_slice_in_dim(d, dxc[f], start, axis=0)
                  for f, d in enumerate(dx)]
            return acc, dx

        zeros = (jnp.zeros_like(w1), jnp.zeros_like(b1), jnp.zeros_like(w2), jnp.zeros_like(b2))
        dx0 = [jnp.zeros((blocks * size,), dtype) for _ in rows]
        (dw1, db1, dw2, db2), dx = jax.lax.fori_loop(0, blocks, body, (zeros, dx0))
    drows = tuple(jnp.reshape(d[:n], shape).astype(r.dtype) for d, r in zip(dx, rows))
    return (dw1.astype(w1.dtype), db1.astype(b1.dtype), dw2.astype(w2.dtype),
            db2.astype(b2.dtype), drows)


mlp_outputs.defvjp(_forward, _backward)

__all__ = ["BLOCK", "mlp_outputs"]
