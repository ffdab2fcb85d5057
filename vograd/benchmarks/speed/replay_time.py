"""How long a finished training run takes on this machine now, from its own log.

    python -m vograd.benchmarks.speed.replay_time RUN_DIR [RUN_DIR ...] [--repeats 3]

A run's ``metrics.jsonl`` records every outer step's window, compiled size
(bucket) and wall time. On a shared machine those times include whatever
else ran at the time. This replays the run's cost instead: for every
compiled size the run used, it compiles the run's own estimator (its config,
its trained ``theta``), times one outer-gradient estimate at the shortest and
the longest window the run had in that size (median of ``repeats`` calls
each, round-robin), and fits ``t(window) = a + b * window`` between the
two (padded slots are skipped by a ``lax.cond`` but are not free in
reverse mode, hence the intercept). The predicted time of the run is the
sum of ``t`` over its logged windows plus one compilation per size; the
outer update itself (optax on a few hundred weights) is not included. Printed beside the logged
time, so ``logged / replayed`` says how much the machine was loaded while
the run trained.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import statistics
from pathlib import Path

import jax
import jax.numpy as jnp

from vograd.benchmarks.speed.common import Timed, compile_timed, round_robin


def replay(run_dir: str | Path, repeats: int = 3) -> dict:
    """Returns per-bucket timings and the predicted and logged totals of ``run_dir``."""
    from vograd.recipes import run

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    _, config, record = run.read_run(run_dir)
    rows = run.read_metrics(run_dir)
    if not rows:
        raise ValueError(f"{run_dir}: metrics.jsonl has no steps")
    if any(r.get("bucket") is None for r in rows):
        raise ValueError(f"{run_dir}: the run has no truncation schedule (no buckets logged)")
    system = config.system("train")
    _, theta = run.load_theta(run_dir)
    steps_of = collections.defaultdict(list)
    for r in rows:
        steps_of[int(r["bucket"])].append(r)
    buckets, predicted, compile_total = [], 0.0, 0.0
    for size, steps in sorted(steps_of.items()):
        ws = [int(r["window"]) for r in steps]
        logged = [r["step_time"] for r in steps]
        lo, hi = min(ws), max(ws)
        est = dataclasses.replace(config.estimator, window=size)
        state = est.init(system, theta, jax.random.key(1))

        def estimate(th, st, k, n):
            return est.estimate(system, th, st, k, length=n)

        # One executable serves both lengths (``length`` is dynamic); the two are
        # timed round-robin, each call after a warm-up, compilation apart.
        at_hi = compile_timed(f"{size}/{hi}", estimate,
                              (theta, state, jax.random.key(2), jnp.int32(hi)))
        at_lo = Timed(f"{size}/{lo}", at_hi.fn, (theta, state, jax.random.key(2), jnp.int32(lo)))
        round_robin([at_lo, at_hi], repeats)
        t_lo, t_hi = at_lo.wall_s, at_hi.wall_s
        slope = (t_hi - t_lo) / (hi - lo) if hi > lo else t_hi / hi
        intercept = t_hi - slope * hi
        total = sum(intercept + slope * w for w in ws)
        buckets.append({
            "bucket": size, "steps": len(ws), "windows": (lo, hi),
            "mean_window": statistics.mean(ws), "compile_s": at_hi.compile_s,
            "s_per_window_step": slope, "replayed_s": total, "logged_s": sum(logged),
            "logged_median_step_s": statistics.median(logged),
            "replayed_median_step_s": intercept + slope * statistics.median(ws),
        })
        predicted += total
        compile_total += at_hi.compile_s
    return {
        "run": str(run_dir), "preset": record.get("preset"), "steps": len(rows),
        "buckets": buckets, "replayed_s": predicted + compile_total,
        "compile_s": compile_total, "logged_s": sum(r["step_time"] for r in rows),
    }


def report(result: dict) -> str:
    """Returns a markdown table of one `replay` result."""
    lines = [
        f"### {result['run']} (preset {result['preset']}, {result['steps']} outer steps)", "",
        "| bucket | steps | windows | logged median s/step | replayed median s/step | "
        "replayed ms per window step | compile s |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in result["buckets"]:
        lines.append(
            f"| {b['bucket']} | {b['steps']} | {b['windows'][0]}-{b['windows'][1]} | "
            f"{b['logged_median_step_s']:.2f} | {b['replayed_median_step_s']:.2f} | "
            f"{1000 * b['s_per_window_step']:.1f} | {b['compile_s']:.1f} |"
        )
    logged, replayed = result["logged_s"], result["replayed_s"]
    lines += [
        "",
        f"Logged: {logged / 60:.1f} min. Replayed on this machine now: {replayed / 60:.1f} min "
        f"(of which {result['compile_s'] / 60:.1f} min compiling). Logged / replayed: "
        f"{logged / replayed:.2f}.",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    for run_dir in args.runs:
        result = replay(run_dir, args.repeats)
        results.append(result)
        print(report(result), flush=True)
        print()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
