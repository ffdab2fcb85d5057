"""Metz et al. 2020, Figure 7: a trained learned optimizer outer-trains a fresh one.

Three arms outer-train the same fresh learned optimizer (the Metz 2019
`MLPOptimizer`) on the same inner family, with the same estimator, windows,
outer-gradient clipping (``+-0.1`` per element) and number of outer steps
(`metz2020_outer_training.Setting`); only the transformation that turns the
clipped outer gradient into an update of theta differs:

- ``learned``: vograd's shipped default learned optimizer
  (`vograd.tasks.pretrained.load()`, the `AdaptiveMLPOptimizer`: Adam-like,
  invariant to the gradient's scale, a bounded learned per-parameter factor
  on a global rate of ~2.7e-3; it was outer-trained on small image MLPs and
  CNNs, never on a learned optimizer's weights);
- ``adam_3e-5``: Adam at 3e-5, the rate the paper trained its optimizers with;
- ``adam_1e-3``: Adam at 1e-3, the paper's best rate in its 10k-step regime.

Seed ``s`` of every arm starts from the same theta and sees the same
perturbations and batches (`vograd.train` with ``key(s)``), so arms are
compared seed by seed. The statistic of a run is its held-out score
(`metz2020_outer_training.held_out_score`) at the last outer step; the curve
of scores every ``every`` steps is the figure.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax

from vograd.recipes.evaluation import InnerSchedule, grid_curves
from vograd.recipes.reproductions import confidence
from vograd.recipes.reproductions import metz2020_outer_training as ot
from vograd.recipes.reproductions.base import Reproduction, Size
from vograd.recipes.reproductions import common

NAME = "metz2020-self-training"
LEARNED = "learned"
ADAM_RATES = {"adam_3e-5": 3e-5, "adam_1e-3": 1e-3}
ARMS = (LEARNED, *ADAM_RATES)
# Outer steps per size: longer than the shared default so that the slow arm's gap shows.
OUTER_STEPS = {"tiny": 2, "full": 60}


def fresh_optimizer():
    """Returns the learned optimizer being outer-trained: Metz 2019's `MLPOptimizer`."""
    from vograd.tasks.optimizers import MLPOptimizer

    return MLPOptimizer()


@functools.lru_cache(maxsize=None)
def outer_optimizer(arm: str, clip_value: float) -> optax.GradientTransformation:
    """Returns ``chain(clip(clip_value), T_arm)``, one object per arm (a new closure per seed
    would recompile `vograd.train`'s step): ``T`` is the shipped default learned optimizer
    for `LEARNED`, else ``adam(rate)`` with ``ADAM_RATES[arm]``."""
    if arm == LEARNED:
        from vograd.tasks import pretrained

        transform = pretrained.load()
    else:
        transform = optax.adam(ADAM_RATES[arm])
    return optax.chain(optax.clip(clip_value), transform)


def setting(size: str) -> ot.Setting:
    """Returns the shared setting of ``size``."""
    return ot.setting(size, outer_steps=OUTER_STEPS[size])


def adam_reference(s: ot.Setting, rates=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1)) -> dict:
    """Returns ``{"score", "learning_rate", "scores"}``: the held-out score of inner Adam at
    the best of ``rates`` on the very tasks and keys of `metz2020_outer_training.held_out_score`
    (a reference line: how good the inner optimizer being outer-trained could be)."""
    import jax

    family = s.problem.family("train")
    key = jax.random.key(10_000)
    tasks = jax.vmap(family.sample)(jax.random.split(key, s.eval_tasks))
    keys = jax.random.split(jax.random.fold_in(key, 1), s.eval_tasks)
    _, test = grid_curves(family, lambda h: optax.adam(h), jnp.asarray(rates, jnp.float32),
                          tasks, keys[:, None], InnerSchedule(s.horizon, s.eval_every))
    test = np.asarray(test)  # [G, T, 1, E]
    scores = [float(np.mean(c)) if np.all(np.isfinite(c)) else float("inf") for c in test]
    best = int(np.argmin(scores))
    return {"score": scores[best], "learning_rate": float(rates[best]),
            "scores": [x if np.isfinite(x) else None for x in scores]}


