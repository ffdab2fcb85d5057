"""Estimator-quality benchmark on the toy systems (``vograd bench estimators``).

For each toy system (`vograd.benchmarks.estimators.cases`), a range of horizons T and
truncation windows, and each applicable estimator, measures

- bias: ``cos(E[g], g*)`` and ``||E[g] - g*||`` against the gradient ``g*`` of
  the Gaussian-smoothed objective (closed form where known, else a
  high-accuracy reference computed in the same run, see `estimator_cases`);
- total variance per sample, ``sum_j Var[g_s[j]]``;
- wall time per estimate after compilation, absolute and as a ratio to the
  fastest estimator of the same system and horizon;

and draws toy versions of Metz et al. (2019) Figures 2-4. Writes
``estimators.md`` (the returned string), ``estimators.json`` (the same
numbers, machine-readable) and the PNGs into ``out_dir``.

    python -m vograd.benchmarks.estimators.run [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

import vograd
from vograd.benchmarks.estimators import figures as figs
from vograd.benchmarks.estimators import cases as estimator_cases
from vograd.benchmarks.estimators.quality import Reference, Row, SweepPoint, measure, smoothed_sweep
from vograd.benchmarks.estimators.report import full_table, sweep_table, training_table, truncated_table

DEFAULT_OUT = "runs/bench_estimators"


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one benchmark run (`FULL` or `QUICK`).

    ``samples``: S pairs or particles per estimate (as an outer update
    would use); ``repeats``: estimates per full-episode row; ``episodes``:
    episodes per truncated row; ``full``: system -> horizons of the
    full-episode table; ``truncated``: system -> (horizon, windows);
    ``truncated_estimators``: which truncated estimators to run;
    ``sweeps``: system -> horizons of Fig. 4 (largest first in compute);
    ``sweep_pairs``: antithetic pairs per sweep point (also the Lorenz
    reference); the Fig. 2 and Fig. 3 sizes follow.
    """

    quick: bool
    samples: int
    repeats: int
    episodes: int
    full: dict[str, tuple[int, ...]]
    truncated: dict[str, tuple[int, tuple[int, ...]]]
    truncated_estimators: tuple[str, ...]
    sweeps: dict[str, tuple[int, ...]]
    sweep_pairs: int
    quadrature_nodes: int
    landscape_horizon: int
    landscape_thetas: int
    landscape_horizons: tuple[int, ...]
    fig3_horizon: int
    fig3_windows: tuple[int, ...]
    fig3_es: bool
    fig3_inner_steps: int
    fig3_pairs: int


FULL = Config(
    quick=False,
    samples=8,
    repeats=200,
    episodes=16,
    full={
        "QuadraticLearningRate": (10, 30),
        "Momentum1D": (20, 100, 1000),
        "InfluenceBalancing": (500,),
        "LinearQuadratic": (100,),
        "Lorenz": (100, 2000),
    },
    truncated={"InfluenceBalancing": (500, (10, 100)), "LinearQuadratic": (100, (5, 50))},
    truncated_estimators=("TruncatedBackprop", "EvolutionStrategies", "Merged", "PersistentES",
                          "NoiseReuseES", "ESSingle"),
    sweeps={
        "QuadraticLearningRate": (5, 10, 20, 30, 50, 100, 200, 300),
        "Momentum1D": (10, 20, 50, 100, 200, 500, 1000),
        "Lorenz": (50, 100, 200, 500, 1000, 2000),
    },
    sweep_pairs=4096,
    quadrature_nodes=40001,
    landscape_horizon=1000,
    landscape_thetas=1500,
    landscape_horizons=(20, 100, 300, 1000),
    fig3_horizon=500,
    fig3_windows=(10, 50, 100, 500),
    fig3_es=True,
    fig3_inner_steps=100_000,
    fig3_pairs=64,
)

QUICK = Config(
    quick=True,
    samples=8,
    repeats=40,
    episodes=8,
    full={"QuadraticLearningRate": (10,)},
    truncated={"InfluenceBalancing": (100, (10,))},
    truncated_estimators=("TruncatedBackprop", "PersistentES", "NoiseReuseES", "ESSingle"),
    sweeps={"Lorenz": (100, 1000)},
    sweep_pairs=64,
    quadrature_nodes=4001,
    landscape_horizon=300,
    landscape_thetas=300,
    landscape_horizons=(20, 100, 300),
    fig3_horizon=100,
    fig3_windows=(10,),
    fig3_es=False,
    fig3_inner_steps=5_000,
    fig3_pairs=32,
)


def full_estimators(S: int, sigma: float) -> list[vograd.Estimator]:
    """Returns the whole-episode estimators, ``S`` pairs or particles each."""
    return [
        vograd.Reparameterization(num_pairs=S, sigma=sigma),
        vograd.FullES(num_pairs=S, sigma=sigma),
        vograd.Merged(num_pairs=S, sigma=sigma),
        vograd.Merged(num_pairs=S, sigma=sigma, weights="cross_fit"),
        vograd.Merged(num_pairs=S, sigma=sigma, weights="cross_fit", detect_jumps=True),
        vograd.FullBackprop(num_particles=S),
    ]


