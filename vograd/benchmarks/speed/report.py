"""Markdown tables of the speed benchmark (the string `vograd.benchmarks.speed.run.main` returns)."""

from __future__ import annotations

from vograd.benchmarks.speed.common import fmt
from vograd.benchmarks.speed.throughput import REFERENCE_STEPS_PER_S, REFERENCE_WINDOW

# The targets: throughput against the reference figures.
TARGETS = {"quadratic": 3.0, "mlp": 3.0, "conv": 10.0}
TASK_NAMES = {
    "quadratic": "(a) 10-d quadratic",
    "mlp": "(b) image MLP 784-16-10, batch 128",
    "conv": "(c) 3-layer 32-channel CNN, 32x32x3, batch 128",
}


def peak(results: dict) -> float:
    """Returns the larger of the two matmul peaks of the run (the stricter denominator)."""
    return max(results["peak_before"]["flop_per_s"], results["peak_after"]["flop_per_s"])


def header(results: dict, command: str) -> list[str]:
    m = results["machine"]
    load0 = ", ".join(f"{x:.2f}" for x in m["load_average"])
    load1 = ", ".join(f"{x:.2f}" for x in results["load_average_after"])
    return [
        "# Speed benchmark",
        "",
        f"Command: `{command}` ({results['date']}). Machine: {m['cpu']}, {m['cores']} cores, "
        f"devices {', '.join(m['devices'])}, jax {m['jax']}"
        + (f", XLA_FLAGS `{m['xla_flags']}`" if m["xla_flags"] else "") + ".",
        f"Load average (1, 5, 15 min) at the start: {load0}; at the end: {load1} "
        "(other people's jobs share the machine).",
        f"float32 matmul peak ({results['peak_before']['size']}^2) measured in this run: "
        f"{results['peak_before']['flop_per_s'] / 1e9:.1f} GFLOP/s at the start, "
        f"{results['peak_after']['flop_per_s'] / 1e9:.1f} GFLOP/s at the end.",
        "",
        "All times are medians over rounds in which every compared function ran once "
        "(round-robin). `x ref` divides by the reference figure of learned_optimization "
        "quoted in REFERENCES.md (not re-measured in this run; `make bench-reference` times "
        "learned_optimization itself beside vograd); every other ratio is between two "
        "functions timed in this run.",
        "",
    ]


