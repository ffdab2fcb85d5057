"""Choosing among outer-training runs on validation tasks of their own training distribution.

Which of several outer seeds to ship is decided here, never on the unseen-task
suite: each run's optimizer trains fresh tasks drawn from every family it was
outer-trained on (the train class pools, with task and inner seeds no outer
step used), for the training horizon. A run's score is the geometric mean over
families of its mean training loss divided by the mean over all runs of that
family's loss; the lowest score wins.

    python -m vograd.recipes.validation runs/adaptive-s0 runs/adaptive-s1 runs/adaptive-s2
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from vograd.recipes import run
from vograd.recipes.evaluation import InnerSchedule, grid_curves, selection_score

# Keys no outer-training step uses: outer training derives its keys from the seed's key.
VALIDATION_SEED = 2**31 - 1


def validate(run_dirs: list[str | os.PathLike], *, num_tasks: int = 2, num_seeds: int = 2,
             progress: bool = True) -> dict:
    """Returns ``{"scores": {run: score}, "losses": {run: [per-family mean train loss]},
    "best": run}`` (see the module docstring)."""
    if not run_dirs:
        raise ValueError("name at least one run directory")
    configs, learned = [], {}
    for d in run_dirs:
        _, config, _ = run.read_run(d)
        configs.append(config)
        lopt, theta = run.load_theta(d)
        learned[str(d)] = lopt.as_optax(theta)
    problems = configs[0].problems
    if any(c.problems != problems or c.horizon != configs[0].horizon for c in configs):
        raise ValueError("runs to compare must share their training families and horizon")
    horizon = configs[0].horizon
    schedule = InnerSchedule(horizon, horizon // 10, 1)
    losses = {name: [] for name in learned}
    key = jax.random.key(VALIDATION_SEED)
    for i, problem in enumerate(problems):
        if progress:
            print(f"[validation] family {i + 1}/{len(problems)}: {problem.architecture} on "
                  f"{problem.dataset}", file=sys.stderr, flush=True)
        family = problem.family("train")
        k_tasks, k_seeds = jax.random.split(jax.random.fold_in(key, i))
        tasks = jax.vmap(family.sample)(jax.random.split(k_tasks, num_tasks))
        keys = jax.random.split(k_seeds, num_tasks * num_seeds).reshape(num_tasks, num_seeds)
        for name, opt in learned.items():
            train, _ = grid_curves(family, lambda _, o=opt: o, jnp.zeros((1,)), tasks, keys, schedule)
            losses[name].append(float(np.mean(selection_score(np.asarray(train)[0]))))
    table = np.array([losses[n] for n in learned])  # [R, F]
    scores = np.exp(np.mean(np.log(table / np.mean(table, axis=0, keepdims=True)), axis=1))
    names = list(learned)
    return {"scores": dict(zip(names, scores.tolist())), "losses": losses,
            "best": names[int(np.argmin(scores))]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vograd.recipes.validation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories of one recipe and preset")
    parser.add_argument("--tasks", type=int, default=2, help="validation tasks per family")
    parser.add_argument("--seeds", type=int, default=2, help="inner seeds per task")
    args = parser.parse_args(argv)
    print(json.dumps(validate(args.runs, num_tasks=args.tasks, num_seeds=args.seeds), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
