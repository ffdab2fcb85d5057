"""The Metz 2019 ablation study (Figure 8): each ablation trained over several seeds.

Every trained optimizer is scored the same way, whatever its training
truncation: inner-train ``num_tasks`` held-out tasks for the full episode
(``horizon`` steps) and average the recipe's outer objective (training loss
for ``outer="train"``, test loss for ``"valid"``) over the run and the tasks.
Lower is better. Runs are resumable: an interrupted study continues where it
stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np

from vograd import plotting
from vograd.recipes import registry
from vograd.recipes import run as runs
from vograd.recipes.evaluation import InnerSchedule, grid_curves


def score(config, lopt, theta, *, num_tasks: int = 4, seed: int = 0) -> float:
    """Returns the mean outer objective of ``theta`` over held-out full episodes."""
    family = config.problem.family("test")
    key = jax.random.key(10_000 + seed)
    tasks = jax.vmap(family.sample)(jax.random.split(key, num_tasks))
    keys = jax.random.split(jax.random.fold_in(key, 1), num_tasks).reshape(num_tasks, 1)
    every = config.evaluation.eval_every if config.horizon % config.evaluation.eval_every == 0 else config.horizon
    schedule = InnerSchedule(config.horizon, every, config.evaluation.eval_batches)
    train, test = grid_curves(family, lambda _: lopt.as_optax(theta), np.zeros(1), tasks, keys, schedule)
    curves = np.asarray(train if config.outer == "train" else test)
    return float(np.mean(curves)) if np.all(np.isfinite(curves)) else float("inf")


def run_study(recipe: str, preset: str, out_dir: str | os.PathLike, *, seeds: int = 3,
              only: list[str] | None = None, progress: bool = True, overrides=None) -> dict:
    """Returns ``{ablation: [score per seed]}``, training what is not trained yet.

    ``overrides``: an optional function applied to each ablated config (tests
    use it to shorten training).
    """
    known = registry.get(recipe).ABLATIONS
    if not known:
        raise KeyError(f"recipe {recipe!r} has no ablations")
    base = registry.preset(recipe, preset)
    names = only or list(known)
    out = Path(out_dir)
    scores: dict[str, list[float]] = {}
    for name in names:
        config = base.ablation(name)
        if overrides is not None:
            config = overrides(config)
        for seed in range(seeds):
            run_dir = out / name / f"seed{seed}"
            if progress:
                print(f"[ablations] {name} seed {seed}", flush=True)
            runs.train(recipe, config, run_dir, seed=seed, preset=preset, progress=progress)
            lopt, theta = runs.load_theta(run_dir)
            scores.setdefault(name, []).append(score(config, lopt, theta, seed=seed))
    (out / "ablations.json").write_text(json.dumps(scores, indent=2))
    plot(out / "ablations.png", scores)
    return scores


def table(scores: dict[str, list[float]]) -> str:
    """Returns a markdown table: median and range of the score per ablation."""
    lines = ["| ablation | seeds | median | min | max |", "|---|---|---|---|---|"]
    for name, vals in scores.items():
        v = np.asarray(vals)
        lines.append(f"| {name} | {len(v)} | {np.median(v):.4f} | {v.min():.4f} | {v.max():.4f} |")
    return "\n".join(lines) + "\n"


def plot(path, scores: dict[str, list[float]]):
    """Returns the figure written to ``path`` (None without matplotlib): a strip plot of
    the per-seed scores of each ablation (Figure 8)."""
    fig = plotting.new_figure(figsize=(max(6, 1.1 * len(scores)), 4))
    if fig is None:
        return None
    ax = fig.subplots()
    for i, (name, vals) in enumerate(scores.items()):
        v = np.asarray(vals, float)
        ax.scatter(np.full(len(v), i), np.where(np.isfinite(v), v, np.nan), alpha=0.7,
                   color=plotting.color(name))
        ax.hlines(np.median(v), i - 0.3, i + 0.3, color="k")
    ax.set_xticks(range(len(scores)), list(scores), rotation=30)
    ax.set_xlabel("ablation")
    ax.set_ylabel("held-out outer loss (lower is better)")
    ax.set_title("Ablations: per-seed outer loss, median in black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def run(recipe: str, preset: str, out_dir, *, seeds: int = 3, only=None, progress: bool = True) -> str:
    """Runs the study (CLI entry) and returns its markdown table."""
    return table(run_study(recipe, preset, out_dir, seeds=seeds, only=only, progress=progress))