def throughput(results: dict) -> list[str]:
    lines = [
        "## 1. Outer-gradient throughput",
        "",
        "8 antithetic pairs (16 unrolls), Metz 2019 MLP optimizer (fused forward), horizon "
        "1,000. Inner steps/s counts every step of every unroll: `16 * window / (s per "
        "estimate)`, as the reference figures do. `adam scan`: the same 16 tasks trained by "
        "optax.adam in a jitted vmapped `lax.scan`; `LO scan`: the learned optimizer stepped "
        "in the same kind of scan without an estimator. `x adam` = steps/s over the adam "
        "scan's; `LO scan / est.` = time of the LO scan over the estimate's (1.0: the "
        "estimator adds nothing). `steps/CPU-s`: steps per second of process CPU time.",
        "",
    ]
    for task in results["throughput"]:
        name = task["task"]
        lines += [
            f"### {TASK_NAMES[name]} ({task['num_params']:,} parameters)",
            "",
            f"Reference: {fmt(REFERENCE_STEPS_PER_S[name])} inner steps/s at window "
            f"{REFERENCE_WINDOW[name]}.",
            "",
            "| estimator | window | compile s | s / estimate | inner steps/s | steps/CPU-s "
            "| x ref | x adam | LO scan / est. |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in task["rows"]:
            label = {"adam": "adam scan", "lo": "LO scan"}.get(r["name"], r["name"])
            if r["chunk"]:
                label += f" (chunk {r['chunk']})"
            lines.append(
                f"| {label} | {r['window']} | {r['compile_s']:.1f} | {fmt(r['wall_s'])} "
                f"| {fmt(r['steps_per_s'])} | {fmt(r['steps_per_cpu_s'])} "
                f"| {r['x_reference']:.2f} | {r['x_adam']:.2f} | {r['x_lo_scan']:.2f} |"
            )
        lines.append("")
    lines += targets(results)
    return lines


def targets(results: dict) -> list[str]:
    lines = [
        "### Against the targets",
        "",
        "Each estimator at the reference figure's window, in multiples of that figure "
        "(REFERENCES.md, not re-measured in this run; the reference ran TruncatedES/PES; "
        "`make bench-reference` gives the measured ratios).",
        "",
        "| task | window | ES x ref | PES x ref | Merged x ref | target |",
        "|---|---|---|---|---|---|",
    ]
    for task in results["throughput"]:
        name = task["task"]
        w = REFERENCE_WINDOW[name]
        cells = []
        for est in ("ES", "PES", "Merged"):
            rows = [r for r in task["rows"] if r["name"] == est and r["window"] == w]
            cells.append(f"{rows[0]['x_reference']:.2f}" if rows else "not run")
        lines.append(f"| {TASK_NAMES[name]} | {w} | " + " | ".join(cells)
                     + f" | {TARGETS[name]:.0f}x |")
    return lines + [""]


def optimizer(results: dict) -> list[str]:
    from vograd.benchmarks.optimizer.update import format_table

    rows = results.get("optimizer")
    if rows is None:
        return ["## 2. Learned optimizer cost per inner step", "", "Skipped in quick mode.", ""]
    return [
        "## 2. Learned optimizer cost per inner step",
        "",
        f"784-16-10 MLP ({rows[0]['num_params']:,} parameters), batch 128, one task "
        "(`vograd/benchmarks/optimizer/update.py`). `update`: one jitted call; `update_scan`: "
        "per update inside a `lax.scan`; `step`, `step_scan`: a full training step (loss, "
        "gradient, update, apply). Median microseconds, and the ratio to optax.adam:",
        "",
        format_table(rows),
        "",
        "Minimum over the calls:",
        "",
        format_table(rows, "min_"),
        "",
    ]


def memory(results: dict) -> list[str]:
    mem = results["memory"]
    lines = [
        "## 3. Reparameterization gradient: memory and time vs window",
        "",
        f"MLP optimizer on the quadratic, one antithetic pair. `chunked`: ONE executable "
        f"compiled for {mem['max_window']:,} steps with chunks of {mem['chunk']} steps under "
        f"`jax.checkpoint` ({mem['chunked_compile_s']:.1f} s to compile), every window run "
        f"through the dynamic `length`; executables in its jit cache after all lengths: "
        f"**{mem['chunked_cache_size']}**. `unchunked`: compiled per window. Memory: XLA's "
        "temporary allocation of the executable.",
        "",
        "| mode | window | compiled window | temp MiB | s / estimate | steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in mem["rows"]:
        wall = fmt(r["wall_s"]) if r["wall_s"] else "-"
        rate = fmt(r["steps_per_s"]) if r["steps_per_s"] else "-"
        lines.append(f"| {r['mode']} | {r['window']:,} | {r['compiled_window']:,} "
                     f"| {r['temp_bytes'] / 2**20:.2f} | {wall} | {rate} |")
    return lines + [""]


def flops(results: dict) -> list[str]:
    p = peak(results)
    lines = [
        "## 4. Achieved FLOP/s against the matmul peak",
        "",
        f"Peak: {p / 1e9:.1f} GFLOP/s (the larger of the two matmul measurements). FLOPs "
        "per population step: XLA's count (`cost_analysis`) for one step of the 16 tasks; "
        "achieved = FLOPs x window / wall time of the row.",
        "",
        "| task | FLOPs per step (LO / adam) | row | window | achieved GFLOP/s | of peak |",
        "|---|---|---|---|---|---|",
    ]
    for task in results["throughput"]:
        f = task["step_flops"]
        w = max(r["window"] for r in task["rows"])
        for r in task["rows"]:
            if r["window"] != w or r["name"] not in ("ES", "PES", "adam", "lo"):
                continue
            label = {"adam": "adam scan", "lo": "LO scan"}.get(r["name"], r["name"])
            lines.append(
                f"| {task['task']} | {fmt(f['lo'])} / {fmt(f['adam'])} | {label} | {w} "
                f"| {r['flop_per_s'] / 1e9:.2f} | {r['flop_per_s'] / p:.3f} |"
            )
    return lines + [""]


def sharding(results: dict) -> list[str]:
    lines = ["## 5. Population over devices and processes", ""]
    if "sharding" not in results:
        return lines + ["Skipped in quick mode.", ""]
    s = results["sharding"]
    one, two = s["rows"]
    lines += [
        "ES on the image MLP, 8 pairs, window 10, in a child process with "
        "`--xla_force_host_platform_device_count=2`; the same estimator with `mesh=None` "
        "and with `mesh=population_mesh()`:",
        "",
        "| run | compile s | s / estimate | inner steps/s | CPU s / estimate |",
        "|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        lines.append(f"| {r['name']} | {r['compile_s']:.1f} | {fmt(r['wall_s'])} "
                     f"| {fmt(r['steps_per_s'])} | {fmt(r['cpu_s'])} |")
    lines += [
        "",
        f"2 devices / 1 device: **{one['wall_s'] / two['wall_s']:.2f}x** faster; gradients "
        f"agree to {s['max_abs_diff']:.1e} (largest entry {s['grad_scale']:.2f}).",
        "",
    ]
    mh = results["multihost"]
    lines += [
        "Two processes joined by `jax.distributed.initialize` (gloo CPU collectives, "
        "coordinator on localhost), one CPU device each, mesh over both: "
        + ", ".join(f"process {p['process']}: {p['global_devices']} global / "
                    f"{p['local_devices']} local devices, {fmt(p['wall_s'])} s per estimate"
                    for p in mh["processes"])
        + f". Gradient vs one process, same keys: max difference {mh['max_abs_diff']:.1e} "
        f"(largest entry {mh['grad_scale']:.2f}).",
        "",
    ]
    return lines


def padding(results: dict) -> list[str]:
    """Section 6: the cost of a padded compiled window, with and without chunking."""
    if "padding" not in results:
        return []
    p = results["padding"]
    lines = [
        "## 6. Padded compiled windows",
        "",
        f"A window of {p['window']} steps (Merged, 4 pairs, the demo's 14x14 MLP task), run "
        f"at its own compiled size and padded to {p['pad']}x, with and without "
        f"`chunk={p['chunk']}`; CPU-time ratio to the exact, unchunked run.",
        "",
        "| run | compiled size | chunk | s per estimate | CPU ratio | compile s |",
        "|---|---|---|---|---|---|",
    ]
    for r in p["rows"]:
        lines.append(f"| {r['name']} | {r['compiled']} | {r['chunk'] or '-'} | {fmt(r['wall_s'])} "
                     f"| {r['cpu_ratio']:.2f} | {fmt(r['compile_s'])} |")
    return lines + [""]


def report(results: dict, command: str) -> str:
    """Returns the whole markdown report."""
    lines = header(results, command)
    for part in (throughput, optimizer, memory, flops, sharding, padding):
        lines += part(results)
    return "\n".join(lines)
