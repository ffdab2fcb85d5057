"""Metz et al. 2019, Figure 8: the ablation study, at a scale two CPU cores afford.

Each arm is the shared scaled-down setting (`metz2019_scale`) with one part of
the method removed, outer-trained from ``seeds`` seeds (seed ``s``: theta's
initialisation and every outer key), then scored by `metz2019_scale.held_out_loss`
on the same held-out tasks (common random numbers, so arms are compared seed by
seed). Arms:

- ``full``: merged estimator, truncation curriculum, momentum and time features;
- ``grad_only`` / ``es_only``: the reparameterization / ES estimate alone;
- ``trunc_S`` / ``trunc_M`` / ``trunc_L``: a fixed window instead of the
  curriculum, with as many outer steps as keep the curriculum's total inner
  steps (the paper's "same total inner-weight updates");
- ``no_momentum`` / ``no_time``: the optimizer without those input features.

The paired comparison of an arm against ``full`` is the Student-t interval of
``score_arm[s] - score_full[s]`` over seeds (positive: the arm is worse).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from vograd import plotting
from vograd.recipes import run as runs
from vograd.recipes.reproductions import common, confidence, metz2019_scale, metz2019_training
from vograd.recipes.reproductions.base import Reproduction

# Fixed windows of the truncation arms (inner steps), per size. The paper's
# 10 / 100 / 1000 of 10,000-step episodes beside a 50 -> 10,000 curriculum; here
# 4 / 16 / 64 of 200-step episodes beside an 8 -> 40 curriculum (the short
# window below the curriculum's start, the long one above its end, as there).
WINDOWS = {"tiny": (2, 4, 8), "full": (4, 16, 64)}
OUTER_STEPS = {"tiny": 4, "full": 40}
ARMS = ("full", "grad_only", "es_only", "trunc_S", "trunc_M", "trunc_L", "no_momentum", "no_time")


def curriculum_inner_steps(config) -> float:
    """Returns the curriculum's expected inner steps, ``sum_s min(w(s), horizon)`` with
    ``w(s) = start + (end - start) min(s / num_steps, 1)`` (jitter has mean 1)."""
    t = config.truncation
    s = np.arange(config.outer_steps)
    w = t.start + (t.end - t.start) * np.minimum(s / t.num_steps, 1.0)
    return float(np.sum(np.minimum(w, config.horizon)))


def same_budget(config, window: int, own_bucket: bool = True):
    """Returns ``config`` with a fixed ``window`` and ``ceil(budget / window)`` outer steps,
    the same inner-step budget as its curriculum. ``own_bucket``: compile at the
    window's own size (a short window padded to 64 steps would pay a long one's per-step
    overhead); off, it shares the curriculum's compiled size (CI's tiny size, where
    compiling dominates)."""
    window = min(window, config.horizon)
    steps = max(1, math.ceil(curriculum_inner_steps(config) / window))
    bucket = None if own_bucket else config.truncation.min_bucket
    trunc = replace(config.truncation, fixed=window, min_bucket=bucket)
    return replace(config, truncation=trunc, outer_steps=steps,
                   checkpoint_every=max(1, steps // 4))


def arm_config(size: str, arm: str):
    """Returns the config of ablation ``arm`` at ``size``."""
    c = replace(metz2019_scale.base(size), outer_steps=OUTER_STEPS[size])
    c = replace(c, truncation=replace(c.truncation, num_steps=OUTER_STEPS[size]),
                checkpoint_every=max(1, OUTER_STEPS[size] // 4))
    short, mid, long = WINDOWS[size]
    own = size == "full"
    edits = {
        "full": lambda: c,
        "grad_only": lambda: c.ablation("grad_only"),
        "es_only": lambda: c.ablation("es_only"),
        "trunc_S": lambda: same_budget(c, short, own),
        "trunc_M": lambda: same_budget(c, mid, own),
        "trunc_L": lambda: same_budget(c, long, own),
        "no_momentum": lambda: c.ablation("no_momentum"),
        "no_time": lambda: c.ablation("no_time"),
    }
    if arm not in edits:
        raise KeyError(f"unknown arm {arm!r}; known: {ARMS}")
    return edits[arm]()


def run_arm(out: Path, size: str, arm: str, seed: int, progress: bool) -> dict:
    """Returns ``{"score", "skipped", "outer_steps", "inner_steps"}`` of one arm and seed,
    training and scoring only what ``out/arm/seed{seed}`` does not hold yet."""
    run_dir = out / arm / f"seed{seed}"
    done = run_dir / "score.json"
    if done.exists():
        return json.loads(done.read_text())
    config = arm_config(size, arm)
    if progress:
        print(f"[metz2019-ablations] {arm} seed {seed}: {config.outer_steps} outer steps", flush=True)
    theta = metz2019_training.train(config, run_dir, seed, ablation=arm)
    rows = runs.read_metrics(run_dir)
    record = {
        "score": metz2019_scale.finite_or_none(metz2019_scale.held_out_loss(config, theta)),
        "skipped": int(sum(bool(r["skipped"]) for r in rows)),
        "outer_steps": config.outer_steps,
        "inner_steps": int(sum(r["window"] for r in rows)),
        "train_seconds": float(sum(r["step_time"] for r in rows)),
    }
    common.write_json(done, record, indent=2)
    return record


def judge(scores: dict[str, list], paired: dict[str, dict]) -> tuple[str, list[dict]]:
    """Returns the verdict and the checked sub-claims of Figure 8.

    Each sub-claim is ``{"claim", "arm", "supported", "direction", "evidence"}``.
    ``supported`` is the test: "worse than full" needs the paired 95% interval
    above 0 (or the arm diverging where full did not); "nearly as good" an
    interval inside +-10% of full's mean score; "varies more" a seed-to-seed
    standard deviation above twice full's (descriptive: 3-5 seeds cannot test a
    variance ratio). ``direction``: the point estimate points the claimed way
    (mean difference > 0; |mean difference| < 10% of full's mean; sd ratio > 1),
    reported, not counted. A sub-claim whose arm was not run has both None.
    Verdict: reproduced when every counted sub-claim is supported, partly when
    at least two are, else not reproduced.
    """
    full = confidence.mean_interval(scores["full"])
    scale = abs(full["mean"] or 0.0)
    sd = lambda arm: confidence.mean_interval(scores[arm])["sd"] or 0.0  # noqa: E731
    fmt = lambda arm: f"{arm} - full = {confidence.format_interval(paired[arm])}"  # noqa: E731

    def worse(arm: str) -> tuple[bool, bool]:
        p = paired[arm]
        diverged = p["arm_diverged"] > 0
        return (bool(diverged or (confidence.excludes_zero(p) and p["mean"] > 0)),
                bool(diverged or (p["mean"] is not None and p["mean"] > 0)))

    def near(arm: str) -> tuple[bool, bool]:
        p = paired[arm]
        inside = p["low"] is not None and -0.1 * scale < p["low"] and p["high"] < 0.1 * scale
        return bool(inside), bool(p["mean"] is not None and abs(p["mean"]) < 0.1 * scale)

    def spread(arm: str) -> tuple[bool, bool]:
        return sd(arm) > 2 * sd("full"), sd(arm) > sd("full")

    checks = [
        ("merged beats reparameterization only", "grad_only", worse, fmt),
        ("merged beats ES only", "es_only", worse, fmt),
        ("short fixed truncations converge poorly", "trunc_S", worse, fmt),
        ("long fixed truncations vary more across seeds", "trunc_L", spread,
         lambda arm: f"sd {arm} {sd(arm):.3f} vs full {sd('full'):.3f}"),
        ("no time feature: nearly as good", "no_time", near, fmt),
        ("no momentum features: fails", "no_momentum", worse, fmt),
    ]
    claims = []
    for text, arm, test, show in checks:
        ran = arm in paired
        supported, direction = test(arm) if ran else (None, None)
        claims.append({"claim": text, "arm": arm, "supported": supported,
                       "direction": direction, "evidence": show(arm) if ran else "arm not run"})
    counted = [c["supported"] for c in claims if c["supported"] is not None]
    n = sum(counted)
    verdict = ("reproduced" if counted and n == len(counted) else
               "partly" if n >= 2 else "not reproduced")
    return verdict, claims


def plot(path: Path, scores: dict[str, list], paired: dict[str, dict]):
    """Writes the strip plot of per-seed scores (left; Figure 8's layout) and the paired
    differences against full with their 95% intervals (right). Returns the figure."""
    fig = plotting.new_figure(figsize=(13, 4.5))
    if fig is None:
        return None
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    arms = list(scores)
    for i, arm in enumerate(arms):
        v = np.asarray([np.nan if x is None else x for x in scores[arm]], float)
        jitter = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
        left.scatter(i + jitter, v, color=plotting.color(arm), alpha=0.8)
        if np.any(np.isfinite(v)):
            left.hlines(np.nanmean(v), i - 0.3, i + 0.3, color="k")
        left.scatter(i + jitter[~np.isfinite(v)], np.full((~np.isfinite(v)).sum(), np.nanmax(v) if
                     np.any(np.isfinite(v)) else 1.0), marker="x", color="k")
    left.set_xticks(range(len(arms)), arms, rotation=30)
    left.set_ylabel("held-out test loss over an episode (lower is better)")
    left.set_title("Per-seed scores (mean in black; x: diverged)")
    others = [a for a in arms if a != "full"]
    for j, arm in enumerate(others):
        p = paired[arm]
        if p["mean"] is None:
            continue
        err = None if p["low"] is None else [[p["mean"] - p["low"]], [p["high"] - p["mean"]]]
        right.errorbar(p["mean"], j, xerr=err, fmt="o", color=plotting.color(arm), capsize=4)
    right.axvline(0, color="k", lw=0.8)
    right.set_yticks(range(len(others)), others)
    right.invert_yaxis()
    right.set_xlabel("arm - full, paired by seed (95% t-interval); > 0: arm worse")
    right.set_title("Paper: every arm but no_time is worse")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def report(results: dict) -> str:
    """Returns report.md: claim, command, table, sub-claims and verdict."""
    lines = REPRODUCTION.report_header(f"vograd reproduce {REPRODUCTION.name} --size "
                                       f"{results['size']} --seeds {results['seeds']}") + [
        "| arm | outer steps | inner steps | score per seed | mean [95% CI] | "
        "arm - full [95% CI] |", "|---|---|---|---|---|---|"]
    for arm, per_seed in results["arms"].items():
        vals = ", ".join("diverged" if r["score"] is None else f"{r['score']:.3f}" for r in per_seed)
        diff = "" if arm == "full" else confidence.format_interval(results["paired"][arm])
        lines.append(f"| {arm} | {per_seed[0]['outer_steps']} | {per_seed[0]['inner_steps']} | "
                     f"{vals} | {confidence.format_interval(results['summary'][arm])} | {diff} |")
    lines += ["", "| sub-claim | supported (95% CI) | point estimate agrees | evidence |",
              "|---|---|---|---|"]
    mark = {True: "yes", False: "no", None: "not run"}
    lines += [f"| {c['claim']} | {mark[c['supported']]} | {mark[c['direction']]} | "
              f"{c['evidence']} |" for c in results["claims"]]
    lines += ["", f"**Verdict: {results['verdict']}.**", "", "![ablations](ablations.png)", ""]
    return "\n".join(lines)


def run(out_dir: Path, size: str = "full", seeds: int = 3, progress: bool = True) -> dict:
    """Returns results.json's dict, training every arm and seed not trained yet in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arms = {arm: [run_arm(out, size, arm, s, progress) for s in range(seeds)] for arm in ARMS}
    scores = {arm: [r["score"] for r in rows] for arm, rows in arms.items()}
    paired = {arm: confidence.paired_difference(scores["full"], scores[arm])
              for arm in ARMS if arm != "full"}
    verdict, claims = judge(scores, paired)
    results = {
        "name": REPRODUCTION.name, "size": size, "seeds": seeds,
        "windows": dict(zip(("trunc_S", "trunc_M", "trunc_L"), WINDOWS[size])),
        "arms": arms, "summary": {arm: confidence.mean_interval(v) for arm, v in scores.items()},
        "paired": paired, "claims": claims, "verdict": verdict,
    }
    common.write_json(out / "results.json", results, indent=2)
    (out / "report.md").write_text(report(results))
    plot(out / "ablations.png", scores, paired)
    return results


REPRODUCTION = Reproduction(
    name="metz2019-ablations",
    paper="Metz et al. 2019, Understanding and correcting pathologies in the training of "
          "learned optimizers",
    figure="Figure 8",
    claim=("The merged estimator is more stable and outperforms the reparameterization "
           "gradient and ES alone; fixed truncations converge poorly when short (10, 100 "
           "steps) and vary widely when long (1000); without the time feature the optimizer "
           "is nearly as good; without momentum features it fails to converge."),
    scale=("Inner problem: 196-16-k MLP on 14x14 Fashion-MNIST, batch 32 (paper: 3-layer "
           "CNNs); 200-step episodes (paper 10,000: 50x shorter); 4 antithetic pairs per "
           "update (paper 128 samples); 40 outer steps for the curriculum arms (paper "
           "~400k inner problems per seed); curriculum 8 -> 40 steps (paper 50 -> 10,000); "
           "fixed windows 4 / 16 / 64 (paper 10 / 100 / 1000), each at the curriculum's "
           "inner-step budget; score: mean test loss over one 200-step episode on 8 "
           "held-out tasks of the test class pool."),
    run=run,
)

__all__ = ["ARMS", "REPRODUCTION", "arm_config", "curriculum_inner_steps", "judge", "run",
           "same_budget"]
