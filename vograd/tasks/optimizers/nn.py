"""Small network pieces of the learned optimizers: dense layers and an LSTM cell.

Everything uses the *features-first* layout: an activation is ``[features, n]``
with one column per independent application (a scalar parameter for the
coordinatewise optimizers, a tensor for the per-tensor LSTM), so a layer is
``W.T @ x + b[:, None]``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class Dense(eqx.Module):
    """An affine layer ``y = w.T @ x + b[:, None]``: ``w`` is ``[in, out]``, ``b`` is ``[out]``."""

    w: Float[Array, "i o"]
    b: Float[Array, " o"]

    def __call__(self, x: Float[Array, "i n"]) -> Float[Array, "o n"]:
        """Returns ``w.T @ x + b[:, None]``, shape ``[out, n]``."""
        return self.w.T @ x + self.b[:, None]


def normal_blocks(key: PRNGKeyArray, shapes: list[tuple[int, ...]]) -> list[Array]:
    """Returns standard-normal arrays of the given shapes, cut from ONE draw.

    One ``jax.random.normal`` call instead of one per weight matrix: each call
    compiles its own threefry hash, and a dozen of them took ~5 s of CPU to
    compile against ~1 s for a single draw.
    """
    sizes = [math.prod(s) for s in shapes]
    z = jax.random.normal(key, (sum(sizes),))
    out, offset = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(z[offset : offset + size].reshape(shape))
        offset += size
    return out


def dense_init(noise: Float[Array, "i o"], gain: float = 1.0) -> Dense:
    """Returns a `Dense` with ``w = noise * sqrt(gain / fan_in)`` and zero bias
    (``noise`` standard normal; ``gain = 2`` is He initialisation for ReLU
    layers, 1 is LeCun)."""
    fan_in, fan_out = noise.shape
    return Dense(w=noise * math.sqrt(gain / max(fan_in, 1)), b=jnp.zeros((fan_out,)))


class LSTMCell(eqx.Module):
    """Weights of one LSTM layer with ``U`` units and gate order (input, forget, cell, output).

    ``w_x`` is ``[in, 4U]``, ``w_h`` is ``[U, 4U]``, ``b`` is ``[4U]``.
    """

    w_x: Float[Array, "i g"]
    w_h: Float[Array, "u g"]
    b: Float[Array, " g"]

    @property
    def units(self) -> int:
        """Returns ``U``."""
        return self.w_h.shape[0]

    def __call__(
        self, x: Float[Array, "i n"], h: Float[Array, "u n"], c: Float[Array, "u n"]
    ) -> tuple[Float[Array, "u n"], Float[Array, "u n"]]:
        """Returns the new ``(h, c)``, each ``[U, n]``.

        ``z = w_x.T x + w_h.T h + b``; ``c' = s(z_f) c + s(z_i) tanh(z_g)``;
        ``h' = s(z_o) tanh(c')`` with ``s`` the logistic sigmoid.
        """
        u = self.units
        # One product over the stacked [x; h] (not two summed ones): the [4U, n]
        # pre-activation is written once; measured ~25% faster for n ~ 13k.
        w = jnp.concatenate([self.w_x, self.w_h])
        z = w.T @ jnp.concatenate([x, h.astype(x.dtype)]) + self.b[:, None]
        i, f, g, o = z[:u], z[u : 2 * u], z[2 * u : 3 * u], z[3 * u :]
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return h, c


def lstm_init(
    noise_x: Float[Array, "i g"], noise_h: Float[Array, "u g"], forget_bias: float = 1.0
) -> LSTMCell:
    """Returns an `LSTMCell` with weights ``noise / sqrt(fan_in)`` (``noise`` standard
    normal, ``[in, 4U]`` and ``[U, 4U]``) and the forget-gate bias set to
    ``forget_bias`` (a common choice that keeps memory early in training)."""
    inputs, units = noise_x.shape[0], noise_h.shape[0]
    b = jnp.zeros((4 * units,)).at[units : 2 * units].set(forget_bias)
    return LSTMCell(
        w_x=noise_x * math.sqrt(1.0 / max(inputs, 1)),
        w_h=noise_h * math.sqrt(1.0 / units),
        b=b,
    )
