"""Hand-designed baseline optimizers, built from optax pieces.

Every factory returns an ``optax.GradientTransformation`` and accepts plain
floats or traced scalars, so a grid of hyperparameters can be vmapped.

``adam_reg_decay`` is the 8-hyperparameter "Adam+Reg+Decay" baseline of Metz et
al. (2019), Section 4.4: Adam (learning rate, beta1, beta2, epsilon), a
learning-rate schedule with exponential and linear decay, and l1 / l2 penalties
added to the loss (so their gradients are added to the gradient *before* Adam's
normalisation, unlike AdamW's decoupled decay). The decay coefficients follow
the convention of the same authors' TaskSet ``adam8p`` (Metz et al. 2020):
per-step rates for a 10,000-step run, with the step count rescaled by
``10000 / num_steps`` for runs of another length, so one configuration gives
the same schedule *shape* over any horizon.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

REFERENCE_STEPS = 10_000  # the horizon at which the decay rates are per-step rates

Scalar = float | Float[Array, ""]


def adam(learning_rate: Scalar) -> optax.GradientTransformation:
    """Returns ``optax.adam(learning_rate)`` (beta1 0.9, beta2 0.999, eps 1e-8)."""
    return optax.adam(learning_rate)


def rmsprop(learning_rate: Scalar) -> optax.GradientTransformation:
    """Returns ``optax.rmsprop(learning_rate)`` (decay 0.9, eps 1e-8)."""
    return optax.rmsprop(learning_rate)


def sgd_momentum(learning_rate: Scalar, momentum: Scalar = 0.9) -> optax.GradientTransformation:
    """Returns SGD with heavy-ball momentum, ``optax.sgd(learning_rate, momentum)``."""
    return optax.sgd(learning_rate, momentum=momentum)


def add_l1_l2_gradient(l1: Scalar, l2: Scalar) -> optax.GradientTransformation:
    """Returns a transformation adding ``l1 * sign(w) + l2 * w`` to the gradient:
    the gradient of the penalty ``l1 * |w|_1 + l2 * |w|^2 / 2`` (a subgradient
    of 0 at ``w = 0``). Needs ``params``. optax has ``add_decayed_weights`` for the
    l2 term but nothing for l1, hence this piece."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("add_l1_l2_gradient needs the parameters: call update(g, s, params)")
        updates = jax.tree.map(lambda g, w: g + l1 * jnp.sign(w) + l2 * w, updates, params)
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def reg_decay_schedule(
    learning_rate: Scalar, exp_decay: Scalar, linear_decay: Scalar, num_steps: int
) -> optax.Schedule:
    """Returns ``t -> lr * exp(-exp_decay * s) * max(0, 1 - linear_decay * s)`` with
    ``s = t * 10000 / num_steps`` (TaskSet's ``adam8p`` schedule)."""
    if num_steps < 1:
        raise ValueError(f"reg_decay_schedule: num_steps must be >= 1, got {num_steps}")
    rescale = REFERENCE_STEPS / num_steps

    def schedule(count):
        s = jnp.asarray(count, jnp.float32) * rescale
        return learning_rate * jnp.exp(-exp_decay * s) * jnp.maximum(1.0 - linear_decay * s, 0.0)

    return schedule


def adam_reg_decay(
    learning_rate: Scalar,
    beta1: Scalar = 0.9,
    beta2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    exp_decay: Scalar = 0.0,
    linear_decay: Scalar = 0.0,
    l1: Scalar = 0.0,
    l2: Scalar = 0.0,
    *,
    num_steps: int = REFERENCE_STEPS,
) -> optax.GradientTransformation:
    """Returns Adam+Reg+Decay: ``chain(add l1/l2 gradient, scale_by_adam, -schedule)``.

    Update: ``g' = g + l1 sign(w) + l2 w``; Adam moments of ``g'`` with ``beta1``,
    ``beta2``, ``eps`` (bias-corrected, optax's ``scale_by_adam``); step
    ``-lr_t * m_hat / (sqrt(v_hat) + eps)`` with ``lr_t`` from `reg_decay_schedule`.
    """
    return optax.chain(
        add_l1_l2_gradient(l1, l2),
        optax.scale_by_adam(b1=beta1, b2=beta2, eps=eps),
        optax.scale_by_learning_rate(reg_decay_schedule(learning_rate, exp_decay, linear_decay, num_steps)),
    )


class LogUniform(NamedTuple):
    """A log-uniform range ``[low, high]``; ``one_minus`` samples ``1 - x`` instead
    (for decays such as beta1 whose interesting values crowd near 1)."""

    low: float
    high: float
    one_minus: bool = False


# Narrower than TaskSet's "wide grid" (lr 1e-8..10, eps 1e-10..1e3, l1/l2 1e-8..10),
# which spends most samples on diverging or frozen runs; decays as in TaskSet.
ADAM_REG_DECAY_RANGES: dict[str, LogUniform] = {
    "learning_rate": LogUniform(1e-5, 1e-1),
    "beta1": LogUniform(1e-3, 1.0, one_minus=True),
    "beta2": LogUniform(1e-5, 1e-1, one_minus=True),
    "eps": LogUniform(1e-10, 1e-2),
    "exp_decay": LogUniform(1e-6, 1e-3),
    "linear_decay": LogUniform(1e-7, 1e-4),
    "l1": LogUniform(1e-8, 1e-3),
    "l2": LogUniform(1e-8, 1e-2),
}


def sample_adam_reg_decay(
    key: PRNGKeyArray, ranges: dict[str, LogUniform] | None = None
) -> dict[str, Float[Array, ""]]:
    """Returns one random-search draw of `adam_reg_decay`'s 8 hyperparameters.

    Each value is log-uniform in its `LogUniform` range (``ADAM_REG_DECAY_RANGES``
    by default); the dict's keys are `adam_reg_decay`'s argument names, so
    ``adam_reg_decay(**sample, num_steps=T)`` builds the optimizer. Pure and
    vmappable: ``jax.vmap(sample_adam_reg_decay)(keys)`` gives a batch.
    """
    ranges = ADAM_REG_DECAY_RANGES if ranges is None else ranges
    unknown = set(ranges) - set(ADAM_REG_DECAY_RANGES)
    if unknown:
        raise KeyError(f"unknown adam_reg_decay hyperparameters {sorted(unknown)}")
    out = {}
    for k, (name, r) in zip(jax.random.split(key, len(ranges)), sorted(ranges.items())):
        if not 0 < r.low <= r.high:
            raise ValueError(f"{name}: need 0 < low <= high, got {r}")
        u = jax.random.uniform(k, (), minval=jnp.log(r.low), maxval=jnp.log(r.high))
        x = jnp.exp(u)
        out[name] = 1.0 - x if r.one_minus else x
    return out


__all__ = [
    "ADAM_REG_DECAY_RANGES",
    "LogUniform",
    "REFERENCE_STEPS",
    "adam",
    "adam_reg_decay",
    "add_l1_l2_gradient",
    "reg_decay_schedule",
    "rmsprop",
    "sample_adam_reg_decay",
    "sgd_momentum",
]
