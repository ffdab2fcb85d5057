"""vograd against learned_optimization, both timed round-robin in one process.

REFERENCES.md quotes learned_optimization's throughput on "a 2-core CPU", and
`vograd bench speed` divides by those figures. This benchmark re-measures the
reference itself, on this machine, in the same rounds as vograd, so that the
comparison is a ratio taken in one run. Per task and window, for ES and PES
with 8 antithetic pairs and truncated backprop (TBPTT) with 16 tasks (16
unrolls in each case, horizon 1,000):

- ``ref MLPLOpt 2x32``: learned_optimization's TruncatedES/PES with its
  default ``MLPLOpt`` (19 features, 2 hidden layers of 32): the configuration
  REFERENCES.md quotes;
- ``ref MLPLOpt 1x32``: the same with ``MLPLOpt(hidden_layers=1)``;
- ``vograd 1x32``: vograd's estimator with ``MLPOptimizer`` configured to
  compute the same function as ``ref MLPLOpt 1x32`` (its 6 decays, 11
  timescales, 19 -> 32 -> 2; `reference.lopt.same_function_check` copies the
  weights over and compares one update): the like-for-like pair;
- ``vograd Metz 2019``: vograd's default Metz 2019 ``MLPOptimizer`` (16 features,
  1 hidden layer of 32), the row `vograd bench speed` reports.

Inner steps/s counts every step of every unroll (``16 * window / s``), as the
reference figures do. A second table times one optimizer update alone (jitted,
applied to the parameters) on the image MLP's 12,730 parameters, with
``optax.adam`` in the same rounds.

    make bench-reference                      # installs .venv-reference, runs this
    .venv-reference/bin/python -m vograd.benchmarks.reference.run [--tasks quadratic mlp conv]

Writes ``reference.md`` and ``reference.json`` into ``--out`` (default
``runs/bench_reference``).
"""

from __future__ import annotations

import argparse
import datetime

import jax
import optax

from vograd.benchmarks.speed import throughput as speed_throughput
from vograd.benchmarks.optimizer.update import mlp_params
from vograd.benchmarks.reference import lopt as ref
from vograd.benchmarks.speed.common import (
    compile_timed,
    fmt,
    load_average,
    machine,
    matmul_peak,
    round_robin,
    write_report,
)
from vograd.benchmarks.speed.throughput import PAIRS, HORIZON, Case

DEFAULT_OUT = "runs/bench_reference"
WINDOWS = {"quadratic": (10, 50), "mlp": (10, 50), "conv": (10,)}
ROUNDS = {"quadratic": 7, "mlp": 5, "conv": 2}
ESTIMATORS = {"quadratic": ("ES", "PES", "TBPTT", "Merged"), "mlp": ("ES", "PES", "TBPTT", "Merged"),
              "conv": ("ES",)}
# learned_optimization has no merged estimator: its nearest equivalent is one TruncatedGrad
# and one TruncatedES estimate on the same unrolls, so its "Merged" row is the sum of those
# two rows' times (timed in the same rounds).
REF_MERGED_PARTS = ("TBPTT", "ES")
VOGRAD_MATCHED = "vograd 1x32"
VOGRAD_METZ = "vograd Metz 2019"
REF_MATCHED = "ref MLPLOpt 1x32"
REF_DEFAULT = "ref MLPLOpt 2x32"
REF_HIDDEN_LAYERS = {REF_MATCHED: 1, REF_DEFAULT: 2}
REFERENCE_OF = {VOGRAD_MATCHED: REF_MATCHED, VOGRAD_METZ: REF_DEFAULT}  # the row each is divided by
# The CNN's convolutions dwarf the optimizer (one reference estimate takes minutes):
# only the pair of `vograd bench speed` is timed there.
IMPLEMENTATIONS = {
    "quadratic": (VOGRAD_MATCHED, VOGRAD_METZ, REF_MATCHED, REF_DEFAULT),
    "mlp": (VOGRAD_MATCHED, VOGRAD_METZ, REF_MATCHED, REF_DEFAULT),
    "conv": (VOGRAD_METZ, REF_DEFAULT),
}


def vograd_optimizer(matched: bool):
    """Returns vograd's ``MLPOptimizer`` matched to MLPLOpt 1x32 (``matched``: its 6 decays
    and 11 timescales, one hidden layer of 32) or the default Metz 2019 one; fused forward."""
    from vograd.tasks.optimizers import MLPOptimizer

    if not matched:
        return MLPOptimizer(fused_forward=True)
    return MLPOptimizer(decays=ref.LOPT_DECAYS, taus=ref.LOPT_TIMESCALES, hidden=32,
                        fused_forward=True)


def vograd_system(family, matched: bool):
    """Returns vograd's learned-optimizer system on ``family`` with `vograd_optimizer`."""
    from vograd.tasks.system import LearnedOptimizerSystem

    return LearnedOptimizerSystem(vograd_optimizer(matched), family, horizon=HORIZON)


