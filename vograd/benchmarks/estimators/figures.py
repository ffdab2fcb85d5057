"""The toy versions of Metz et al. (2019) Figures 2-4, computed and drawn.

- Fig. 2 (`momentum_landscape`, `plot_landscape`): the outer landscape of
  Momentum1D turns rough as the horizon grows;
- Fig. 3 (`truncation_runs`, `plot_truncation`): outer-training theta of
  InfluenceBalancing with truncated backprop at several windows and with PES,
  all for the same total number of inner steps;
- Fig. 4 (`plot_variance`): total variance of g_rp and g_es against the
  horizon, and the weight the merged estimator gives g_rp (data from
  `estimator_quality.smoothed_sweep`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import vograd
from vograd import plotting
from vograd.benchmarks.estimators.quality import SweepPoint
from vograd.tasks.toys import InfluenceBalancing, Momentum1D
from vograd.tasks.toys.momentum_1d import GLOBAL_MINIMUM, LOCAL_MINIMUM, inner_loss


def momentum_landscape(horizon: int, thetas: np.ndarray) -> np.ndarray:
    """Returns ``w_t`` of Momentum1D for every momentum in ``thetas``: ``[horizon + 1, n]``
    (row 0 is ``w0``), one jitted scan over all thetas."""
    system = Momentum1D(horizon=horizon)
    thetas = jnp.asarray(thetas)

    @jax.jit
    def run(thetas):
        state = jax.vmap(lambda th: system.init(th, None))(thetas)

        def body(state, _):
            state, _ = jax.vmap(lambda th, s: system.step(th, s, None))(thetas, state)
            return state, state[0]

        w0 = state[0]
        _, ws = jax.lax.scan(body, state, None, length=horizon)
        return jnp.concatenate([w0[None], ws])

    return np.asarray(run(thetas), np.float64)


def plot_landscape(
    path: Path, thetas: np.ndarray, ws: np.ndarray, horizons: list[int], shown: list[float]
) -> None:
    """Draws Fig. 2: (a) the inner loss, (b) ``w_T`` over (theta, T), (c) trajectories
    ``w_t`` for the momenta in ``shown``, (d) ``l(w_T)`` against theta at each horizon."""
    fig = plotting.new_figure(figsize=(11, 8))
    if fig is None:
        return
    ax = fig.subplots(2, 2)
    w = np.linspace(-1.6, 4.4, 400)
    ax[0, 0].plot(w, inner_loss(w), "k")
    ax[0, 0].plot([-1.2], [inner_loss(-1.2)], "*", ms=14, color="k", label="w0 = -1.2")
    for m, lab in ((LOCAL_MINIMUM, "local min"), (GLOBAL_MINIMUM, "global min")):
        ax[0, 0].plot([m], [inner_loss(m)], "o", label=f"{lab} w = {m:.3f}")
    ax[0, 0].set(xlabel="w", ylabel="l(w)", title="(a) inner loss (w-4)(w-3)w^2", ylim=(-15, 30))
    ax[0, 0].legend(fontsize=8)

    T = np.arange(ws.shape[0])
    mesh = ax[0, 1].pcolormesh(thetas, T[1:], ws[1:], shading="auto", cmap="coolwarm",
                               vmin=-1.2, vmax=4.5)
    fig.colorbar(mesh, ax=ax[0, 1], label="w_T")
    ax[0, 1].set(xlabel="momentum theta", ylabel="inner steps T", yscale="log",
                 title="(b) final w_T against theta and T")

    for th in shown:
        i = int(np.argmin(np.abs(thetas - th)))
        ax[1, 0].plot(T, ws[:, i], lw=1, label=f"theta = {thetas[i]:.2f}")
    ax[1, 0].set(xlabel="inner step t", ylabel="w_t", xscale="symlog",
                 title="(c) trajectories w_t")
    ax[1, 0].legend(fontsize=8)

    for h in horizons:
        ax[1, 1].plot(thetas, inner_loss(ws[h]), lw=1, label=f"T = {h}")
    ax[1, 1].set(xlabel="momentum theta", ylabel="final loss l(w_T)", ylim=(-4, 16),
                 title="(d) outer landscape: final loss against theta")
    ax[1, 1].legend(fontsize=8)
    fig.suptitle("Fig. 2 (toy): the outer landscape of learned momentum turns rough as T grows")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """Theta after each outer update of one run; ``window`` inner steps per update."""

    label: str
    window: int
    thetas: np.ndarray

    @property
    def inner_steps(self) -> np.ndarray:
        """Returns the inner steps unrolled by the end of each update."""
        return self.window * np.arange(1, len(self.thetas) + 1)

    def final_theta(self) -> float:
        """Returns the mean theta over the last 10% of updates (smooths PES noise)."""
        return float(np.mean(self.thetas[-max(1, len(self.thetas) // 10):]))


def train_thetas(
    system: vograd.UnrolledSystem,
    estimator: vograd.Estimator,
    optimizer: optax.GradientTransformation,
    num_updates: int,
    key: jax.Array,
) -> np.ndarray:
    """Returns theta after each of ``num_updates`` outer updates, from ``system.init_theta``.

    The whole loop is one ``lax.scan`` (thousands of tiny updates: a host
    round trip per update, as in `vograd.train`, would dominate the run).
    """
    k_init, k_steps = jax.random.split(key)
    theta = system.init_theta(k_init)

    @eqx.filter_jit
    def run(theta, keys):
        carry = (theta, optimizer.init(theta), estimator.init(system, theta, k_init))

        def body(carry, k):
            theta, opt_state, est_state = carry
            g, est_state, _ = estimator.estimate(system, theta, est_state, k)
            updates, opt_state = optimizer.update(g, opt_state, theta)
            theta = optax.apply_updates(theta, updates)
            return (theta, opt_state, est_state), theta

        return jax.lax.scan(body, carry, keys)[1]

    return np.asarray(run(theta, jax.random.split(k_steps, num_updates)), np.float64)


def truncation_runs(
    horizon: int,
    windows: list[int],
    pes_window: int,
    inner_steps: int,
    num_pairs: int,
    sigma: float,
    learning_rate: float,
    key: jax.Array,
    es_window: int | None = None,
) -> list[TrainingRun]:
    """Returns Fig. 3's runs on InfluenceBalancing, each for ``inner_steps`` inner steps.

    Truncated backprop (one particle: the system is deterministic) at each
    window, PES (``num_pairs`` pairs) at ``pes_window`` and, if given,
    truncated antithetic ES at ``es_window``; Adam(``learning_rate``) for all.
    """
    system = InfluenceBalancing(horizon=horizon)
    opt = optax.adam(learning_rate)
    runs = []
    configs = [(f"TruncatedBackprop W={w}", w, vograd.TruncatedBackprop(num_particles=1, window=w))
               for w in windows]
    if es_window is not None:
        configs.append((f"EvolutionStrategies W={es_window}", es_window,
                        vograd.EvolutionStrategies(num_pairs=num_pairs, sigma=sigma,
                                                   window=es_window)))
    configs.append((f"PersistentES W={pes_window}", pes_window,
                    vograd.PersistentES(num_pairs=num_pairs, sigma=sigma, window=pes_window)))
    for i, (label, w, est) in enumerate(configs):
        thetas = train_thetas(system, est, opt, inner_steps // w, jax.random.fold_in(key, i))
        runs.append(TrainingRun(label, w, thetas))
    return runs


def plot_truncation(
    path: Path, runs: list[TrainingRun], loss, theta_star: float, horizon: int
) -> None:
    """Draws Fig. 3: the full-episode loss ``loss(theta)`` and theta along each run."""
    fig = plotting.new_figure(figsize=(12, 4.5))
    if fig is None:
        return
    ax = fig.subplots(1, 2)
    for run in runs:
        style = "--" if "PersistentES" in run.label else "-." if "Evolution" in run.label else "-"
        c = plotting.color(run.label)
        ax[0].plot(run.inner_steps, loss(run.thetas), style, lw=1.2, color=c, label=run.label)
        ax[1].plot(run.inner_steps, run.thetas, style, lw=1.2, color=c, label=run.label)
    ax[0].axhline(loss(np.array([theta_star]))[0], color="k", lw=0.8, ls=":",
                  label="optimum L(theta*)")
    ax[0].set(xlabel="total inner steps", ylabel=f"full-episode loss L(theta) (T = {horizon})",
              yscale="log", title="(a) outer loss while outer-training")
    ax[1].axhline(theta_star, color="k", lw=0.8, ls=":", label=f"theta* = {theta_star:.3f}")
    # Linear below |theta| = 1 (where the optimum is), logarithmic above:
    # short truncations run away to large theta.
    ax[1].set_yscale("symlog", linthresh=1.0, linscale=2.0)
    top = max(1.0, max(float(np.max(r.thetas)) for r in runs))
    ticks = [t for t in (-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
             if t <= 1.5 * top]
    ax[1].set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax[1].set(xlabel="total inner steps", ylabel="theta (symlog above 1)", ylim=(-0.5, 1.5 * top),
              title="(b) learned theta")
    ax[1].legend(fontsize=8)
    ax[0].legend(fontsize=8)
    fig.suptitle("Fig. 3 (toy): influence balancing, same total inner steps per run; short "
                 "truncations move theta away from theta*, PES converges to it")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_variance(path: Path, sweeps: dict[str, list[SweepPoint]], group: int) -> None:
    """Draws Fig. 4: total variance per sample of g_rp and g_es against T (top) and
    the merged estimator's weight on g_rp with ``group`` pairs (bottom), per system."""
    n = len(sweeps)
    fig = plotting.new_figure(figsize=(max(4.6 * n, 8), 7))
    if fig is None:
        return
    ax = fig.subplots(2, n, squeeze=False)
    for j, (name, points) in enumerate(sweeps.items()):
        T = [p.horizon for p in points]
        ax[0, j].plot(T, [p.variance("rp") for p in points], "o-", label="g_rp (reparam.)")
        ax[0, j].plot(T, [p.variance("es") for p in points], "s-", label="g_es (ES)")
        ax[0, j].set(yscale="log", title=name, xlabel="horizon T",
                     ylabel="total variance per sample")
        ax[0, j].legend(fontsize=8)
        ax[1, j].plot(T, [p.weight_rp for p in points], "o-", color="tab:green")
        ax[1, j].set(ylim=(-0.03, 1.03), xlabel="horizon T",
                     ylabel=f"merged weight on g_rp ({group} pairs)")
    fig.suptitle("Fig. 4 (toy): total variance of g_rp and g_es against the horizon T,\n"
                 "and the weight the merged estimator gives g_rp", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
