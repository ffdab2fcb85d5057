"""Measuring one estimator on one toy system: bias, variance and wall time.

Every measurement jits ``estimator.estimate`` once, at the exact window it
reports on, and calls it repeatedly with fresh keys. The same calls give

- the bias: ``E[g]`` is the mean of the repeated estimates (``R`` calls of
  ``S`` samples each), compared with a reference gradient ``g*``; its standard
  error comes from the spread of the repeats;
- the total variance per sample, ``sum_j Var[g_s[j]]``: the mean over calls of
  `vograd.Diagnostics.variance` (an unbiased per-call estimate) for the
  single-component estimators; for `vograd.Merged`, whose estimate is not a
  mean of per-sample values, ``S`` times the total variance of the repeated
  estimates (its per-sample equivalent);
- the time per estimate, over the calls after the first (which compiles),
  each timed to ``block_until_ready``: the fastest wall time (as ``timeit``
  advises: on a shared machine slower calls measure other processes), and
  the median CPU time of the process (all threads, Python dispatch
  included), which other processes inflate far less than wall time.

`smoothed_sweep` is the cheap companion for many horizons at once: one
compilation of ``Merged.per_sample`` at the largest horizon, run with the
dynamic ``length`` at each smaller one, returns the per-sample reparameterization
and ES estimates from the same antithetic pairs (the data of Fig. 4).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import vograd
from vograd.estimators.reduce import Samples, merged_estimate

Tree = Any


def flat(tree: Tree) -> np.ndarray:
    """Returns the leaves of ``tree`` concatenated into one float64 vector."""
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def flat_samples(tree: Tree) -> np.ndarray:
    """Returns ``[S, d]``: each sample of a ``[S, ...]``-leaved tree flattened."""
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]
    return np.concatenate([x.reshape(x.shape[0], -1) for x in leaves], axis=1)


@dataclasses.dataclass(frozen=True)
class Reference:
    """The gradient ``g*`` of the smoothed outer objective, and how it was obtained.

    ``se``: its standard error per element (zeros for closed forms);
    ``method``: a short description for the report.
    """

    grad: np.ndarray
    se: np.ndarray
    method: str


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the report: an estimator at one horizon (and window)."""

    system: str
    horizon: int
    window: int | None  # None: full episodes
    estimator: str
    num_samples: int  # S per estimate (pairs or particles)
    calls: int  # estimates averaged
    mean: np.ndarray  # E[g], [d]
    se: np.ndarray  # standard error of `mean`, [d]
    reference: Reference
    variance: float  # total variance per sample
    weight_rp: float | None  # mean merge weight of g_rp (Merged only)
    seconds: float  # wall time of one estimate (fastest call)
    cpu_seconds: float  # CPU time of one estimate (median call)
    dropped: int  # samples dropped (non-finite) over all calls

    @property
    def error(self) -> float:
        """Returns ``||E[g] - g*||``."""
        return float(np.linalg.norm(self.mean - self.reference.grad))

    @property
    def error_se(self) -> float:
        """Returns the standard error of `error`: estimate and reference noise combined."""
        return float(np.sqrt(np.sum(self.se**2) + np.sum(self.reference.se**2)))

    @property
    def relative_error(self) -> float:
        """Returns ``||E[g] - g*|| / ||g*||``."""
        return self.error / max(float(np.linalg.norm(self.reference.grad)), 1e-300)

    @property
    def cosine(self) -> float:
        """Returns ``cos(E[g], g*)`` (for a scalar theta: the sign agreement, +-1)."""
        den = np.linalg.norm(self.mean) * np.linalg.norm(self.reference.grad)
        return float(np.dot(self.mean, self.reference.grad) / den) if den > 0 else float("nan")

    @property
    def steps_per_estimate(self) -> int:
        """Returns the inner steps one estimate unrolls."""
        return self.horizon if self.window is None else self.window

    def as_dict(self) -> dict:
        """Returns the row as JSON-ready numbers (the derived metrics included)."""
        return {
            "system": self.system, "horizon": self.horizon, "window": self.window,
            "estimator": self.estimator, "num_samples": self.num_samples, "calls": self.calls,
            "mean": self.mean.tolist(), "se": self.se.tolist(),
            "reference": self.reference.grad.tolist(), "reference_se": self.reference.se.tolist(),
            "reference_method": self.reference.method,
            "cosine": self.cosine, "error": self.error, "error_se": self.error_se,
            "relative_error": self.relative_error, "variance": self.variance,
            "weight_rp": self.weight_rp, "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds, "dropped": self.dropped,
        }


