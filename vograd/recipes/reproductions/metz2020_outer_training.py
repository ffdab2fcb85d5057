"""Outer-training curves of a fresh learned optimizer under a given outer optimizer.

Shared by the Metz et al. 2020 reproductions that compare outer-training
runs (`metz2020_self_training`: which optimizer updates theta;
`metz2020_architectures`: which learned-optimizer architecture theta
parameterizes). One `Setting` fixes everything the arms share: the inner task
family (a small MLP on 14x14 Fashion-MNIST, train class pool), the episode
length, the fixed truncation window, the estimator (merged reparameterization
and antithetic ES, `vograd.estimators.Merged`, as in Metz et al. 2019), the
outer-gradient clipping and the number of outer steps.

A run of arm ``(lopt, outer)`` with seed ``s`` calls `vograd.train` with
``key(s)``: theta's initialisation, every perturbation and every inner batch
depend only on ``s``, so two arms with the same learned optimizer and seed
start from the same theta and see the same tasks (a paired comparison).
Every ``every`` outer steps theta is scored by `held_out_score`; the scored
points are kept in ``curve.json`` and training resumes from its checkpoint,
so an interrupted run loses at most one segment.

Compilation: `vograd.train`'s jitted step is static in the system, estimator
and outer optimizer, so each is built once per (setting, arm) and memoized
(a new optax closure per seed would recompile, as `metz2019_training` explains).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import equinox as eqx
import jax
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

import vograd
from vograd.estimators import Merged
from vograd.recipes.config import Problem, learned_optimizer_system
from vograd.recipes.evaluation import InnerSchedule, inner_curves
from vograd.recipes.reproductions import common


@dataclass(frozen=True)
class Setting:
    """What every arm of an outer-training comparison shares (hashable: a memo key).

    ``horizon`` inner steps per episode, truncated windows of ``window`` steps,
    ``num_pairs`` antithetic pairs per outer step with smoothing ``sigma``,
    outer gradients value-clipped to ``+-clip_value`` before the outer
    optimizer, ``outer_steps`` updates, scored every ``every`` steps on
    ``eval_tasks`` held-out tasks over one full episode (test loss after every
    ``eval_every`` inner steps).
    """

    problem: Problem
    horizon: int
    window: int
    num_pairs: int
    outer_steps: int
    every: int
    eval_tasks: int
    eval_every: int
    sigma: float = 0.01
    clip_value: float = 0.1

    def checkpoints(self) -> list[int]:
        """Returns the outer steps at which theta is scored: ``0, every, ..., outer_steps``."""
        return list(range(0, self.outer_steps + 1, self.every))


# The full size: a 196-16-k ReLU MLP (batch 32) trained for 200-step episodes, windows
# of 20 steps, 2 antithetic pairs; the tiny size is CI's (every stage runs, seconds each).
FULL = Setting(problem=Problem("mlp", "fashion_mnist", hidden=(16,), batch_size=32, downsample=2),
               horizon=200, window=20, num_pairs=2, outer_steps=60, every=10, eval_tasks=6,
               eval_every=20)
TINY = Setting(problem=Problem("mlp", "fashion_mnist", hidden=(4,), batch_size=8, downsample=2),
               horizon=40, window=8, num_pairs=2, outer_steps=4, every=2, eval_tasks=2,
               eval_every=20)


def setting(size: str, **changes) -> Setting:
    """Returns the `Setting` of ``size`` ("tiny" or "full") with ``changes`` applied."""
    from dataclasses import replace

    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', got {size!r}")
    return replace(TINY if size == "tiny" else FULL, **changes)


@functools.lru_cache(maxsize=None)
def pieces(s: Setting, lopt):
    """Returns ``(system, estimator)`` of ``lopt`` (a hashable, static optimizer module)
    under ``s``: validation-loss outer objective on the train class pool, merged estimator
    with same-sample weights (the Metz 2019 rule) and a fixed window."""
    system = learned_optimizer_system(lopt, s.problem, "valid", s.horizon, "train")
    estimator = Merged(num_pairs=s.num_pairs, sigma=s.sigma, window=min(s.window, s.horizon),
                       weighting="per_element", weights="same_samples", detect_jumps=False)
    return system, estimator


def initial_theta(s: Setting, lopt, seed: int):
    """Returns theta at outer step 0 of seed ``seed``, as `vograd.train` draws it
    (``split(split(key(seed))[0])[0]``)."""
    k_init, _ = jax.random.split(jax.random.key(seed))
    k_theta, _ = jax.random.split(k_init)
    return pieces(s, lopt)[0].init_theta(k_theta)


def train(s: Setting, lopt, outer: optax.GradientTransformation, run_dir: Path, seed: int,
          num_steps: int):
    """Returns theta after ``num_steps`` outer steps of seed ``seed`` with ``outer`` (the
    caller memoizes it: one object per arm), resuming from ``run_dir``'s checkpoint."""
    system, estimator = pieces(s, lopt)
    result = vograd.train(system, estimator, outer, num_steps, jax.random.key(seed),
                          checkpoint_dir=run_dir / "checkpoints", checkpoint_every=s.every,
                          log=run_dir / "metrics.jsonl", progress=False)
    return result.theta