def log_final(c: dict) -> float | None:
    """Returns ``ln`` of the curve's last score, None if it diverged."""
    v = c["score"][-1]
    return None if v is None else float(np.log(v))


def log_area(c: dict) -> float | None:
    """Returns the mean of ``ln score`` over the curve's points after step 0 (a sample-efficiency
    summary: lower means better earlier), None if any diverged. Logs, because the scores of
    one seed span two orders of magnitude (a random theta can blow the inner problem up)."""
    v = c["score"][1:]
    return None if any(x is None for x in v) else float(np.mean(np.log(v)))


def judge(final: dict[str, list], paired: dict[str, dict], skipped: dict[str, list]
          ) -> tuple[str, list[dict]]:
    """Returns the verdict and its sub-claims.

    The paper: the learned optimizer trains itself "about as efficiently as hand
    designed methods". Per Adam arm, the learned arm is *worse* when the 95%
    interval of the paired difference ``ln learned - ln adam`` of final scores (a log
    ratio: -0.5 is 39% lower) lies above 0.
    Reproduced: stable (no skipped update, no divergence) and worse than neither Adam
    arm; partly: stable and worse than one; not reproduced: otherwise.
    """
    stable = all(v is not None for v in final[LEARNED]) and sum(skipped[LEARNED]) == 0
    worse = [a for a in ADAM_RATES if paired[a]["mean"] is not None
             and confidence.excludes_zero(paired[a]) and paired[a]["mean"] > 0]
    claims = [{"claim": "outer training with the learned optimizer is stable",
               "supported": stable,
               "evidence": f"skipped updates per seed {skipped[LEARNED]}; final ln scores "
                           f"{[None if v is None else round(v, 3) for v in final[LEARNED]]}"}]
    for a in ADAM_RATES:
        p = paired[a]
        outcome = ("worse" if a in worse else "better" if confidence.excludes_zero(p) else "tie")
        claims.append({"claim": f"learned outer optimizer is not worse than {a}",
                       "supported": a not in worse,
                       "evidence": f"ln learned - ln {a}: {confidence.format_interval(p, 3)} ({outcome})"})
    verdict = ("reproduced" if stable and not worse else
               "partly" if stable and len(worse) < len(ADAM_RATES) else "not reproduced")
    return verdict, claims


def run(out_dir: Path, size: Size, seeds: int, progress: bool) -> dict:
    """Returns results.json's dict, outer-training and scoring what ``out_dir`` lacks."""
    out = Path(out_dir)
    s = setting(size)
    lopt = fresh_optimizer()
    curves = {arm: [ot.curve(s, lopt, lambda a=arm: outer_optimizer(a, s.clip_value),
                             out / arm / f"seed{k}", k, f"{NAME} {arm}", progress)
                    for k in range(seeds)] for arm in ARMS}
    adam = common.json_stage(out / "inner_adam.json", lambda: adam_reference(s))
    final = {a: [log_final(c) for c in cs] for a, cs in curves.items()}
    areas = {a: [log_area(c) for c in cs] for a, cs in curves.items()}
    skipped = {a: [c["skipped"] for c in cs] for a, cs in curves.items()}
    paired = {a: confidence.paired_difference(final[a], final[LEARNED]) for a in ADAM_RATES}
    paired_area = {a: confidence.paired_difference(areas[a], areas[LEARNED]) for a in ADAM_RATES}
    verdict, claims = judge(final, paired, skipped)
    results = {
        "name": NAME, "size": size, "seeds": seeds, "verdict": verdict,
        "setting": dataclasses.asdict(s),
        "curves": curves,
        "final": {a: confidence.mean_interval([c["score"][-1] for c in cs])
                  for a, cs in curves.items()},
        "log_final": {a: confidence.mean_interval(v) for a, v in final.items()},
        "log_area": {a: confidence.mean_interval(v) for a, v in areas.items()},
        "paired_final": paired, "paired_area": paired_area,
        "initial": confidence.mean_interval([c["score"][0] for c in curves[LEARNED]]),
        "inner_adam": adam, "claims": claims,
    }
    common.write_json(out / "results.json", results, indent=2)
    (out / "report.md").write_text(report(results))
    ot.band_figure(out / "outer_curves.png", curves, adam["score"],
                   "Outer-training a fresh MLPOptimizer (paper: Fig. 7)",
                   f"inner Adam tuned ({adam['learning_rate']:g})")
    return results


