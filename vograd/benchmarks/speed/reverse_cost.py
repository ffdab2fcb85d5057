"""What the merged estimator costs over ES: the merge, or the reverse pass it needs?

Run: ``.venv/bin/python -m vograd.benchmarks.speed.reverse_cost [--task mlp] [--window 10]``
(about 5 minutes for the MLP on 2 CPU cores, most of it compiling). For each learned
optimizer it times, round robin in one run, three estimators on the same 8 antithetic
pairs (16 unrolls) of `throughput.make_family(task)`:

- ``ES``: antithetic ES, forward only;
- ``Merged``: the same pairs, plus the reparameterization gradient of every unroll
  (reverse mode through the whole window) and the inverse-variance merge;
- ``TBPTT``: truncated backprop on 16 particles, reverse mode and no merge.

``Merged / TBPTT`` is what the merge adds to a reverse pass (1.0: nothing);
``TBPTT / ES`` what the reverse pass costs over the forward one (reverse mode's usual
bound is ~3-4x for a program whose steps contain a gradient, the VJP of which is a
Hessian-vector product). Prints one table; `run` returns its rows.
"""

from __future__ import annotations

import argparse

import numpy as np

from vograd.benchmarks.speed.common import load_average, markdown_table, round_robin
from vograd.benchmarks.speed.throughput import Case, estimator_timed, make_family, make_system

ESTIMATORS = ("ES", "Merged", "TBPTT")


def systems(task: str) -> dict:
    """Returns ``{name: LearnedOptimizerSystem}``: the Metz 2019 optimizer (fused forward)
    and the default `AdaptiveMLPOptimizer` (hidden 8) on ``task``'s family."""
    from vograd.tasks.optimizers import AdaptiveMLPOptimizer
    from vograd.tasks.system import LearnedOptimizerSystem

    family = make_family(task)
    return {
        "MLPOptimizer(fused_forward)": make_system(family),
        "AdaptiveMLPOptimizer(hidden=8)": LearnedOptimizerSystem(
            AdaptiveMLPOptimizer(hidden=8, lr=1e-2), family, horizon=1_000),
    }


def run(task: str = "mlp", window: int = 10, rounds: int = 5, log=print,
        optimizers: tuple[str, ...] | None = None) -> list[dict]:
    """Returns one row per (optimizer, estimator): median seconds per estimate, compile
    seconds, and the ratios ``x_es`` (to ES on the same optimizer) and ``x_tbptt``.
    ``optimizers``: names of `systems` to time (None: all)."""
    chosen = systems(task)
    unknown = set(optimizers or ()) - set(chosen)
    if unknown:
        raise KeyError(f"unknown optimizers {sorted(unknown)}; known: {sorted(chosen)}")
    timed = {}
    for opt, system in chosen.items():
        if optimizers is not None and opt not in optimizers:
            continue
        for est in ESTIMATORS:
            t = estimator_timed(system, Case(task, est, window))
            timed[opt, est] = t
            log(f"compiled {opt} {est} in {t.compile_s:.1f} s")
    round_robin(list(timed.values()), rounds=rounds)
    median = {k: float(np.median(t.wall)) for k, t in timed.items()}
    return [
        {"task": task, "window": window, "optimizer": opt, "estimator": est,
         "s_per_estimate": median[opt, est], "compile_s": timed[opt, est].compile_s,
         "x_es": median[opt, est] / median[opt, "ES"],
         "x_tbptt": median[opt, est] / median[opt, "TBPTT"]}
        for opt, est in timed
    ]


def format_table(rows: list[dict]) -> str:
    """Returns the rows as a markdown table."""
    return markdown_table(
        ["optimizer", "estimator", "s / estimate", "compile s", "x ES", "x TBPTT"],
        [[r["optimizer"], r["estimator"], f"{r['s_per_estimate']:.4f}", f"{r['compile_s']:.1f}",
          f"{r['x_es']:.2f}", f"{r['x_tbptt']:.2f}"] for r in rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("quadratic", "mlp", "conv"), default="mlp")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    start = load_average()
    rows = run(args.task, args.window, args.rounds)
    print(f"task {args.task}, window {args.window}, 8 pairs; load average at the start "
          f"{start[0]:.2f}, at the end {load_average()[0]:.2f}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
