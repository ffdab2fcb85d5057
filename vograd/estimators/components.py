"""Per-sample gradient formulas, shared by the windowed estimators.

Each takes the `Draws` of ``P`` samples (losses ``[P, b]``, gradients
``[P, b, ...]``, perturbations ``eps`` ``[P, ...]``) and returns one estimate per
sample, leaves ``[P, ...]`` shaped like theta.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from vograd.estimators.windowed import Draws

Tree = Any


def reparameterization(draws: Draws) -> Tree:
    """Returns ``g_rp_i``: the mean over a sample's branches of ``grad L(theta_branch)``.

    Antithetic: ``(grad L(theta + eps_i) + grad L(theta - eps_i)) / 2``.
    """
    return jax.tree.map(lambda g: jnp.mean(g, axis=1), draws.grad)


def evolution_strategies(draws: Draws, sigma: float) -> Tree:
    """Returns ``g_es_i = (L(theta + eps_i) - L(theta - eps_i)) eps_i / (2 sigma^2)``."""
    diff = (draws.loss[:, 0] - draws.loss[:, 1]) / (2.0 * sigma**2)
    return jax.tree.map(lambda e: diff.reshape((-1,) + (1,) * (e.ndim - 1)) * e, draws.eps)


def backprop(draws: Draws) -> Tree:
    """Returns ``grad L(theta)`` of each sample's single, unperturbed branch."""
    return jax.tree.map(lambda g: g[:, 0], draws.grad)


def scale_noise(coef: Float[Array, " P"], eps: Tree) -> Tree:
    """Returns ``coef_i * eps_i`` per sample: leaves ``[P, ...]``."""
    return jax.tree.map(lambda e: coef.reshape((-1,) + (1,) * (e.ndim - 1)) * e, eps)
