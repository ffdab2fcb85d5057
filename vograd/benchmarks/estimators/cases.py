"""The toy systems of the estimator benchmark, their settings and reference gradients.

Each `Case` fixes a system family (built at any horizon), the outer
parameters theta where gradients are measured, the smoothing scale sigma and
how the true gradient ``g*`` of the smoothed objective ``E[L(theta + sigma n)]``
is obtained:

- QuadraticLearningRate: closed form (Gauss-Hermite quadrature, exact for
  the polynomial ``L``);
- LinearQuadratic, InfluenceBalancing: closed form (window losses are
  quadratic in theta, so smoothing leaves the gradient unchanged);
- Momentum1D: 1-D quadrature of Stein's identity
  ``g* = E[L(theta + sigma n) n] / sigma`` on a dense grid of full episodes,
  run in the same benchmark; its error bound is the change against the grid
  with every other node;
- Lorenz: no closed form and 2-D theta: a high-sample Monte Carlo reference
  computed in the same run (`estimator_quality.SweepPoint.combined`), with
  its standard error.

Everything runs in float64 (`jax.enable_x64`): the reparameterization
variances of the exploding systems reach 1e60 and more, beyond float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import vograd
from vograd.benchmarks.estimators.quality import Reference
from vograd.tasks.toys import InfluenceBalancing, LinearQuadratic, Lorenz, Momentum1D, QuadraticLearningRate

Tree = Any

QLR_A = (0.5, 1.0, 4.2)  # |1 - theta a| = 1.1 > 1 at theta = 0.5: the gradient explodes with T
LQ_KEY = 0  # the LinearQuadratic instance: LinearQuadratic.random(key(0), ...)


@dataclasses.dataclass(frozen=True)
class Case:
    """A toy system family at a fixed theta and sigma.

    ``make(T)`` builds the system with horizon ``T``; ``theta()`` the outer
    parameters (called inside the float64 context); ``closed_form(system,
    theta, sigma)`` returns ``g*`` when one is known (None: see the module
    doc); ``setting`` describes the instance for the report.
    """

    name: str
    make: Callable[[int], vograd.UnrolledSystem]
    theta: Callable[[], Tree]
    sigma: float
    setting: str
    closed_form: Callable[[Any, Tree, float], np.ndarray] | None = None
    method: str = "closed form"


def _qlr(T: int) -> QuadraticLearningRate:
    return QuadraticLearningRate(horizon=T, a=list(QLR_A), w0=[1.0, 1.0, 1.0])


def _lq(T: int) -> LinearQuadratic:
    return LinearQuadratic.random(jax.random.key(LQ_KEY), horizon=T, noise=0.1)


CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case(
            "QuadraticLearningRate",
            _qlr,
            lambda: jnp.asarray(0.5),
            0.03,
            "a = (0.5, 1, 4.2), w0 = 1, theta = 0.5 (|1 - theta a_3| = 1.1), sigma = 0.03",
            lambda s, th, sig: np.array([s.smoothed_grad(float(th), sig)]),
            "closed form (exact Gauss-Hermite quadrature of the polynomial L)",
        ),
        Case(
            "Momentum1D",
            lambda T: Momentum1D(horizon=T),
            lambda: jnp.asarray(0.8),
            0.03,
            "l(w) = (w-4)(w-3)w^2, w0 = -1.2, lr 0.01, momentum theta = 0.8 "
            "(basin change at ~0.81), sigma = 0.03",
            None,
            "quadrature of E[L(theta + sigma n) n] / sigma over full episodes on a dense "
            "grid (same run); se column of the reference: change against half the nodes",
        ),
        Case(
            "InfluenceBalancing",
            lambda T: InfluenceBalancing(horizon=T),
            lambda: jnp.asarray(0.5),
            0.1,
            "s in R^23, s <- A s + theta b, loss 0.5 (s0 - 1)^2, theta = 0.5, sigma = 0.1",
            lambda s, th, sig: np.array([s.true_grad(float(th))]),
            "closed form (loss quadratic in theta: smoothed gradient = plain gradient)",
        ),
        Case(
            "LinearQuadratic",
            _lq,
            lambda: jnp.asarray([0.3, -0.5, 0.2]),
            0.1,
            "LinearQuadratic.random(key(0)): 4-d state, 3 params, radius 0.9, noise 0.1; "
            "theta = (0.3, -0.5, 0.2), sigma = 0.1",
            lambda s, th, sig: np.asarray(s.smoothed_grad(np.asarray(th), sig), np.float64),
            "closed form (loss quadratic in theta: smoothed gradient = plain gradient)",
        ),
        Case(
            "Lorenz",
            lambda T: Lorenz(horizon=T),
            lambda: jnp.asarray([3.116, 3.7]),
            0.01,
            "Euler dt = 0.005, theta = (log a, log r) = (3.116, 3.7), sigma = 0.01",
            None,
            "Monte Carlo in the same run: inverse-variance combination of the rp and es "
            "means over {pairs} antithetic pairs (independent keys), with its standard error",
        ),
    )
}


def momentum_references(
    case: Case, horizons: list[int], num_nodes: int
) -> dict[int, Reference]:
    """Returns ``g*`` of Momentum1D at each horizon by 1-D quadrature (see module doc).

    Nodes ``x`` span ``[-6, 6]`` (the mass beyond is ~2e-9; momentum stays
    below 1 there); trapezoid rule on ``L(theta + sigma x) x phi(x)``, where
    each ``L`` is a full episode's mean loss. All horizons share one pass.
    """
    system = case.make(max(horizons))
    theta, sigma = float(case.theta()), case.sigma
    x = np.linspace(-6.0, 6.0, num_nodes)
    thetas = jnp.asarray(theta + sigma * x)
    H = jnp.asarray(horizons)

    @jax.jit
    def mean_losses(thetas):
        state = jax.vmap(lambda th: system.init(th, None))(thetas)
        acc = jnp.zeros((len(horizons), thetas.shape[0]), thetas.dtype)

        def body(carry, t):
            state, acc = carry
            state, loss = jax.vmap(lambda th, s: system.step(th, s, None))(thetas, state)
            return (state, acc + jnp.where((t < H)[:, None], loss[None], 0.0)), None

        (_, acc), _ = jax.lax.scan(body, (state, acc), jnp.arange(max(horizons)))
        return acc / H[:, None]

    losses = np.asarray(mean_losses(thetas), np.float64)
    if not np.all(np.isfinite(losses)):
        raise ValueError("Momentum1D quadrature: non-finite episode losses on the grid")

    def stein(xs, f):
        return np.trapezoid(f * xs * np.exp(-0.5 * xs**2) / np.sqrt(2 * np.pi), xs) / sigma

    out = {}
    for i, T in enumerate(horizons):
        full, half = stein(x, losses[i]), stein(x[::2], losses[i, ::2])
        out[T] = Reference(np.array([full]), np.array([abs(full - half)]), case.method)
    return out


def closed_form_reference(case: Case, system, theta) -> Reference:
    """Returns the closed-form ``g*`` of ``case`` at ``system``'s horizon."""
    if case.closed_form is None:
        raise ValueError(f"{case.name} has no closed-form gradient")
    g = np.atleast_1d(np.asarray(case.closed_form(system, theta, case.sigma), np.float64))
    return Reference(g, np.zeros_like(g), case.method)