def report(results: dict) -> str:
    """Returns report.md."""
    lines = REPRODUCTION.report_header(
        f"vograd reproduce {NAME} --size {results['size']} --seeds {results['seeds']}")
    steps = results["curves"][LEARNED][0]["steps"]
    lines += ["Held-out score (test loss over a full episode on fresh tasks; lower is better), "
              "mean over seeds [95% t-interval]:", "",
              "| outer optimizer | " + " | ".join(f"step {k}" for k in steps) +
              " | mean ln score after step 0 | skipped |", "|" + "---|" * (len(steps) + 3)]
    for arm, cs in results["curves"].items():
        per_step = [confidence.mean_interval([c["score"][i] for c in cs])
                    for i in range(len(steps))]
        lines.append(f"| {arm} | " + " | ".join(confidence.format_interval(x, 3) for x in per_step)
                     + f" | {confidence.format_interval(results['log_area'][arm], 3)} | "
                     f"{sum(c['skipped'] for c in cs)} |")
    lines += ["", "Paired differences of ln score (log ratios; same seed: same initial theta, "
              "perturbations and batches; -0.5 is a 39% lower loss):",
              "", "| comparison | ln final score [95% CI] | mean ln score after step 0 [95% CI] |",
              "|---|---|---|"]
    for a in ADAM_RATES:
        lines.append(f"| learned - {a} | "
                     f"{confidence.format_interval(results['paired_final'][a], 3)} | "
                     f"{confidence.format_interval(results['paired_area'][a], 3)} |")
    ad = results["inner_adam"]
    lines += ["", f"Reference: inner Adam tuned on the same held-out tasks scores {ad['score']:.3f} "
              f"(rate {ad['learning_rate']:g}).", "",
              *common.verdict_lines(results, "outer_curves.png")]
    return "\n".join(lines)


REPRODUCTION = Reproduction(
    name=NAME,
    paper="Metz et al. 2020, Tasks, stability, architecture, and compute: training more "
          "effective learned optimizers",
    figure="Figure 7",
    claim=("The learned optimizers can be used to train themselves about as efficiently as hand "
           "designed methods: outer-training a fresh learned optimizer with a trained one as the "
           "outer optimizer does about as well as with Adam at 3e-5 (the rate used to train the "
           "paper's optimizers) and at 1e-3 (the best rate in its 10k-outer-step regime)."),
    scale=("The trained optimizer is vograd's shipped default (AdaptiveMLPOptimizer, outer-trained "
           "on small MLP/CNN image tasks), not the paper's hierarchical one trained on thousands "
           "of tasks; the fresh optimizer is the Metz 2019 MLPOptimizer on a 196-16-k ReLU MLP on "
           "14x14 Fashion-MNIST (batch 32), 200-step episodes (paper: 10k, 50x shorter), fixed "
           "windows of 20 steps, merged estimator with 2 antithetic pairs per update, 60 outer "
           "steps (paper: 10k, ~170x fewer), scored every 10 steps on 6 fresh tasks x 1 init "
           "(paper: 100 tasks x 5 inits); 5 outer seeds per arm (paper: several)."),
    run=run,
    min_seeds=5,
)

__all__ = ["ADAM_RATES", "ARMS", "REPRODUCTION", "judge", "outer_optimizer", "run"]
