"""Markdown tables of the estimator benchmark (`vograd.benchmarks.estimators.run`)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from vograd.benchmarks.estimators import cases as estimator_cases
from vograd.benchmarks.estimators.quality import Row, SweepPoint


def fmt(x: float | None) -> str:
    """Returns ``x`` with 4 significant digits, in scientific notation when very
    large or small; '-' for None."""
    if x is None:
        return "-"
    x = float(x)
    if not np.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.2e}"


def fmt_vec(v: np.ndarray) -> str:
    """Returns a vector as ``(a, b, ...)`` (a scalar for one element)."""
    v = np.atleast_1d(v)
    return fmt(v[0]) if v.size == 1 else "(" + ", ".join(fmt(x) for x in v) + ")"


def _by_system(rows: list[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[r.system].append(r)
    return groups


def _fastest(rows: list[Row], key) -> dict:
    best: dict = {}
    for r in rows:
        best[key(r)] = min(best.get(key(r), np.inf), r.cpu_seconds)
    return best


def _bias_cells(r: Row) -> list[str]:
    return [fmt(r.cosine), f"{fmt(r.error)} ± {fmt(r.error_se)}", fmt(r.relative_error)]


def full_table(rows: list[Row], refs: dict, repeats: int) -> str:
    """Returns the full-episode section: one table per system, rows (T, estimator)."""
    out = [
        "## Full-episode estimators against the horizon T",
        "",
        f"Each row: {repeats} estimates with fresh keys at the same theta. `E[g]` is their mean, "
        "`g*` the gradient of the smoothed objective E[L(theta + sigma n)] of a full episode; "
        "`± se` is the standard error of `||E[g] - g*||` (estimate and reference noise), so an "
        "error within ~3 se is not a measurable bias. cos is cos(E[g], g*) (for a scalar theta: "
        "the sign). total var: sum over theta's elements of the per-sample variance (mean of "
        "the per-estimate unbiased `Diagnostics.variance`; for Merged, S times the variance of "
        "its estimates). w_rp: Merged's mean per-element weight on g_rp. FullBackprop is "
        "unbiased for the *unsmoothed* gradient, so its error here is the smoothing gap. "
        "ms/estimate: wall time of one jitted estimate after compilation (the fastest call: "
        "the machine is shared, slower calls measure other processes); cpu ms: median CPU "
        "time of the process per estimate (Python dispatch included; far less inflated by "
        "other processes than wall time); × fastest: cpu ms against the fastest estimator at "
        "the same T.",
        "",
    ]
    for system, group in _by_system(rows).items():
        case = estimator_cases.CASES[system]
        ref0 = next(iter(refs[system].values()))
        out += [f"### {system}", "", f"{case.setting}. Reference g*: {ref0.method}.", ""]
        out.append(
            "g* by T: "
            + "; ".join(
                f"T={T}: {fmt_vec(ref.grad)}"
                + (f" (se {fmt_vec(ref.se)})" if np.any(ref.se > 0) else "")
                for T, ref in sorted(refs[system].items())
            )
        )
        out += ["", "| T | estimator | cos | ‖E[g]−g*‖ ± se | rel. err | total var "
                "| w_rp | dropped | ms/estimate | cpu ms | × fastest |",
                "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        best = _fastest(group, lambda r: r.horizon)
        for r in group:
            out.append(
                "| " + " | ".join(
                    [str(r.horizon), r.estimator, *_bias_cells(r), fmt(r.variance),
                     fmt(r.weight_rp), str(r.dropped), f"{1e3 * r.seconds:.3g}",
                     f"{1e3 * r.cpu_seconds:.3g}", f"{r.cpu_seconds / best[r.horizon]:.2f}"]
                ) + " |"
            )
        out.append("")
    return "\n".join(out)


def truncated_table(rows: list[Row], episodes: int) -> str:
    """Returns the truncated section: one table per system at a fixed horizon, rows
    (window, estimator)."""
    if not rows:
        return ""
    out = [
        "## Truncated estimators against the window",
        "",
        f"Persistent particles run {episodes} whole episodes as K = T / window consecutive "
        "windows at a fixed theta (as outer training does with a constant truncation). `E[g]` "
        "is the mean over all windows of all episodes, compared with the full-episode `g*`; "
        "se from the spread of the per-episode means. var/window: total variance per sample "
        "of one window's estimate (what one outer update sees). ms/estimate, cpu ms as above; "
        "ms/episode = K × ms/estimate; × fastest: cpu ms against the fastest estimator at "
        "the same window.",
        "",
    ]
    for system, group in _by_system(rows).items():
        case = estimator_cases.CASES[system]
        r0 = group[0]
        out += [f"### {system}, T = {r0.horizon}", "",
                f"{case.setting}. g* = {fmt_vec(r0.reference.grad)} ({r0.reference.method}).", ""]
        if system == "InfluenceBalancing":
            ib = case.make(r0.horizon)
            windows = sorted({r.window for r in group})
            out += ["Closed-form expectation of TruncatedBackprop (start states held fixed): "
                    + "; ".join(f"W={w}: {fmt(estimator_cases.influence_truncated_grad(ib, 0.5, w))}"
                                for w in windows) + ".", ""]
        out += ["| window | estimator | cos | ‖E[g]−g*‖ ± se | rel. err | var/window | w_rp "
                "| dropped | ms/estimate | cpu ms | ms/episode | × fastest |",
                "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        best = _fastest(group, lambda r: r.window)
        for r in group:
            K = r.horizon // r.window
            out.append(
                "| " + " | ".join(
                    [str(r.window), r.estimator, *_bias_cells(r), fmt(r.variance),
                     fmt(r.weight_rp), str(r.dropped), f"{1e3 * r.seconds:.3g}",
                     f"{1e3 * r.cpu_seconds:.3g}", f"{1e3 * K * r.seconds:.3g}",
                     f"{r.cpu_seconds / best[r.window]:.2f}"]
                ) + " |"
            )
        out.append("")
    return "\n".join(out)


def sweep_table(sweeps: dict[str, list[SweepPoint]], group: int, pairs: int) -> str:
    """Returns the Fig. 4 numbers: variances of g_rp and g_es and the merge weight against T."""
    out = [
        "## Variance of g_rp and g_es against T (Fig. 4)",
        "",
        f"{pairs} antithetic pairs per horizon, full episodes; both estimators from the same "
        f"pairs. w_rp: mean weight of Merged on g_rp over estimates of {group} pairs.",
        "",
    ]
    for system, points in sweeps.items():
        out += [f"### {system}", "", f"{estimator_cases.CASES[system].setting}.", "",
                "| T | var g_rp | var g_es | var ratio rp/es | w_rp | dropped |",
                "|---:|---:|---:|---:|---:|---:|"]
        for p in points:
            v_rp, v_es = p.variance("rp"), p.variance("es")
            out.append(f"| {p.horizon} | {fmt(v_rp)} | {fmt(v_es)} | {fmt(v_rp / v_es)} "
                       f"| {fmt(p.weight_rp)} | {p.dropped} |")
        out.append("")
    return "\n".join(out)


def training_table(runs, closed: dict, inner_steps: int, horizon: int) -> str:
    """Returns the Fig. 3 numbers: where each outer-training run ended."""
    loss, theta_star = closed["loss"], closed["theta_star"]
    out = [
        "## Truncation bias while outer-training (Fig. 3)",
        "",
        f"InfluenceBalancing (T = {horizon}, theta0 = 0.5), Adam(0.01), every run "
        f"{inner_steps} inner steps in total. Optimum theta* = {fmt(theta_star)} "
        f"(L = {fmt(loss(np.array([theta_star]))[0])}, closed form). Closed-form "
        "truncated-backprop gradient at theta0 (true full-episode gradient: "
        f"{fmt(closed['true_grad_at_theta0'])}): "
        + "; ".join(f"W={w}: {fmt(g)}" for w, g in closed["tbptt_grad_at_theta0"].items())
        + ".",
        "",
        "| run | outer updates | final theta (last 10%) | L(final theta) |",
        "|---|---:|---:|---:|",
    ]
    for run in runs:
        th = run.final_theta()
        out.append(f"| {run.label} | {len(run.thetas)} | {fmt(th)} | {fmt(loss(np.array([th]))[0])} |")
    out.append("")
    return "\n".join(out)
