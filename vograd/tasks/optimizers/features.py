"""Per-parameter input features shared by the learned optimizers.

All helpers work on one parameter tensor at a time and use a *features-first*
layout ``[F, n]`` (feature rows, one column per scalar parameter): the small
per-parameter networks are then ``W.T @ x`` products whose long axis is
contiguous, which is what XLA's CPU dot handles fastest for tiny ``F``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

RMS_EPS = 1e-5  # Metz 2019 code: x / sqrt(1e-5 + mean(x^2))


def update_momenta(
    decays: Float[Array, " k"], momenta: Float[Array, "k ..."], g: Float[Array, "..."]
) -> Float[Array, "k ..."]:
    """Returns ``m_beta <- beta m_beta + (1 - beta) g`` for every decay, shape ``[k, *g.shape]``."""
    beta = decays.reshape((-1,) + (1,) * g.ndim).astype(g.dtype)
    return beta * momenta + (1.0 - beta) * g[None]


def feature_rows(*rows: Array) -> Float[Array, "f n"]:
    """Returns the arrays flattened and stacked as rows, shape ``[f, n]``.

    Each argument is either one tensor of shape ``s`` (one row) or a stack of
    shape ``[k, *s]`` (``k`` rows); all share ``n = prod(s)``.
    """
    base = jnp.shape(rows[0])
    n = math.prod(base)
    flat = [r.reshape(1 if jnp.shape(r) == base else r.shape[0], n) for r in rows]
    return jnp.concatenate(flat, axis=0)


def rms_scale(x: Float[Array, "f n"], eps: float = RMS_EPS) -> Float[Array, " f"]:
    """Returns ``1 / sqrt(eps + mean_n x^2)`` per row: the factor that normalises each
    feature over its tensor (Metz 2019), shape ``[f]``."""
    return jax.lax.rsqrt(eps + jnp.mean(jnp.square(x), axis=1))


def time_features(
    t: Int[Array, ""], taus: Sequence[float], dtype=jnp.float32
) -> Float[Array, " tau"]:
    """Returns ``tanh(t / tau - 1)`` for each ``tau`` (Metz 2019), shape ``[len(taus)]``."""
    if not taus:
        return jnp.zeros((0,), dtype)
    tau = jnp.asarray(taus, dtype)
    return jnp.tanh(t.astype(dtype) / tau - 1.0)
