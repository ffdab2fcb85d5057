"""Andrychowicz et al. (2016), Figure 2 (left): the LSTM optimizer beats tuned baselines on
10-d quadratics.

Outer-train the coordinatewise LSTM (`vograd.recipes.andrychowicz2016`, its
default quadratic config: 100-step runs unrolled 20 at a time, outer Adam
1e-3) on ``f(x) = ||W x - y||^2`` with ``W [10, 10]``, ``y [10]`` standard
normal, once per outer seed; then run it and Adam, RMSProp, SGD and Nesterov
momentum (each with its best learning rate of a log grid, one rate for the
family) on fresh quadratics from the same distribution. Each seed is one
replicate of the whole pipeline (its own outer training, its own fresh tasks,
its own baseline tuning), so the confidence intervals cover all three.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from vograd.recipes.evaluation import InnerSchedule, log_grid
from vograd.recipes.reproductions import common, confidence
from vograd.recipes.reproductions.base import Reproduction, Size

NAME = "andrychowicz2016-quadratic"

# size -> (outer steps, particles, horizon, unroll window, eval tasks, inits per task,
# learning rates in the grid). Tiny keeps only what exercises every stage: compiling
# dominates its time, so its unrolls are short.
SIZES = {"tiny": (3, 2, 10, 5, 3, 2, 3), "full": (10_000, 8, 100, 20, 64, 4, 13)}


def _config(size: Size):
    from vograd.recipes.andrychowicz2016 import Andrychowicz2016
    from vograd.recipes.config import Truncation

    from vograd.estimators import TruncatedBackprop

    steps, particles, horizon, window = SIZES[size][:4]
    return dataclasses.replace(Andrychowicz2016(), outer_steps=steps,
                               estimator=TruncatedBackprop(num_particles=particles),
                               horizon=horizon, truncation=Truncation(fixed=window),
                               checkpoint_every=min(100, steps))


def run(out_dir: Path, size: Size, seeds: int, progress: bool) -> dict:
    """Returns the results dict after writing results.json, report.md and the plots."""
    out_dir = Path(out_dir)
    config = _config(size)
    baselines = common.baselines_for(size)
    optimizers = ["lstm", *baselines]
    num_tasks, num_inits, num_lr = SIZES[size][4:]
    schedule = InnerSchedule(num_steps=config.horizon, eval_every=1)
    grid = log_grid(1e-4, 1.0, num_lr)  # SGD diverges above ~2 / lambda_max ~ 0.03
    family = config.system().family
    per_seed, outer_curves = [], []
    for seed in range(seeds):
        lopt, theta, history = common.outer_train_lstm(
            config, seed, out_dir / f"seed{seed}" / "train", progress)
        outer_curves.append(common.outer_loss_curve(history))
        # Fresh quadratics: keys far from the outer-training ones (which use key(seed)).
        key = jax.random.key(1_000_003 + seed)
        per_seed.append(common.stage(
            out_dir / f"seed{seed}" / "eval.npz",
            lambda: common.lstm_vs_baselines(family, lopt, theta, key, num_tasks, num_inits,
                                             schedule, grid, baselines)))
    finals = common.final_losses(per_seed, optimizers)
    summary, table = common.comparison_rows(finals)
    verdict = confidence.verdict([summary["vs"][n]["outcome"] == "better" for n in baselines])
    results = {
        "name": NAME, "size": size, "seeds": seeds, "verdict": verdict,
        "metric": f"training loss f(x_T) at inner step T = {config.horizon}, mean over "
                  f"{num_tasks} fresh tasks x {num_inits} inits; per seed, then CI over seeds",
        "outer_steps": config.outer_steps, "num_particles": config.estimator.num_particles,
        "learning_rates": {n: [float(s[f"lr_{n}"]) for s in per_seed] for n in baselines},
        "per_seed_final_loss": {n: v.tolist() for n, v in finals.items()},
        "outer_loss_first_last": [[float(c[1][0]), float(c[1][-1])] for c in outer_curves],
        **summary,
    }
    common.write_json(out_dir / "results.json", results)
    (out_dir / "report.md").write_text(_report(results, table))
    curves = common.seed_mean_curves(per_seed, optimizers)
    common.curves_figure([("10-d quadratics (fresh tasks)", schedule.steps(), curves)],
                         out_dir / "loss_curves.png")
    return results


def _report(results: dict, table: str) -> str:
    lrs = ", ".join(f"{n} {np.median(v):.3g}" for n, v in results["learning_rates"].items())
    return (
        f"# {NAME}\n\n**Claim** ({REPRODUCTION.paper}, {REPRODUCTION.figure}): "
        f"{REPRODUCTION.claim}\n\n**Command:** `vograd reproduce {NAME} --size "
        f"{results['size']} --seeds {results['seeds']}`\n\n**Scale:** {REPRODUCTION.scale}\n\n"
        f"**Metric:** {results['metric']}.\n\n{table}\nTuned learning rates (median over "
        f"seeds): {lrs}.\n\n![loss curves](loss_curves.png)\n\n**Verdict: {results['verdict']}**\n"
    )


REPRODUCTION = Reproduction(
    name=NAME,
    paper="Andrychowicz et al. 2016, Learning to learn by gradient descent by gradient descent",
    figure="Figure 2 (left), quadratic functions",
    claim="on 10-dimensional quadratics f(x) = ||Wx - y||^2 the LSTM optimizer outperforms "
          "the hand-designed optimizers (Adam, RMSProp, SGD, Nesterov momentum, each with a "
          "tuned learning rate)",
    scale="paper scale for the task and the optimizer (10-d, 100 steps, 2x20 LSTM, unrolls "
          "of 20, Adam 1e-3); outer training 10,000 steps of 8 runs per seed (the paper does "
          "not state its number of outer steps); 64 fresh tasks x 4 inits per seed; 3 seeds",
    run=run,
)