@eqx.filter_jit
def _test_curves(family, lopt, theta, tasks, keys: PRNGKeyArray, schedule: InnerSchedule
                 ) -> Float[Array, "T E"]:
    """Returns the test-loss curves ``[T, E]`` of ``lopt(theta)`` on ``T`` tasks."""
    run = lambda task, key: inner_curves(family, lopt.as_optax, theta, task, key, schedule)[1]  # noqa: E731
    return jax.vmap(run)(tasks, keys)


def held_out_score(s: Setting, lopt, theta) -> float:
    """Returns ``mean_{t, e} test_loss[t, e]`` of ``lopt(theta)``: the test loss after every
    ``eval_every`` inner steps of one full episode, averaged over ``eval_tasks`` fresh tasks
    of the training family (key 10_000, the same for every arm and seed); ``inf`` when a run
    diverged. Lower is better; the outer objective's own quantity on unseen tasks."""
    family = s.problem.family("train")
    key = jax.random.key(10_000)
    tasks = jax.vmap(family.sample)(jax.random.split(key, s.eval_tasks))
    keys = jax.random.split(jax.random.fold_in(key, 1), s.eval_tasks)
    curves = np.asarray(_test_curves(family, lopt, theta, tasks, keys,
                                     InnerSchedule(s.horizon, s.eval_every)))
    return float(np.mean(curves)) if np.all(np.isfinite(curves)) else float("inf")


def curve(s: Setting, lopt, outer: Callable[[], optax.GradientTransformation], run_dir: Path,
          seed: int, label: str = "", progress: bool = False) -> dict:
    """Returns ``{"steps", "score", "skipped", "train_seconds", "outer_loss"}`` of one run:
    `held_out_score` at every `Setting.checkpoints` step (None where it diverged), the
    skipped updates, the seconds of outer steps and the per-step outer loss. Scored points
    are read back from ``run_dir/curve.json``; ``outer()`` returns the arm's (memoized)
    outer optimizer."""
    run_dir = Path(run_dir)
    path = run_dir / "curve.json"
    points = json.loads(path.read_text())["points"] if path.exists() else {}
    for step in s.checkpoints():
        if str(step) in points:
            continue
        if progress:
            print(f"[{label}] seed {seed}: outer step {step}", flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        theta = (initial_theta(s, lopt, seed) if step == 0 else
                 train(s, lopt, outer(), run_dir, seed, step))
        score = held_out_score(s, lopt, theta)
        points[str(step)] = score if np.isfinite(score) else None
        common.write_json(path, {"points": points}, indent=2)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if line.strip()] if (run_dir / "metrics.jsonl").exists() else []
    steps = s.checkpoints()
    return {"steps": steps, "score": [points[str(k)] for k in steps],
            "skipped": int(sum(bool(r.get("skipped")) for r in rows)),
            "train_seconds": float(sum(r.get("step_time", 0.0) for r in rows)),
            "outer_loss": [r.get("loss") for r in rows]}


def band_figure(path: Path, arms: dict[str, list[dict]], reference: float | None, title: str,
                reference_label: str = "tuned Adam (inner)"):
    """Draws held-out score against outer step per arm on a log scale: the geometric mean
    over seeds and the 95% t-interval of the log scores as a band (an interval of the scores
    themselves, from 3-5 seeds, reaches below zero), each seed thin; returns the PNG path,
    or None without matplotlib (`vograd.plotting.new_figure` warns once)."""
    from vograd import plotting
    from vograd.recipes.reproductions import confidence

    fig = plotting.new_figure(figsize=(7, 4.2), layout="constrained")
    if fig is None:
        return None
    ax = fig.subplots()
    for i, (name, curves) in enumerate(arms.items()):
        c = f"C{i}"
        steps = np.asarray(curves[0]["steps"])
        y = np.asarray([[np.nan if v is None else v for v in cv["score"]] for cv in curves], float)
        cis = [confidence.mean_interval(np.log(y[:, j])) for j in range(y.shape[1])]
        mean, low, high = (np.exp([np.nan if x[k] is None else x[k] for x in cis])
                           for k in ("mean", "low", "high"))
        for row in y:
            ax.plot(steps, row, color=c, lw=0.6, alpha=0.4)
        ax.plot(steps, mean, color=c, lw=1.8, marker="o", ms=3, label=f"{name} (n={len(curves)})")
        ax.fill_between(steps, low, high, color=c, alpha=0.15, lw=0)
    if reference is not None:
        ax.axhline(reference, color="0.4", ls="--", lw=1, label=reference_label)
    ax.set_yscale("log")
    ax.set_xlabel("outer step (updates to theta)")
    ax.set_ylabel("held-out test loss over an episode\n(geo. mean over seeds, 95% t-interval)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    return Path(path)


__all__ = ["FULL", "Setting", "TINY", "band_figure", "curve", "held_out_score", "initial_theta",
           "pieces", "setting", "train"]