def truncated_estimator(name: str, S: int, sigma: float, window: int) -> vograd.Estimator:
    """Returns the truncated estimator ``name`` with persistent particles."""
    if name == "TruncatedBackprop":
        return vograd.TruncatedBackprop(num_particles=S, window=window)
    if name in ("PersistentES", "NoiseReuseES", "ESSingle"):
        return getattr(vograd, name)(num_pairs=S, sigma=sigma, window=window)
    cls = {"EvolutionStrategies": vograd.EvolutionStrategies, "Merged": vograd.Merged}[name]
    return cls(num_pairs=S, sigma=sigma, window=window)


def _references(cfg: Config, name: str, horizons: list[int], sweeps, key) -> dict[int, Reference]:
    case = estimator_cases.CASES[name]
    if case.closed_form is not None:
        return {
            T: estimator_cases.closed_form_reference(case, case.make(T), case.theta()) for T in horizons
        }
    if name == "Momentum1D":
        return estimator_cases.momentum_references(case, sorted(horizons), cfg.quadrature_nodes)
    # Lorenz: the high-sample sweep (own keys) at exactly these horizons.
    points = {p.horizon: p for p in sweeps.get(name, [])}
    missing = [T for T in horizons if T not in points]
    if missing:
        run = smoothed_sweep(case.make(max(missing)), case.theta(), case.sigma, sorted(missing),
                             cfg.sweep_pairs, cfg.samples, jax.random.fold_in(key, 7))
        points.update({p.horizon: p for p in run})
    method = case.method.format(pairs=cfg.sweep_pairs)
    return {T: dataclasses.replace(points[T].combined(), method=method) for T in horizons}


def run_tables(cfg: Config, sweeps, key, log) -> tuple[list[Row], list[Row], dict]:
    """Returns (full-episode rows, truncated rows, references by system)."""
    S, full_rows, trunc_rows, refs = cfg.samples, [], [], {}
    for i, (name, horizons) in enumerate(cfg.full.items()):
        case = estimator_cases.CASES[name]
        refs[name] = _references(cfg, name, list(horizons), sweeps, jax.random.fold_in(key, i))
        for T in horizons:
            system, theta = case.make(T), case.theta()
            for j, est in enumerate(full_estimators(S, case.sigma)):
                log(f"{name} T={T} {type(est).__name__}")
                k = jax.random.fold_in(jax.random.fold_in(key, 100 + i), 10 * T + j)
                full_rows.append(measure(system, theta, est, refs[name][T], k,
                                         episodes=cfg.repeats, name=name))
    for i, (name, (T, windows)) in enumerate(cfg.truncated.items()):
        case = estimator_cases.CASES[name]
        system, theta = case.make(T), case.theta()
        ref = _references(cfg, name, [T], sweeps, jax.random.fold_in(key, 50 + i))[T]
        refs.setdefault(name, {})[T] = ref
        for W in windows:
            for j, est_name in enumerate(cfg.truncated_estimators):
                log(f"{name} T={T} W={W} {est_name}")
                est = truncated_estimator(est_name, S, case.sigma, W)
                k = jax.random.fold_in(jax.random.fold_in(key, 200 + i), 10 * W + j)
                trunc_rows.append(measure(system, theta, est, ref, k,
                                          episodes=cfg.episodes, name=name))
    return full_rows, trunc_rows, refs


def run_sweeps(cfg: Config, key) -> dict[str, list[SweepPoint]]:
    """Returns the Fig. 4 sweeps: per-sample g_rp and g_es against T, per system."""
    out = {}
    for i, (name, horizons) in enumerate(cfg.sweeps.items()):
        case = estimator_cases.CASES[name]
        out[name] = smoothed_sweep(case.make(max(horizons)), case.theta(), case.sigma,
                                   list(horizons), cfg.sweep_pairs, cfg.samples,
                                   jax.random.fold_in(key, i))
    return out