def reference_merged_rows(rows: list[dict], ref_names: list[str]) -> list[dict]:
    """Returns one ``"Merged"`` row per window and reference implementation in ``rows``:
    its `REF_MERGED_PARTS` rows (TBPTT and ES at that window) with their first-call,
    wall and CPU seconds added, and the steps/s of the sum (``2 * PAIRS * window``
    inner steps, as every row counts)."""
    by = {(r["window"], r["estimator"], r["name"]): r for r in rows}
    out = []
    for window in sorted({r["window"] for r in rows}):
        for name in ref_names:
            parts = [by[(window, e, name)] for e in REF_MERGED_PARTS]
            row = {"task": parts[0]["task"], "window": window, "estimator": "Merged", "name": name,
                   "summed_from": list(REF_MERGED_PARTS), "walls": None,
                   **{k: sum(p[k] for p in parts) for k in ("first_call_s", "wall_s", "cpu_s")}}
            steps = 2 * PAIRS * window
            row.update(steps_per_s=steps / row["wall_s"], steps_per_cpu_s=steps / row["cpu_s"])
            out.append(row)
    return out


def run_task(task: str, windows=None, rounds: int | None = None, log=print) -> dict:
    """Returns the rows of one task: every (window, estimator, implementation) timed in the
    same rounds, with steps/s and the ratios of each vograd row to its reference row."""
    lo = ref.modules()
    windows = windows or WINDOWS[task]
    rounds = rounds or ROUNDS[task]
    ours = speed_throughput.make_family(task)
    theirs = ref.family(task, lo)
    names = IMPLEMENTATIONS[task]
    systems = {name: vograd_system(ours, name == VOGRAD_MATCHED)
               for name in names if name.startswith("vograd")}
    lopts = {name: ref.optimizer(REF_HIDDEN_LAYERS[name], lo)
             for name in names if name.startswith("ref")}
    timed, keys = [], []
    for window in windows:
        for est in ESTIMATORS[task]:
            for name, system in systems.items():
                t = speed_throughput.estimator_timed(system, Case(task, est, window))
                timed.append(t)
                keys.append((window, est, name))
                log(f"  compiled {name} {est} w{window} ({t.compile_s:.1f} s)")
            for name, lopt in lopts.items():
                if est == "Merged":
                    continue  # summed from its parts below
                t = ref.estimator_timed(name, theirs, lopt, est, window, PAIRS, HORIZON, lo)
                timed.append(t)
                keys.append((window, est, name))
                log(f"  first call {name} {est} w{window} ({t.compile_s:.1f} s)")
    for r in range(rounds):
        # Each round starts one function further on, so no function always runs first after
        # the previous round's heaviest call (the first slot measured 1.6x slower: the ES
        # row at window 10 took 0.062 s where PES, the same work, took 0.039 s).
        shift = r * len(timed) // rounds
        round_robin(timed[shift:] + timed[:shift], 1)
        log(f"  round {r + 1}/{rounds} done")
    rows = []
    for t, (window, est, name) in zip(timed, keys):
        steps = 2 * PAIRS * window
        rows.append({"task": task, "window": window, "estimator": est, "name": name,
                     "first_call_s": t.compile_s, "wall_s": t.wall_s, "cpu_s": t.cpu_s,
                     "walls": t.wall, "steps_per_s": steps / t.wall_s,
                     "steps_per_cpu_s": steps / t.cpu_s})
    if "Merged" in ESTIMATORS[task]:
        rows += reference_merged_rows(rows, list(lopts))
    by = {(r["window"], r["estimator"], r["name"]): r for r in rows}
    rows.sort(key=lambda r: (r["window"], ESTIMATORS[task].index(r["estimator"]),
                             names.index(r["name"])))
    for r in rows:
        base = REFERENCE_OF.get(r["name"], r["name"])
        other = by[(r["window"], r["estimator"], base)]
        r["x_ref"] = other["wall_s"] / r["wall_s"]
        r["x_ref_cpu"] = other["cpu_s"] / r["cpu_s"]
        r["vs"] = base
    return {"task": task, "num_params": ref.num_params(theirs, lo), "rows": rows}


def update_rows(rounds: int = 30, repeats: int = 10, lo=None) -> list[dict]:
    """Returns the cost of one update on the 784-16-10 MLP's parameters: optax.adam, the
    two vograd optimizers and the two MLPLOpts, timed round-robin (median microseconds)."""
    lo = lo or ref.modules()
    params = mlp_params(jax.random.key(0))
    grads = jax.tree.map(lambda p: 1e-2 * jax.random.normal(jax.random.key(1), p.shape), params)
    adam = optax.adam(1e-3)

    def adam_update(grads, state, params):
        updates, state = adam.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    timed = [compile_timed("optax.adam", adam_update, (grads, adam.init(params), params))]
    for name in (VOGRAD_MATCHED, VOGRAD_METZ):
        opt = vograd_optimizer(name == VOGRAD_MATCHED)
        theta = opt.init_theta(jax.random.key(2))

        def ours(theta, grads, state, params, opt=opt):
            updates, state = opt.update(theta, grads, state, params)
            return optax.apply_updates(params, updates), state

        timed.append(compile_timed(name, ours, (theta, grads, opt.init(theta, params), params)))
    for name, layers in REF_HIDDEN_LAYERS.items():
        timed.append(ref.update_timed(name, ref.optimizer(layers, lo), params, grads))
    round_robin(timed, rounds, repeats)
    adam_us = timed[0].wall_s * 1e6
    by = {t.name: t.wall_s for t in timed}
    rows = []
    for t in timed:
        base = REFERENCE_OF.get(t.name)
        rows.append({"name": t.name, "us": t.wall_s * 1e6, "min_us": min(t.wall) * 1e6,
                     "x_adam": t.wall_s * 1e6 / adam_us,
                     "x_ref": by[base] / t.wall_s if base else None})
    return rows


