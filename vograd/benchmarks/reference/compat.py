"""Import shims that let learned_optimization 0.0.1 (2021) run on the project's jax.

Only names that jax has since moved are restored, each pointing at its
current equivalent; nothing of learned_optimization's own code is changed.
Used by `vograd.benchmarks.reference.run` before it imports learned_optimization.
"""

from __future__ import annotations

import jax
import jax.tree_util as tree_util

_TREE_ALIASES = {
    "tree_multimap": tree_util.tree_map,  # removed from jax in 0.3.16
    "tree_map": tree_util.tree_map,
    "tree_leaves": tree_util.tree_leaves,
    "tree_flatten": tree_util.tree_flatten,
    "tree_unflatten": tree_util.tree_unflatten,
    "tree_structure": tree_util.tree_structure,
}


def install() -> None:
    """Restores the moved names on the ``jax`` module (idempotent)."""
    for name, fn in _TREE_ALIASES.items():
        if not hasattr(jax, name):
            setattr(jax, name, fn)
    if not hasattr(tree_util, "tree_multimap"):
        tree_util.tree_multimap = tree_util.tree_map
    if not hasattr(jax, "ShapedArray"):  # used only for shapes and dtypes there
        jax.ShapedArray = jax.ShapeDtypeStruct
    if not hasattr(jax.lib, "xla_client"):  # used only in a type annotation there
        from jax._src.lib import xla_client

        jax.lib.xla_client = xla_client
