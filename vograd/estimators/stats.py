"""Per-sample reductions shared by the estimators: noise, means, variances.

Samples are pytrees whose leaves carry a leading sample axis ``[S, ...]``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

Tree = Any


def gaussian_like(key: PRNGKeyArray, tree: Tree, num: int, sigma: float) -> Tree:
    """Returns ``num`` draws of ``sigma * N(0, I)`` shaped like ``tree``: leaves ``[num, ...]``."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    noise = [
        sigma * jax.random.normal(k, (num,) + jnp.shape(x), jnp.result_type(x))
        for k, x in zip(keys, leaves)
    ]
    return jax.tree.unflatten(treedef, noise)


def finite_per_sample(*trees: Tree) -> Bool[Array, " S"]:
    """Returns, per sample, whether every element of every leaf is finite."""
    ok = None
    for tree in trees:
        for x in jax.tree.leaves(tree):
            fin = jnp.all(jnp.isfinite(x).reshape(x.shape[0], -1), axis=1)
            ok = fin if ok is None else ok & fin
    if ok is None:
        raise ValueError("finite_per_sample needs at least one array")
    return ok


def _bcast(keep: Bool[Array, " S"], x: Array) -> Array:
    return keep.reshape(keep.shape + (1,) * (x.ndim - 1))


def masked_mean(samples: Tree, keep: Bool[Array, " S"]) -> Tree:
    """Returns the mean over kept samples (zeros when none is kept).

    Dropped samples are replaced by 0 before summing (``where``, not a
    multiply), so a NaN in a dropped sample cannot leak into the mean.
    """
    n = jnp.maximum(jnp.sum(keep), 1)
    return jax.tree.map(
        lambda x: jnp.sum(jnp.where(_bcast(keep, x), x, 0), axis=0) / n, samples
    )


def masked_variance(samples: Tree, keep: Bool[Array, " S"], mean: Tree) -> Tree:
    """Returns the unbiased per-element variance over kept samples.

    ``Var[j] = sum_s (x_s[j] - mean[j])^2 / (n - 1)``; 0 when fewer than two
    samples are kept.
    """
    n = jnp.sum(keep)
    denom = jnp.maximum(n - 1, 1)
    return jax.tree.map(
        lambda x, m: jnp.sum(jnp.where(_bcast(keep, x), (x - m) ** 2, 0), axis=0)
        / denom,
        samples,
        mean,
    )


def tree_total(tree: Tree) -> Float[Array, ""]:
    """Returns the sum of all elements of all leaves."""
    return sum(jnp.sum(x) for x in jax.tree.leaves(tree))


def tree_size(tree: Tree) -> int:
    """Returns the number of elements in the pytree."""
    return sum(int(jnp.size(x)) for x in jax.tree.leaves(tree))


def num_dropped(keep: Bool[Array, " S"]) -> Int[Array, ""]:
    """Returns how many samples were dropped."""
    return jnp.sum(~keep).astype(jnp.int32)