def influence_truncated_grad(system: InfluenceBalancing, theta: float, window: int) -> float:
    """Returns the expected truncated-backprop gradient of InfluenceBalancing.

    The mean over an episode's windows of the gradient with each window's
    start state held fixed, in closed form: with ``s_t = v_t + m_t theta``
    from ``s_0`` and ``m_j`` the influence of theta after ``j`` steps from a
    fixed start, window step ``j`` contributes ``(s_t[0] - 1) m_j[0]``.
    Same value as `InfluenceBalancing.truncated_grad`, in O(T) instead of O(T^2).
    """
    V, M = influence_loss_coefficients(system)
    j = np.arange(system.horizon) % window
    return float(np.mean((V + M * theta - 1.0) * M[j]))


def influence_loss_coefficients(system: InfluenceBalancing) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(v, m)`` with ``s_t[0] = v_t + m_t theta`` over a full episode, so
    ``L(theta) = mean_t 0.5 (v_t + m_t theta - 1)^2`` for any array of thetas."""
    A, b = (np.asarray(x, np.float64) for x in system.matrices())
    v, m = np.ones(system.dim), np.zeros(system.dim)
    V, M = [], []
    for _ in range(system.horizon):
        v, m = A @ v, A @ m + b
        V.append(v[0])
        M.append(m[0])
    return np.array(V), np.array(M)


def influence_optimum(system: InfluenceBalancing) -> float:
    """Returns the theta minimizing the full-episode loss (a 1-D least squares)."""
    v, m = influence_loss_coefficients(system)
    return float(np.sum((1.0 - v) * m) / np.sum(m * m))