def measure(tasks, log=print) -> dict:
    """Returns the whole run: machine, peaks before and after, the function check, the
    update costs, the tasks."""
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "machine": machine(), "peak_before": matmul_peak()}
    results["check"] = ref.same_function_check()
    log(f"same-function check: {results['check']}")
    results["update"] = update_rows()
    log(f"update costs: {results['update']}")
    results["tasks"] = []
    for task in tasks:
        log(f"{task}:")
        results["tasks"].append(run_task(task, log=log))
    results["peak_after"] = matmul_peak()
    results["load_average_after"] = load_average()
    return results


def report(results: dict, command: str) -> str:
    """Returns the markdown report of ``measure``'s results."""
    m = results["machine"]
    check = results["check"]
    lines = [
        f"Command: `{command}` ({results['date']}). Machine: {m['cpu']}, {m['cores']} cores, "
        f"jax {m['jax']}. Load average at the start: "
        + ", ".join(f"{x:.2f}" for x in m["load_average"])
        + "; at the end: " + ", ".join(f"{x:.2f}" for x in results["load_average_after"]) + ".",
        f"float32 matmul peak (2048^2): {results['peak_before']['flop_per_s'] / 1e9:.1f} GFLOP/s "
        f"at the start, {results['peak_after']['flop_per_s'] / 1e9:.1f} at the end.",
        "",
        f"Same function: one update of `MLPOptimizer` ({check['features']} features, "
        f"{check['hidden']} hidden) with MLPLOpt 1x32's weights copied over differs from "
        f"MLPLOpt's by at most {check['max_abs_diff']:.1e} (largest step "
        f"{check['max_abs_step']:.1e}).",
        "",
        "Medians over rounds in which every function ran once. `x ref`: the reference row's "
        "time over this row's (wall clock; `x ref CPU`: process CPU time); each vograd row "
        f"is compared with the reference row of the same optimizer size (`{VOGRAD_MATCHED}` with "
        f"`{REF_MATCHED}`, `{VOGRAD_METZ}` with `{REF_DEFAULT}`, the pair of `vograd bench speed`). "
        "The reference has no merged estimator: its Merged rows are its TBPTT and ES rows "
        "added (both estimates on the same unrolls), vograd's one `Merged` estimate.",
        "",
    ]
    lines += ["#### One update, 12,730 parameters", "",
              "Jitted, applied to the parameters; median (minimum) microseconds over "
              "round-robin calls. `x ref`: the same-size reference optimizer's time over this row's.",
              "", "| optimizer | us (min) | x optax.adam | x ref |", "|---|---|---|---|"]
    for r in results["update"]:
        lines.append(f"| {r['name']} | {r['us']:.0f} ({r['min_us']:.0f}) | {r['x_adam']:.1f} "
                     f"| {'-' if r['x_ref'] is None else format(r['x_ref'], '.2f')} |")
    lines.append("")
    for task in results["tasks"]:
        lines += [f"#### {task['task']} ({task['num_params']:,} parameters)", "",
                  "| window | estimator | implementation | first call s | s / estimate "
                  "| inner steps/s | x ref | x ref CPU |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in task["rows"]:
            is_ref = r["name"].startswith("ref")
            label = r["name"] + (" (" + " + ".join(r["summed_from"]) + ")" if r.get("summed_from") else "")
            lines.append(
                f"| {r['window']} | {r['estimator']} | {label} | {r['first_call_s']:.1f} "
                f"| {fmt(r['wall_s'])} | {fmt(r['steps_per_s'])} "
                f"| {'-' if is_ref else fmt(r['x_ref'])} "
                f"| {'-' if is_ref else fmt(r['x_ref_cpu'])} |")
        lines.append("")
    return "\n".join(lines)


def main(tasks=("quadratic", "mlp"), out_dir: str | None = None) -> str:
    """Runs the benchmark on ``tasks``; returns the report (also written to ``out_dir``)."""
    results = measure(tasks)
    command = "python -m vograd.benchmarks.reference.run --tasks " + " ".join(tasks)
    text = report(results, command)
    write_report(out_dir or DEFAULT_OUT, "reference", results, text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["quadratic", "mlp"],
                        choices=sorted(WINDOWS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    print(main(tasks=tuple(args.tasks), out_dir=args.out))
