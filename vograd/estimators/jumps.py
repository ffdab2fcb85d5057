"""Detecting near-discontinuities from the antithetic pairs of a merge.

For a loss smooth along the segment ``[theta - eps, theta + eps]`` of a pair,
the trapezoid rule gives the loss difference from the two end gradients:

    A = L(theta + eps) - L(theta - eps),     B = eps . (grad L+ + grad L-),
    A - B = -(2/3) |eps|^3 L'''  + O(|eps|^5)      (exact 0 for quadratics)

with ``A ~ B ~ 2 |eps| L'`` and the derivatives taken along ``eps``; so the
ratio ``rho = |A - B| / (|A| + |B|)`` is at most 1/2 up to third order, the
worst case being a stationary point (``L' = 0``). A jump ``J`` of the loss
inside the segment, which the end gradients cannot see, adds ``J`` to ``A``
only, and ``rho -> 1`` as ``J`` dominates. A pair is flagged when
``rho > JUMP_RATIO = 0.75``. Differences below the float resolution of the
losses (``sqrt(machine eps) * |L|``) are not trusted either way: they are
added to the denominator.

Both are recovered from the per-sample components of `vograd.Merged`
(``g_es_i = A eps_i / (2 sigma^2)``, ``g_rp_i = (grad L+ + grad L-) / 2``, so
``B = 2 eps_i . g_rp_i``), so detection costs a few dot products and no unroll.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from vograd.estimators.reduce import Samples

Tree = Any

JUMP_RATIO = 0.75


def _dot(a: Tree, b: Tree) -> Float[Array, " S"]:
    """Returns, per sample, the dot product of two ``[S, ...]``-leaved trees."""
    terms = jax.tree.leaves(
        jax.tree.map(lambda x, y: jnp.sum((x * y).reshape(x.shape[0], -1), axis=1), a, b)
    )
    return sum(terms[1:], terms[0])


def trapezoid_ratio(samples: Samples, sigma: float) -> Float[Array, " S"]:
    """Returns ``rho_i = |A_i - B_i| / (|A_i| + |B_i| + tol_i)`` per pair (module doc).

    ``A_i = 2 sigma^2 (eps_i . g_es_i) / |eps_i|^2`` (the loss difference of the
    pair), ``B_i = 2 eps_i . g_rp_i``, ``tol_i = sqrt(machine eps) |L_i|``.
    """
    eps = samples.noise
    es, rp = samples.components["es"], samples.components["rp"]
    norm2 = _dot(eps, eps)
    a = 2.0 * sigma**2 * _dot(eps, es) / jnp.where(norm2 > 0, norm2, 1.0)
    b = 2.0 * _dot(eps, rp)
    tol = jnp.sqrt(jnp.finfo(samples.loss.dtype).eps) * jnp.abs(samples.loss)
    return jnp.abs(a - b) / (jnp.abs(a) + jnp.abs(b) + tol + jnp.finfo(samples.loss.dtype).tiny)


def jump_flags(samples: Samples, sigma: float) -> Bool[Array, " S"]:
    """Returns, per kept pair, whether its segment holds a jump (``rho > JUMP_RATIO``);
    non-finite ratios (dropped pairs) are not flagged."""
    rho = trapezoid_ratio(samples, sigma)
    return samples.keep & jnp.isfinite(rho) & (rho > JUMP_RATIO)