def run_figures(cfg: Config, sweeps, key, log) -> tuple[list, dict, dict]:
    """Returns the data of Figs. 2-3: the Fig. 3 runs, their closed forms, and the Fig. 2
    landscape (drawn by `draw_figures` once the numbers are written)."""
    log("Fig. 2: Momentum1D landscape")
    thetas = np.linspace(0.5, 0.99, cfg.landscape_thetas)
    landscape = {"thetas": thetas, "ws": figs.momentum_landscape(cfg.landscape_horizon, thetas)}

    log("Fig. 3: outer-training InfluenceBalancing")
    case = estimator_cases.CASES["InfluenceBalancing"]
    system = case.make(cfg.fig3_horizon)
    runs = figs.truncation_runs(
        cfg.fig3_horizon, list(cfg.fig3_windows), 10, cfg.fig3_inner_steps, cfg.fig3_pairs,
        case.sigma, 0.01, key, es_window=10 if cfg.fig3_es else None,
    )
    v, m = estimator_cases.influence_loss_coefficients(system)

    def loss(th):
        th = np.asarray(th, np.float64)
        return 0.5 * np.mean((v[None] + m[None] * th[:, None] - 1.0) ** 2, axis=1)

    closed = {
        "theta_star": estimator_cases.influence_optimum(system),
        "loss": loss,
        "true_grad_at_theta0": system.true_grad(0.5),
        "tbptt_grad_at_theta0": {
            W: estimator_cases.influence_truncated_grad(system, 0.5, W) for W in cfg.fig3_windows
        },
    }
    return runs, closed, landscape


def draw_figures(cfg: Config, out: Path, sweeps, runs, closed, landscape) -> None:
    """Draws Figs. 2-4 into ``out`` (skipped, with one warning, without matplotlib)."""
    figs.plot_landscape(out / "fig2_momentum_landscape.png", landscape["thetas"], landscape["ws"],
                        list(cfg.landscape_horizons), [0.5, 0.78, 0.82, 0.9, 0.95, 0.97])
    figs.plot_truncation(out / "fig3_truncation_bias.png", runs, closed["loss"],
                         closed["theta_star"], cfg.fig3_horizon)
    figs.plot_variance(out / "fig4_variance.png", sweeps, cfg.samples)


def main(out_dir: str | os.PathLike | None = None, quick: bool = False) -> str:
    """Runs the benchmark; returns the markdown report (also written to
    ``out_dir/estimators.md``, default ``runs/bench_estimators``) and writes
    ``fig2_momentum_landscape.png``, ``fig3_truncation_bias.png`` and
    ``fig4_variance.png`` there."""
    cfg = QUICK if quick else FULL
    out = Path(DEFAULT_OUT if out_dir is None else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    key = jax.random.key(2019)

    def log(msg: str) -> None:
        # Progress on stderr: stdout carries only the report (the CLI prints it).
        print(f"[bench estimators {time.perf_counter() - t_start:6.1f}s, "
              f"cpu {time.process_time():6.1f}s] {msg}", file=sys.stderr, flush=True)

    with jax.enable_x64(True):
        log("Fig. 4 sweeps")
        sweeps = run_sweeps(cfg, jax.random.fold_in(key, 1))
        log("tables")
        full_rows, trunc_rows, refs = run_tables(cfg, sweeps, jax.random.fold_in(key, 2), log)
        log("Figs. 2-3")
        runs, closed, landscape = run_figures(cfg, sweeps, jax.random.fold_in(key, 3), log)
    elapsed = time.perf_counter() - t_start

    lines = [
        "# Estimator quality on toy systems",
        "",
        f"Command: `vograd bench estimators{' --quick' if quick else ''}` "
        f"(= `python -m vograd.benchmarks.estimators.run{' --quick' if quick else ''}`); "
        f"{elapsed:.0f} s ({time.process_time():.0f} s CPU) on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}, load average {load_start:.1f} at the "
        f"start, {os.getloadavg()[0]:.1f} at the end: the machine was shared), "
        f"jax {jax.__version__}, float64. Every estimate uses S = {cfg.samples} antithetic pairs "
        f"(TruncatedBackprop / FullBackprop: S particles). Numbers are measurements of this run.",
        "",
        full_table(full_rows, refs, cfg.repeats),
        truncated_table(trunc_rows, cfg.episodes),
        sweep_table(sweeps, cfg.samples, cfg.sweep_pairs),
        training_table(runs, closed, cfg.fig3_inner_steps, cfg.fig3_horizon),
        "Figures: `fig2_momentum_landscape.png`, `fig3_truncation_bias.png`, `fig4_variance.png`.",
        "",
    ]
    report = "\n".join(lines)
    (out / "estimators.md").write_text(report)
    results = {
        "quick": quick,
        "seconds": elapsed,
        "full": [r.as_dict() for r in full_rows],
        "truncated": [r.as_dict() for r in trunc_rows],
        "sweeps": {k: [p.as_dict() for p in v] for k, v in sweeps.items()},
        "training": {
            "theta_star": closed["theta_star"],
            "runs": {r.label: {"window": r.window, "final_theta": r.final_theta(),
                               "updates": len(r.thetas)} for r in runs},
            "tbptt_grad_at_theta0": {str(w): g for w, g in closed["tbptt_grad_at_theta0"].items()},
        },
    }
    (out / "estimators.json").write_text(json.dumps(results, indent=1))
    log("Figs. 2-4: plots")
    draw_figures(cfg, out, sweeps, runs, closed, landscape)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(main(out_dir=args.out, quick=args.quick))
