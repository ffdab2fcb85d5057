"""The scaled-down Metz 2019 setting the reproductions share, and its held-out score.

The paper outer-trains on 10,000-step episodes of small CNNs with 128
samples per update for ~10k outer updates on many machines. Here the inner
problem is a one-hidden-layer MLP (196-16-k, ReLU) on 14x14 Fashion-MNIST
(train class pool, 2-5 classes per task, batch 32), episodes of
``HORIZON = 200`` inner steps (50x shorter), 4 antithetic pairs per update
(16x fewer) and tens of outer updates (~100x fewer). The truncation
curriculum grows the window from 8 to 40 steps (the paper: 50 to 10,000,
i.e. 0.5% to 100% of the episode; here 4% to 20%). Everything else is the
recipe's (`vograd.recipes.metz2019`): merged estimator, sigma = 0.01,
value-clipped Adam with beta1 = 0.5, outer objective on held-out batches.

`held_out_loss` is the score: the mean test loss over a full episode of
inner training on tasks of the TEST class pool, compiled once per optimizer
structure (`vograd.recipes.ablations.score` recompiles per call: its closure
over theta is a new static function each time).
"""

from __future__ import annotations

from dataclasses import replace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.estimators import Merged
from vograd.recipes import metz2019
from vograd.recipes.config import Evaluation, Problem, Truncation
from vograd.recipes.evaluation import InnerSchedule, grid_curves, inner_curves

HORIZON = 200
EVAL_EVERY = 20

PROBLEM = Problem("mlp", "fashion_mnist", hidden=(16,), batch_size=32, downsample=2)

# The full-size base of every Metz 2019 reproduction (``outer_steps`` is set
# by each reproduction). min_bucket=64: every window up to 64 steps shares one
# compilation (padding steps are skipped at run time by a lax.cond).
FULL = replace(
    metz2019.PRESETS["demo"],
    problem=PROBLEM,
    horizon=HORIZON,
    estimator=Merged(num_pairs=4, sigma=0.01),
    truncation=Truncation(start=8, end=40, num_steps=60, jitter=0.2, min_bucket=64),
    outer_steps=60,
    outer_lr=3e-3,
    checkpoint_every=10,
    evaluation=Evaluation(num_tasks=8, num_seeds=1, inner_steps=HORIZON, eval_every=EVAL_EVERY,
                          eval_batches=2, baselines=(), random_search=0, generalization=False),
)

# CI's size: a 4-8 wide MLP, 40-step episodes, windows of 4-8 steps.
TINY = replace(
    FULL,
    problem=replace(PROBLEM, hidden=(4,), batch_size=8),
    horizon=40,
    estimator=Merged(num_pairs=2, sigma=0.01),
    truncation=Truncation(start=4, end=8, num_steps=4, jitter=0.2, min_bucket=16),
    outer_steps=4,
    checkpoint_every=2,
    evaluation=replace(FULL.evaluation, num_tasks=2, inner_steps=40, eval_every=20, eval_batches=1),
)


def base(size: str) -> metz2019.Metz2019:
    """Returns the base config of ``size`` ("tiny" or "full")."""
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', got {size!r}")
    return TINY if size == "tiny" else FULL


@eqx.filter_jit
def _test_curves(family, lopt, theta, tasks, keys: PRNGKeyArray, schedule: InnerSchedule
                 ) -> Float[Array, "T E"]:
    """Returns the test-loss curve ``[T, E]`` of ``theta`` on each of the ``T`` tasks
    (one inner run per task from ``keys[t]``), vmapped over tasks in one program."""
    run = lambda task, key: inner_curves(family, lopt.as_optax, theta, task, key, schedule)[1]  # noqa: E731
    return jax.vmap(run)(tasks, keys)


def _held_out(config: metz2019.Metz2019, seed: int):
    """Returns ``(family, tasks [T], keys [T], schedule)`` of the held-out score."""
    family = config.problem.family("test")
    ev = config.evaluation
    key = jax.random.key(10_000 + seed)
    tasks = jax.vmap(family.sample)(jax.random.split(key, ev.num_tasks))
    keys = jax.random.split(jax.random.fold_in(key, 1), ev.num_tasks)
    return family, tasks, keys, InnerSchedule(config.horizon, ev.eval_every, ev.eval_batches)


def held_out_loss(config: metz2019.Metz2019, theta, *, seed: int = 0) -> float:
    """Returns ``mean_{t, e} test_loss[t, e]``: the test loss of ``theta``'s optimizer,
    averaged over ``config.evaluation.num_tasks`` held-out tasks (test class pool, seeds
    ``10_000 + seed``) and the ``horizon / eval_every`` evaluations of one full episode;
    ``inf`` when any run diverged. Lower is better.
    """
    family, tasks, keys, schedule = _held_out(config, seed)
    curves = np.asarray(_test_curves(family, config.optimizer, theta, tasks,
                                     keys, schedule))
    return float(np.mean(curves)) if np.all(np.isfinite(curves)) else float("inf")


def _adam(hparams) -> optax.GradientTransformation:
    return optax.adam(hparams["learning_rate"])


def adam_reference(config: metz2019.Metz2019, learning_rates=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                   *, seed: int = 0) -> dict:
    """Returns ``{"score", "learning_rate", "scores"}``: `held_out_loss`'s score of Adam on
    the same tasks, inner initialisations and batches, at the learning rate (of
    ``learning_rates``) with the lowest score, i.e. tuned on the held-out score itself
    (the paper's dashed "learning rate tuned Adam" line)."""
    family, tasks, keys, schedule = _held_out(config, seed)
    grid = {"learning_rate": jnp.asarray(learning_rates, jnp.float32)}
    _, test = grid_curves(family, _adam, grid, tasks, keys[:, None], schedule)
    test = np.asarray(test)  # [G, T, 1, E]
    scores = [float(np.mean(c)) if np.all(np.isfinite(c)) else float("inf") for c in test]
    best = int(np.argmin(scores))
    return {"score": scores[best], "learning_rate": float(learning_rates[best]),
            "scores": [finite_or_none(x) for x in scores]}


def finite_or_none(x: float) -> float | None:
    """Returns ``x``, or None when it is not finite (JSON has no inf)."""
    return float(x) if np.isfinite(x) else None


__all__ = ["FULL", "adam_reference", "HORIZON", "PROBLEM", "TINY", "base", "finite_or_none", "held_out_loss"]
