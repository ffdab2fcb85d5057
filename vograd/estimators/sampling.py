"""Antithetic pairing: from ``P`` noise draws to a population of ``2P`` branches.

Branch layout is pair-major: branch ``2i`` runs ``theta + eps_i`` and branch
``2i + 1`` runs ``theta - eps_i``. Keeping the two branches of a pair adjacent
means a population sharded along its leading axis keeps pairs on one device
whenever the number of devices divides ``P``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from vograd.estimators.stats import gaussian_like
from vograd.system import Theta

Tree = Any


def draw_noise(key: PRNGKeyArray, theta: Theta, num: int, sigma: float) -> Tree:
    """Returns ``num`` perturbations ``eps_i ~ N(0, sigma^2 I)`` shaped like theta: leaves ``[num, ...]``."""
    return gaussian_like(key, theta, num, sigma)


def perturbed(theta: Theta, eps: Tree, antithetic: bool) -> Tree:
    """Returns the branch parameters: leaves ``[2P, ...]`` (``theta +- eps_i``) or ``[P, ...]``."""
    if not antithetic:
        return jax.tree.map(lambda t, e: t + e, theta, eps)
    signs = (1.0, -1.0)
    return jax.tree.map(
        lambda t, e: jnp.stack([t + s * e for s in signs], axis=1).reshape((-1,) + e.shape[1:]),
        theta,
        eps,
    )


def broadcast(theta: Theta, num: int) -> Tree:
    """Returns ``num`` copies of theta stacked along a new leading axis."""
    return jax.tree.map(lambda t: jnp.broadcast_to(t, (num,) + jnp.shape(t)), theta)


def repeat_pairs(tree: Tree) -> Tree:
    """Returns every leaf ``[P, ...]`` repeated to ``[2P, ...]`` (both branches of a pair)."""
    return jax.tree.map(lambda x: jnp.repeat(x, 2, axis=0), tree)


def split_pairs(tree: Tree) -> Tree:
    """Returns every leaf ``[2P, ...]`` reshaped to ``[P, 2, ...]`` (index 0: + branch)."""
    return jax.tree.map(lambda x: x.reshape((-1, 2) + x.shape[1:]), tree)


def merge_pairs(tree: Tree) -> Tree:
    """Returns every leaf ``[P, 2, ...]`` reshaped to ``[2P, ...]``; inverse of `split_pairs`."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)


def positive_branch(tree: Tree) -> Tree:
    """Returns the ``theta + eps`` branch of every pair: ``[2P, ...] -> [P, ...]``."""
    return jax.tree.map(lambda x: x[0::2], tree)


def negative_branch(tree: Tree) -> Tree:
    """Returns the ``theta - eps`` branch of every pair: ``[2P, ...] -> [P, ...]``."""
    return jax.tree.map(lambda x: x[1::2], tree)
