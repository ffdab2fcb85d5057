"""Metz et al. 2019, Figures 3 and 4 on a real learned-optimizer system (not a toy).

At a fixed theta (the initialisation of seed 0, and theta after a short
outer-training run of the shared setting, `metz2019_scale`), with the recipe's
merged estimator compiled once at the full episode (``window = H = horizon``)
and run with the dynamic ``length``:

- **variance against unroll length (Fig. 4).** Fresh episodes unrolled for ``T``
  steps from step 0, ``P`` antithetic pairs x ``R`` repeats (new tasks and
  inner initialisations per repeat) give ``N = P R`` per-pair estimates
  ``g_rp[i]`` and ``g_es[i]`` (``[N, d]``). Reported: the total variances
  ``sum_j Var_i[g[i, j]]`` (bootstrap 95% interval over pairs) and the mean
  per-element ES weight of the authors' merge,
  ``w_es[j] = (1/v_es[j]) / (1/v_es[j] + 1/v_rp[j])`` with ``v += 1e-8``.
- **bias of truncated gradients at a fixed budget (Fig. 3).** One episode of
  ``H`` steps per pair is cut into ``H / tau`` windows; each window's merged-rule
  estimate is taken with the inner state carried over (truncated: no gradient
  flows between windows). The episode's truncated gradient is the mean over
  windows (the gradient of the episode's mean loss when windows are equal).
  Its components are pooled over pairs and merged as above; ``tau = H`` is the
  unbiased full-episode reference (same tasks and initialisations: common random
  numbers). Reported: ``||g_tau - g_H|| / ||g_H||`` and ``cos(g_tau, g_H)``
  with paired-bootstrap 95% intervals (pairs resampled jointly across ``tau``).
- **along outer training.** The per-step variances and merge weights that
  `vograd.train` logged (``metrics.jsonl``) while producing the trained theta.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float
from scipy import stats

from vograd import plotting
from vograd.benchmarks.estimators.quality import flat_samples
from vograd.estimators.reduce import VARIANCE_FLOOR
from vograd.recipes import run as runs
from vograd.recipes.config import Truncation
from vograd.recipes.reproductions import common, metz2019_scale, metz2019_training
from vograd.recipes.reproductions.base import Reproduction

# Per size: unroll lengths for the variance sweep, truncations for the bias
# (divisors of the horizon; the last is the horizon: the reference), pairs per
# call, repeats for each, outer steps of the run that gives the trained theta.
SETTINGS = {
    "tiny": dict(lengths=(2, 8, 40), truncations=(4, 20, 40), pairs=2, var_repeats=2,
                 bias_repeats=2, train_steps=4),
    "full": dict(lengths=(4, 8, 16, 32, 64, 128, 200), truncations=(5, 20, 50, 200), pairs=8,
                 var_repeats=2, bias_repeats=3, train_steps=40),
}
BOOTSTRAP = 500


def _train_config(size: str):
    steps = SETTINGS[size]["train_steps"]
    c = metz2019_scale.base(size)
    return replace(c, outer_steps=steps, checkpoint_every=max(1, steps // 4),
                   truncation=replace(c.truncation, num_steps=steps))


def _probe(size: str):
    """Returns ``(system, estimator)``: the merged estimator at ``window = horizon``."""
    base = metz2019_scale.base(size)
    c = replace(base, estimator=replace(base.estimator, num_pairs=SETTINGS[size]["pairs"]),
                truncation=Truncation(fixed=base.horizon))
    return c.system("train"), c.estimator


def merge_weights(rp: Float[np.ndarray, "N d"], es: Float[np.ndarray, "N d"]
                  ) -> Float[np.ndarray, " d"]:
    """Returns the per-element ES weight ``(1/v_es) / (1/v_es + 1/v_rp)``, ``v`` the
    unbiased variances over the ``N`` samples plus 1e-8 (the authors' merge)."""
    p_rp = 1.0 / (np.var(rp, axis=0, ddof=1) + VARIANCE_FLOOR)
    p_es = 1.0 / (np.var(es, axis=0, ddof=1) + VARIANCE_FLOOR)
    return p_es / (p_es + p_rp)


def merged_mean(rp: Float[np.ndarray, "N d"], es: Float[np.ndarray, "N d"]
                ) -> Float[np.ndarray, " d"]:
    """Returns ``w_es * mean(es) + (1 - w_es) * mean(rp)`` per element (`merge_weights`)."""
    w = merge_weights(rp, es)
    return w * es.mean(0) + (1 - w) * rp.mean(0)


def total_variance(g: Float[np.ndarray, "N d"]) -> float:
    """Returns ``sum_j Var_i[g[i, j]]`` (unbiased)."""
    return float(np.sum(np.var(g, axis=0, ddof=1)))


def bootstrap(fn, n: int, key: int = 0) -> tuple[float, float]:
    """Returns the 2.5% and 97.5% quantiles of ``fn(idx)`` over ``BOOTSTRAP`` resamples
    ``idx`` of ``range(n)`` with replacement."""
    rng = np.random.default_rng(key)
    vals = np.array([fn(rng.integers(0, n, n)) for _ in range(BOOTSTRAP)])
    return float(np.nanquantile(vals, 0.025)), float(np.nanquantile(vals, 0.975))


@eqx.filter_jit
def _per_sample(est, system, theta, state, key, length):
    """``est.per_sample`` jitted once per estimator (a fresh ``filter_jit`` wrapper per call
    would recompile)."""
    return est.per_sample(system, theta, state, key, length=length)


def _pairs(samples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns ``(rp [P, d], es [P, d], keep [P])`` of one call's samples (float64)."""
    return (flat_samples(samples.components["rp"]), flat_samples(samples.components["es"]),
            np.asarray(samples.keep))


def variance_sweep(system, est, theta, lengths, repeats: int, key) -> list[dict]:
    """Returns, per unroll length ``T``, the pooled variances and merge weight (module doc)."""
    fn = lambda *a, length: _per_sample(est, *a, length)  # noqa: E731
    rows = []
    for T in lengths:
        rp, es = [], []
        for r in range(repeats):
            k = jax.random.fold_in(key, r)  # same tasks for every T: common random numbers
            state = est.init(system, theta, k)
            samples, _ = fn(system, theta, state, jax.random.fold_in(k, 1), length=jnp.asarray(T))
            a, b, keep = _pairs(samples)
            rp.append(a[keep])
            es.append(b[keep])
        rp, es = np.concatenate(rp), np.concatenate(es)
        n = rp.shape[0]
        if n < 3:  # every pair but two diverged: no variance to report
            rows.append({"length": int(T), "samples": int(n), "var_rp": None, "var_es": None,
                         "var_rp_ci": None, "var_es_ci": None, "weight_es": None,
                         "weight_es_ci": None})
            continue
        rows.append({
            "length": int(T), "samples": int(n), "var_rp": total_variance(rp),
            "var_es": total_variance(es),
            "var_rp_ci": bootstrap(lambda i: total_variance(rp[i]), n, 1),
            "var_es_ci": bootstrap(lambda i: total_variance(es[i]), n, 2),
            "weight_es": float(np.mean(merge_weights(rp, es))),
            "weight_es_ci": bootstrap(lambda i: float(np.mean(merge_weights(rp[i], es[i]))), n, 3),
        })
    return rows


def truncated_episodes(system, est, theta, tau: int, repeats: int, key
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(rp, es)``, ``[N, d]``: each pair's mean over the ``H / tau`` windows of
    one episode of its per-window estimates (pairs with a dropped window removed)."""
    fn = lambda *a, length: _per_sample(est, *a, length)  # noqa: E731
    num = system.horizon // tau
    rp_all, es_all = [], []
    for r in range(repeats):
        k = jax.random.fold_in(key, r)
        state = est.init(system, theta, k)  # the same episodes for every tau
        rp = es = 0.0
        keep = True
        for w in range(num):
            samples, state = fn(system, theta, state, jax.random.fold_in(k, 1000 + w),
                                length=jnp.asarray(tau))
            a, b, kept = _pairs(samples)
            rp, es, keep = rp + a / num, es + b / num, keep & kept
        rp_all.append(np.asarray(rp)[keep])
        es_all.append(np.asarray(es)[keep])
    return np.concatenate(rp_all), np.concatenate(es_all)


def _cosine(a, b) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def bias_sweep(system, est, theta, truncations, repeats: int, key) -> list[dict]:
    """Returns, per truncation ``tau``, the relative distance and cosine of the truncated
    merged gradient to the ``tau = H`` reference, with paired-bootstrap intervals."""
    runs_ = {tau: truncated_episodes(system, est, theta, tau, repeats, key) for tau in truncations}
    ref_rp, ref_es = runs_[truncations[-1]]
    n = min(x[0].shape[0] for x in runs_.values())  # pairs kept in every run (usually all)
    if n < 3:
        return [{"truncation": int(tau), "windows": system.horizon // tau, "samples": int(n),
                 "relative_error": None, "relative_error_ci": None, "cosine": None,
                 "cosine_ci": None, "norm": None, "norm_reference": None, "var_rp": None,
                 "var_es": None} for tau in truncations]
    ref = merged_mean(ref_rp[:n], ref_es[:n])
    rows = []
    for tau in truncations:
        rp, es = (x[:n] for x in runs_[tau])
        rel = lambda i: float(np.linalg.norm(merged_mean(rp[i], es[i]) - merged_mean(  # noqa: E731
            ref_rp[i], ref_es[i])) / np.linalg.norm(merged_mean(ref_rp[i], ref_es[i])))
        cos = lambda i: _cosine(merged_mean(rp[i], es[i]), merged_mean(ref_rp[i], ref_es[i]))  # noqa: E731
        g = merged_mean(rp, es)
        all_ = np.arange(n)
        rows.append({
            "truncation": int(tau), "windows": system.horizon // tau, "samples": int(n),
            "relative_error": rel(all_), "relative_error_ci": bootstrap(rel, n, 4),
            "cosine": cos(all_), "cosine_ci": bootstrap(cos, n, 5),
            "norm": float(np.linalg.norm(g)), "norm_reference": float(np.linalg.norm(ref)),
            "var_rp": total_variance(rp), "var_es": total_variance(es),
        })
    return rows


def logged(run_dir: Path) -> dict:
    """Returns the outer run's per-step window, variances and ES weight (metrics.jsonl),
    and the Spearman correlation of ``log(var_rp / var_es)`` with the window."""
    rows = runs.read_metrics(run_dir)
    get = lambda k, sub: [r[k].get(sub) if r[k] else None for r in rows]  # noqa: E731
    out = {"step": [r["step"] for r in rows], "window": [r["window"] for r in rows],
           "var_rp": get("variance", "rp"), "var_es": get("variance", "es"),
           "weight_es": get("weight", "es")}
    ok = [i for i, (a, b) in enumerate(zip(out["var_rp"], out["var_es"])) if a and b]
    ratio = np.log([out["var_rp"][i] / out["var_es"][i] for i in ok])
    rho = stats.spearmanr(np.asarray(out["window"])[ok], ratio).statistic if len(ok) > 2 else None
    out["spearman_window_vs_log_ratio"] = None if rho is None or not np.isfinite(rho) else float(rho)
    return out


def judge(variance: list[dict], bias: list[dict]) -> list[dict]:
    """Returns the sub-claims checked at one theta.

    - reparameterization variance grows with unroll length: the longest length's
      total variance > 10x the shortest's, bootstrap intervals disjoint;
    - ES variance stays bounded: its growth factor is under 10x and under rp's;
    - the merge shifts weight to ES: mean ES weight at the longest length exceeds
      the shortest's, intervals disjoint;
    - short truncations are biased: the shortest truncation's relative error to
      the reference lies above (intervals disjoint) that of the longest truncation
      short of the full episode.
    """
    variance = [r for r in variance if r["var_rp"] is not None]
    if len(variance) < 2 or bias[0]["relative_error"] is None:
        return [{"claim": "variance and bias measurable", "supported": False,
                 "evidence": "too many diverged pairs"}]
    lo, hi = variance[0], variance[-1]
    grow_rp = hi["var_rp"] / max(lo["var_rp"], 1e-30)
    grow_es = hi["var_es"] / max(lo["var_es"], 1e-30)
    short, long = bias[0], bias[-2]
    return [
        {"claim": "reparameterization variance grows with unroll length",
         "supported": bool(grow_rp > 10 and hi["var_rp_ci"][0] > lo["var_rp_ci"][1]),
         "evidence": f"var_rp x{grow_rp:.3g} from T={lo['length']} to T={hi['length']}"},
        {"claim": "ES variance stays bounded",
         "supported": bool(grow_es < 10 and grow_es < grow_rp),
         "evidence": f"var_es x{grow_es:.3g} over the same lengths"},
        {"claim": "the merge shifts weight to ES for long unrolls",
         "supported": bool(hi["weight_es_ci"][0] > lo["weight_es_ci"][1]),
         "evidence": f"mean ES weight {lo['weight_es']:.1e} at T={lo['length']} -> "
                     f"{hi['weight_es']:.1e} at T={hi['length']}"},
        {"claim": "short truncations are biased (at a fixed inner-step budget)",
         "supported": bool(short["relative_error_ci"][0] > long["relative_error_ci"][1]),
         "evidence": f"relative error to the full episode {short['relative_error']:.3f} at "
                     f"tau={short['truncation']} vs {long['relative_error']:.3f} at "
                     f"tau={long['truncation']}; cosine {short['cosine']:.3f} vs "
                     f"{long['cosine']:.3f}"},
    ]


def verdict(claims: dict[str, list[dict]]) -> str:
    """Returns "reproduced" when every sub-claim holds at the trained theta, "partly" when
    at least two do (there or at the initial theta), else "not reproduced"."""
    trained = sum(c["supported"] for c in claims["trained"])
    best = max(sum(c["supported"] for c in v) for v in claims.values())
    if trained == len(claims["trained"]):
        return "reproduced"
    return "partly" if best >= 2 else "not reproduced"


def plot(path: Path, results: dict):
    """Writes a 2x2 figure: variances and ES weight against unroll length (Fig. 4), relative
    error of truncated gradients against truncation (Fig. 3), and the logged run."""
    fig = plotting.new_figure(figsize=(13, 9))
    if fig is None:
        return None
    (var_ax, w_ax), (bias_ax, log_ax) = fig.subplots(2, 2)
    for (name, rows), ls in zip(results["variance"].items(), ("-", "--")):
        rows = [r for r in rows if r["var_rp"] is not None]
        if not rows:
            continue
        T = [r["length"] for r in rows]
        for comp, color in (("rp", "#1f77b4"), ("es", "#ff7f0e")):
            y = np.array([r[f"var_{comp}"] for r in rows])
            ci = np.array([r[f"var_{comp}_ci"] for r in rows]).T
            var_ax.errorbar(T, y, yerr=[y - ci[0], ci[1] - y], ls=ls, marker="o", color=color,
                            capsize=3, label=f"{comp}, {name} theta")
        y = np.array([r["weight_es"] for r in rows])
        ci = np.array([r["weight_es_ci"] for r in rows]).T
        w_ax.errorbar(T, y, yerr=[y - ci[0], ci[1] - y], ls=ls, marker="o", capsize=3,
                      label=f"{name} theta")
    var_ax.set(xscale="log", yscale="log", xlabel="unroll length T (inner steps from step 0)",
               ylabel="total variance per pair", title="Estimator variance (paper: Fig. 4)")
    w_ax.set(xscale="log", yscale="log", xlabel="unroll length T",
             ylabel="mean per-element ES weight", title="Merge weight on ES (1 = all ES)")
    for (name, rows), ls in zip(results["bias"].items(), ("-", "--")):
        rows = [r for r in rows if r["relative_error"] is not None]
        if not rows:
            continue
        tau = [r["truncation"] for r in rows]
        y = np.array([r["relative_error"] for r in rows])
        ci = np.array([r["relative_error_ci"] for r in rows]).T
        bias_ax.errorbar(tau, y, yerr=[y - ci[0], ci[1] - y], ls=ls, marker="o", capsize=3,
                         label=f"{name} theta")
    bias_ax.set(xscale="log", xlabel=f"truncation tau (episode of {results['horizon']} steps)",
                ylabel="||g_tau - g_full|| / ||g_full||",
                title="Truncation bias at a fixed budget (paper: Fig. 3)")
    lg = results["logged"]
    step = np.asarray(lg["step"])
    for comp, color in (("rp", "#1f77b4"), ("es", "#ff7f0e")):
        log_ax.plot(step, [np.nan if v is None else v for v in lg[f"var_{comp}"]], color=color,
                    label=f"var {comp}")
    log_ax.set(yscale="log", xlabel="outer step", ylabel="total variance (logged)",
               title="Along the outer-training run")
    twin = log_ax.twinx()
    twin.plot(step, lg["window"], color="#2ca02c", alpha=0.5, label="window")
    twin.set_ylabel("window (inner steps)")
    for ax in (var_ax, w_ax, bias_ax, log_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def report(results: dict) -> str:
    """Returns report.md."""
    lines = REPRODUCTION.report_header(
        f"vograd reproduce {REPRODUCTION.name} --size {results['size']}")
    for name, rows in results["variance"].items():
        rows = [r for r in rows if r["var_rp"] is not None] or [{"samples": 0}]
        lines += [f"Variance against unroll length, {name} theta ({rows[0]['samples']} pairs "
                  "per length; 95% bootstrap intervals):", "",
                  "| T | var rp | var es | mean ES weight |", "|---|---|---|---|"]
        lines += [f"| {r['length']} | {r['var_rp']:.3g} [{r['var_rp_ci'][0]:.3g}, "
                  f"{r['var_rp_ci'][1]:.3g}] | {r['var_es']:.3g} [{r['var_es_ci'][0]:.3g}, "
                  f"{r['var_es_ci'][1]:.3g}] | {r['weight_es']:.1e} [{r['weight_es_ci'][0]:.1e}, "
                  f"{r['weight_es_ci'][1]:.1e}] |" for r in rows if "length" in r]
        lines.append("")
    for name, rows in results["bias"].items():
        if rows[0]["relative_error"] is None:
            lines += [f"Truncated gradients, {name} theta: too many diverged pairs.", ""]
            continue
        lines += [f"Truncated gradients over one {results['horizon']}-step episode, {name} theta "
                  f"({rows[0]['samples']} pairs; reference: tau = {rows[-1]['truncation']}):", "",
                  "| tau | windows | relative error | cosine | norm |", "|---|---|---|---|---|"]
        lines += [f"| {r['truncation']} | {r['windows']} | {r['relative_error']:.3f} "
                  f"[{r['relative_error_ci'][0]:.3f}, {r['relative_error_ci'][1]:.3f}] | "
                  f"{r['cosine']:.3f} [{r['cosine_ci'][0]:.3f}, {r['cosine_ci'][1]:.3f}] | "
                  f"{r['norm']:.3g} |" for r in rows]
        lines.append("")
    rho = results["logged"]["spearman_window_vs_log_ratio"]
    lines += [f"Along the outer-training run ({len(results['logged']['step'])} steps): Spearman "
              f"correlation of log(var_rp / var_es) with the window: "
              f"{'-' if rho is None else f'{rho:.2f}'}.", ""]
    for name, claims in results["claims"].items():
        lines += [f"Sub-claims at the {name} theta:", "", "| sub-claim | supported | evidence |",
                  "|---|---|---|"]
        lines += [f"| {c['claim']} | {'yes' if c['supported'] else 'no'} | {c['evidence']} |"
                  for c in claims]
        lines.append("")
    lines += [f"**Verdict: {results['verdict']}.**", "", "![bias and variance](bias_variance.png)",
              ""]
    return "\n".join(lines)


def run(out_dir: Path, size: str = "full", seeds: int = 3, progress: bool = True) -> dict:
    """Returns results.json's dict, computing what ``out_dir`` lacks. ``seeds`` is unused:
    the repeats are pairs x independent episode draws (``SETTINGS``), not outer seeds."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = SETTINGS[size]
    train_dir = out / "train"
    if progress:
        print(f"[metz2019-bias-variance] theta after {s['train_steps']} outer steps", flush=True)
    config = _train_config(size)
    done = (train_dir / "theta.ckpt").exists()  # written once training has finished
    trained = (runs.load_theta(train_dir)[1] if done else
               metz2019_training.train(config, train_dir, 0))
    thetas = {"initial": metz2019_training.initial_theta(config, 0), "trained": trained}
    system, est = _probe(size)
    key = jax.random.key(2019)
    variance, bias = {}, {}
    for name, theta in thetas.items():
        if progress:
            print(f"[metz2019-bias-variance] {name} theta: variance and bias sweeps", flush=True)
        variance[name] = common.json_stage(out / f"variance_{name}.json", lambda: variance_sweep(
            system, est, theta, s["lengths"], s["var_repeats"], key))
        bias[name] = common.json_stage(out / f"bias_{name}.json", lambda: bias_sweep(
            system, est, theta, s["truncations"], s["bias_repeats"], jax.random.fold_in(key, 1)))
    claims = {name: judge(variance[name], bias[name]) for name in thetas}
    results = {"name": REPRODUCTION.name, "size": size, "horizon": system.horizon,
               "variance": variance, "bias": bias, "logged": logged(train_dir),
               "claims": claims, "verdict": verdict(claims)}
    common.write_json(out / "results.json", results, indent=2)
    (out / "report.md").write_text(report(results))
    plot(out / "bias_variance.png", results)
    return results


REPRODUCTION = Reproduction(
    name="metz2019-bias-variance",
    paper="Metz et al. 2019, Understanding and correcting pathologies in the training of "
          "learned optimizers",
    figure="Figures 3 and 4",
    claim=("Short truncations give biased outer-gradients (Fig. 3); the variance of the "
           "reparameterization gradient grows (explodes) with unroll length while the ES "
           "variance stays bounded, so the inverse-variance merge shifts its weight to ES for "
           "long unrolls; during outer-training the reparameterization variance goes from "
           "~5 orders of magnitude below ES's to ~20 above (Fig. 4)."),
    scale=("A learned MLP optimizer training a 196-16-k MLP on 14x14 Fashion-MNIST (batch 32), "
           "not the paper's Adam learning rate on MNIST (Fig. 3) or its CNN runs (Fig. 4); "
           "unroll lengths 4-200 (paper: up to 10,000), one 200-step episode per pair for the "
           "bias (paper: 10k inner steps), 16 pairs per length and 24 per truncation (paper: "
           "128 samples per update); theta at initialisation and after 40 outer steps (paper: "
           "thousands)."),
    run=run,
)

__all__ = ["REPRODUCTION", "bias_sweep", "judge", "merge_weights", "merged_mean", "run",
           "truncated_episodes", "variance_sweep", "verdict"]