def _timed(fn, *args, **kwargs):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    jax.block_until_ready(out)
    return out, (time.perf_counter() - t0, time.process_time() - c0)


def estimator_name(estimator: vograd.Estimator) -> str:
    """Returns the class name, with a `vograd.Merged`'s non-default options
    (``total`` weighting, ``cross_fit`` weights, ``jumps`` detection)."""
    name = type(estimator).__name__
    if isinstance(estimator, vograd.Merged):
        options = [estimator.weighting] if estimator.weighting == "total" else []
        options += ["cross_fit"] if estimator.weights == "cross_fit" else []
        options += ["jumps"] if estimator.detect_jumps else []
        name += f"({', '.join(options)})" if options else ""
    return name


def num_samples(estimator: vograd.Estimator) -> int:
    """Returns ``S``: the estimator's pairs or particles per estimate."""
    for field in ("num_pairs", "num_particles"):
        if hasattr(estimator, field):
            return int(getattr(estimator, field))
    raise ValueError(f"{type(estimator).__name__} has neither num_pairs nor num_particles")


def measure(
    system: vograd.UnrolledSystem,
    theta: Tree,
    estimator: vograd.Estimator,
    reference: Reference,
    key: jax.Array,
    *,
    episodes: int,
    name: str,
) -> Row:
    """Returns the bias, variance and time of ``estimator`` over ``episodes`` episodes.

    Full-episode estimators (no ``window``) make one estimate per episode.
    Truncated ones (``window`` dividing the horizon) run ``K = horizon / window``
    consecutive windows per episode with persistent particles, as in
    training at a fixed theta; ``E[g]`` is then the mean over every window
    of every episode (each window of an episode weighs equally, as each
    window's loss does in the episode's mean loss), its standard error comes
    from the spread of the per-episode means, and the variance is per window.
    """
    window = getattr(estimator, "window", None)
    windows = 1 if window is None else system.horizon // window
    if window is not None and windows * window != system.horizon:
        raise ValueError(f"window {window} must divide the horizon {system.horizon}")
    S = num_samples(estimator)
    k_init, k_calls = jax.random.split(key)
    state = estimator.init(system, theta, k_init)
    fn = eqx.filter_jit(estimator.estimate)
    _timed(fn, system, theta, state, jax.random.fold_in(k_calls, 10**9))  # compile; discarded

    grads, variances, weights, seconds, cpu, dropped = [], [], [], [], [], 0
    comp = None
    for i in range(episodes * windows):
        (g, state, diag), (dt, dc) = _timed(
            fn, system, theta, state, jax.random.fold_in(k_calls, i)
        )
        seconds.append(dt)
        cpu.append(dc)
        grads.append(flat(g))
        diag = jax.device_get(diag)
        dropped += int(diag.num_dropped)
        if comp is None:
            comp = next(iter(diag.variance)) if len(diag.variance) == 1 else None
        if comp is not None:
            variances.append(float(diag.variance[comp]))
        if "rp" in diag.weight and "es" in diag.weight:
            weights.append(float(diag.weight["rp"]))

    grads = np.asarray(grads).reshape(episodes, windows, -1)
    per_episode = grads.mean(axis=1)  # [E, d]
    mean = per_episode.mean(axis=0)
    se = per_episode.std(axis=0, ddof=1) / np.sqrt(episodes)
    if comp is not None:
        variance = float(np.mean(variances))
    else:
        # Merged: per-sample equivalent of the spread of estimates at the same
        # window index (windows of an episode have different expectations).
        variance = float(S * np.mean(np.sum(grads.var(axis=0, ddof=1), axis=-1)))
    return Row(
        system=name,
        horizon=system.horizon,
        window=window,
        estimator=estimator_name(estimator),
        num_samples=S,
        calls=episodes * windows,
        mean=mean,
        se=se,
        reference=reference,
        variance=variance,
        weight_rp=float(np.mean(weights)) if weights else None,
        seconds=float(np.min(seconds)),
        cpu_seconds=float(np.median(cpu)),
        dropped=dropped,
    )


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """Per-sample reparameterization and ES estimates at one horizon (same pairs).

    ``rp``, ``es``: ``[N, d]`` over the kept pairs; ``weight_rp``: the mean
    over merged estimates of ``S`` pairs (groups of the ``N``) of
    `vograd.Merged`'s per-element weight on ``g_rp``.
    """

    horizon: int
    rp: np.ndarray
    es: np.ndarray
    weight_rp: float
    dropped: int

    def variance(self, name: str) -> float:
        """Returns the total variance per sample, ``sum_j Var_s[g_s[j]]``, of ``"rp"`` or ``"es"``."""
        x = {"rp": self.rp, "es": self.es}[name]
        return float(np.sum(x.var(axis=0, ddof=1)))

    def as_dict(self) -> dict:
        """Returns the point's summary as JSON-ready numbers."""
        return {"horizon": self.horizon, "variance_rp": self.variance("rp"),
                "variance_es": self.variance("es"), "weight_rp": self.weight_rp,
                "dropped": self.dropped, "num_pairs": len(self.rp)}

    def mean_and_se(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns the mean of component ``name`` and its standard error, per element."""
        x = {"rp": self.rp, "es": self.es}[name]
        return x.mean(axis=0), x.std(axis=0, ddof=1) / np.sqrt(len(x))

    def combined(self) -> Reference:
        """Returns the inverse-variance combination of the rp and es means.

        Both are unbiased for the smoothed gradient; with thousands of pairs
        the per-element weights are accurately known, so this is the lowest-
        variance unbiased reference these samples give.
        """
        m_rp, se_rp = self.mean_and_se("rp")
        m_es, se_es = self.mean_and_se("es")
        p_rp, p_es = 1.0 / (se_rp**2 + 1e-300), 1.0 / (se_es**2 + 1e-300)
        grad = (p_rp * m_rp + p_es * m_es) / (p_rp + p_es)
        return Reference(grad, 1.0 / np.sqrt(p_rp + p_es), "")


def _group_weights(rp: np.ndarray, es: np.ndarray, group: int) -> float:
    """Returns Merged's mean weight on g_rp over estimates of ``group`` pairs each,
    the ``[N, d]`` samples split into consecutive groups (the remainder unused)."""
    n = (rp.shape[0] // group) * group
    if n < group:
        return float("nan")

    def one(r, e):
        samples = Samples({"rp": r, "es": e}, jnp.zeros(group), jnp.ones(group, bool))
        return merged_estimate(samples, "per_element")[1].weight["rp"]

    r = jnp.asarray(rp[:n]).reshape(-1, group, rp.shape[1])
    e = jnp.asarray(es[:n]).reshape(-1, group, es.shape[1])
    return float(jnp.mean(jax.jit(jax.vmap(one))(r, e)))


def smoothed_sweep(
    system: vograd.UnrolledSystem,
    theta: Tree,
    sigma: float,
    horizons: list[int],
    num_pairs: int,
    group: int,
    key: jax.Array,
) -> list[SweepPoint]:
    """Returns per-sample g_rp and g_es of full episodes at each horizon in ``horizons``.

    ``system.horizon`` must be ``max(horizons)``. Uses ``Merged(window=horizon)``
    from fresh particles with the dynamic ``length`` = T, which equals a
    full episode of T steps when the system's ``init`` does not depend on
    theta (true of every toy: they start from fixed states); the check below
    enforces it.
    """
    if max(horizons) != system.horizon:
        raise ValueError(f"system.horizon ({system.horizon}) must equal max(horizons)")
    probe = jax.tree.map(lambda x: x + 0.123, theta)
    same = jax.tree.map(
        lambda a, b: bool(jnp.all(a == b)), system.init(theta, key), system.init(probe, key)
    )
    if not all(jax.tree.leaves(same)):
        raise ValueError("smoothed_sweep needs a system whose init does not depend on theta")
    est = vograd.Merged(num_pairs=num_pairs, sigma=sigma, window=system.horizon)
    state = est.init(system, theta, key)
    fn = eqx.filter_jit(est.per_sample)
    points = []
    for i, T in enumerate(horizons):
        samples, _ = fn(system, theta, state, jax.random.fold_in(key, i), length=jnp.asarray(T))
        keep = np.asarray(samples.keep)
        rp = flat_samples(samples.components["rp"])[keep]
        es = flat_samples(samples.components["es"])[keep]
        points.append(SweepPoint(T, rp, es, _group_weights(rp, es, group), int((~keep).sum())))
    return points
