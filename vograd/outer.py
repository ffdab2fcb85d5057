"""Outer-gradient hygiene: the outer optimizer as a chain of optax transforms.

Metz et al. (2019, authors' code): clip the merged outer gradient by value to
+-0.1, skip non-finite updates, then Adam with learning rate 1e-5 and
beta1 = 0.5 (their 2020 paper used 3e-5). Everything here composes existing
optax transforms; nothing is re-implemented.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float

try:
    _tree_norm = optax.tree.norm
except AttributeError:  # optax < 0.2.5
    _tree_norm = optax.global_norm

# apply_if_finite gives up (applies a non-finite update) after this many
# consecutive non-finite gradients; the outer loop never wants that.
_NEVER_GIVE_UP = 2**31 - 1


def outer_optimizer(
    learning_rate: float | optax.Schedule = 1e-5,
    *,
    b1: float = 0.5,
    b2: float = 0.999,
    eps: float = 1e-8,
    clip_value: float | None = 0.1,
    clip_norm: float | None = None,
    skip_nonfinite: bool = True,
) -> optax.GradientTransformation:
    """Returns ``[apply_if_finite](chain(clip(clip_value), clip_by_global_norm(clip_norm), adam))``.

    Defaults are Metz et al. (2019): value clipping to +-0.1, Adam(1e-5,
    b1=0.5). ``clip_value`` / ``clip_norm`` of None leave that clip out.
    ``skip_nonfinite`` wraps the chain in ``optax.apply_if_finite`` so that a
    NaN/inf gradient leaves parameters and Adam moments untouched even outside
    `vograd.train` (which also skips such updates itself and logs them).
    """
    if not (callable(learning_rate) or learning_rate > 0):
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    for name, beta in (("b1", b1), ("b2", b2)):
        if not 0 <= beta < 1:
            raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
    if clip_value is not None and not clip_value > 0:
        raise ValueError(f"clip_value must be > 0 or None, got {clip_value!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0 or None, got {clip_norm!r}")
    parts = []
    if clip_value is not None:
        parts.append(optax.clip(clip_value))
    if clip_norm is not None:
        parts.append(optax.clip_by_global_norm(clip_norm))
    parts.append(optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))
    chain = optax.chain(*parts)
    if skip_nonfinite:
        chain = optax.apply_if_finite(chain, max_consecutive_errors=_NEVER_GIVE_UP)
    return chain


def global_norm(tree: Any) -> Float[Array, ""]:
    """Returns ``sqrt(sum_j g_j^2)`` over all leaves (``optax.tree.norm``)."""
    return _tree_norm(tree)


def all_finite(tree: Any) -> Bool[Array, ""]:
    """Returns True when every element of every floating-point leaf is finite."""
    flags = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)
