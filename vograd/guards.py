"""Checks run once before training compiles anything: seeds, outer parameters, the system.

`check_system` traces ``system.init`` and ``system.step`` with
``equinox.filter_eval_shape`` (shapes and dtypes only: nothing is compiled or
run) and names every violation with its leaf path, where a bad system would
otherwise train nothing silently (an integer loss has gradient 0), train on
a complex loss's real part, or fail deep inside ``lax.cond`` ("branches must
have equal output types").
"""

from __future__ import annotations

import operator
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

SEED_LIMIT = 2**32


def check_seed(seed: Any) -> int:
    """Returns ``seed`` as an int; ValueError unless ``0 <= seed < 2**32``.

    ``jax.random.key(seed)`` keeps only 32 bits (seeds 0 and 2**32 give the
    same key) and overflows past int64, so seeds passed by recipes and the
    command line are held to this one range.
    """
    if isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    try:
        value = operator.index(seed)
    except TypeError:
        raise TypeError(f"seed must be an integer, got {seed!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"seed must be in [0, 2**32) = [0, {SEED_LIMIT - 1}], got {value}")
    return value


def _fmt(x: Any) -> str:
    return f"{jnp.dtype(x.dtype)}[{','.join(map(str, x.shape))}]"


def _theta_problems(theta: Any) -> list[str]:
    problems = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(theta):
        where = f"theta{jax.tree_util.keystr(path)}"
        try:
            dtype = jnp.result_type(leaf)
        except TypeError:
            problems.append(f"{where} is a {type(leaf).__name__}, not an array")
            continue
        if not jnp.issubdtype(dtype, jnp.floating):
            problems.append(
                f"{where} has dtype {dtype}: outer parameters must be real floating point "
                "(integer and boolean leaves get no gradient, complex ones are not supported)"
            )
            continue
        bad = int(np.size(leaf) - np.count_nonzero(np.isfinite(np.asarray(leaf))))
        if bad:
            problems.append(f"{where} has {bad} non-finite values (NaN or inf) initially")
    return problems


def _state_problems(before: Any, after: Any) -> list[str]:
    def leaves(tree):
        return jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is None)

    (la, da), (lb, db) = leaves(before), leaves(after)
    if da != db:
        return [f"system.step returns a state of another structure than system.init: {db} "
                f"instead of {da}"]
    out = []
    for (path, a), (_, b) in zip(la, lb):
        if hasattr(a, "dtype") and hasattr(b, "dtype") and (
            a.shape != b.shape or jnp.dtype(a.dtype) != jnp.dtype(b.dtype)
        ):
            out.append(f"state{jax.tree_util.keystr(path)}: system.init gives {_fmt(a)}, "
                       f"system.step returns {_fmt(b)}")
    return out


def _loss_problems(loss: Any) -> list[str]:
    if not hasattr(loss, "dtype"):
        return [f"system.step returns a loss of type {type(loss).__name__}, not an array"]
    out = []
    if tuple(loss.shape) != ():
        out.append(f"system.step returns a loss of shape {tuple(loss.shape)}; it must be a "
                   "scalar, shape ()")
    if not jnp.issubdtype(loss.dtype, jnp.floating):
        out.append(f"system.step returns a loss of dtype {jnp.dtype(loss.dtype)}; it must be real "
                   "floating point (an integer loss has gradient 0, a complex one no order)")
    return out


def check_system(system: Any, theta: Any, key: PRNGKeyArray) -> None:
    """Raises ValueError listing every problem of ``system`` with ``theta``, before compiling.

    Checked: every leaf of ``theta`` is a real floating-point array with only
    finite values; ``system.step`` returns a loss that is a real floating
    scalar of shape ``()``, and a state of the structure, shapes and dtypes
    ``system.init`` gives (the estimators carry it through ``lax.cond`` and
    ``lax.scan``, which require that). Only shapes are traced
    (``eqx.filter_eval_shape``).
    """
    problems = _theta_problems(theta)
    if not problems:
        def init_and_step(theta, key):
            k_init, k_step = jax.random.split(key)
            state = system.init(theta, k_init)
            return state, system.step(theta, state, k_step)

        state, (new_state, loss) = eqx.filter_eval_shape(init_and_step, theta, key)
        problems = _loss_problems(loss) + _state_problems(state, new_state)
    if problems:
        shown = problems[:6] + ([f"and {len(problems) - 6} more"] if len(problems) > 6 else [])
        raise ValueError(f"{type(system).__name__} cannot be trained: " + "; ".join(shown))
