"""Learning a learning rate on a quadratic (Metz et al. 2019, Sec. 2.3 / App. A)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.system import UnrolledSystem


class QuadraticLearningRate(UnrolledSystem):
    """Gradient descent with learning rate ``theta`` on ``l(w) = 0.5 sum_i a_i w_i^2``.

    ``w <- w - theta a w`` from ``w0``; step ``t`` returns ``l(w_t)`` after its
    update, so a full episode's outer loss is

        ``L(theta) = (1/T) sum_{t=1..T} 0.5 sum_i a_i (1 - theta a_i)^(2t) w0_i^2``.

    Its derivative is a polynomial of degree ``2T - 1`` that explodes with T
    once ``|1 - theta a_i| > 1`` for some ``i``. Theta is a scalar. Build it
    as ``QuadraticLearningRate(horizon=T, a=..., w0=...)``. The closed
    forms (`true_loss`, `true_grad`, `smoothed_grad`, ...) are numpy float64
    and describe a full episode from ``w0``.
    """

    horizon: int = eqx.field(static=True)
    a: Float[Array, " d"] = eqx.field(converter=jnp.asarray)
    w0: Float[Array, " d"] = eqx.field(converter=jnp.asarray)
    theta0: float = eqx.field(static=True, default=0.1)

    def __check_init__(self):
        if jnp.ndim(self.a) != 1 or jnp.shape(self.a) != jnp.shape(self.w0):
            raise ValueError("a and w0 must be 1-d arrays of the same length")

    def init_theta(self, key: PRNGKeyArray) -> Float[Array, ""]:
        """Returns the initial learning rate ``theta0``."""
        del key
        return jnp.asarray(self.theta0, jnp.result_type(float))

    def init(self, theta, key):
        """Returns ``w0`` (the episode is deterministic)."""
        del theta, key
        return jnp.asarray(self.w0)

    def step(self, theta, w, key):
        """Returns ``w - theta a w`` and its loss ``0.5 sum a w^2``."""
        del key
        w = w - theta * self.a * w
        return w, 0.5 * jnp.sum(self.a * w**2)

    def _coeffs(self):
        a = np.asarray(self.a, np.float64)
        c = 0.5 * a * np.asarray(self.w0, np.float64) ** 2
        t = np.arange(1, self.horizon + 1)[:, None]
        return a, c, t

    def true_loss(self, theta: float) -> float:
        """Returns ``L(theta)`` of a full episode, in closed form."""
        a, c, t = self._coeffs()
        return float(np.sum(c * (1 - theta * a) ** (2 * t)) / self.horizon)

    def true_grad(self, theta: float) -> float:
        """Returns ``dL/dtheta = -(1/T) sum_t sum_i 2t a_i c_i (1 - theta a_i)^(2t-1)``."""
        a, c, t = self._coeffs()
        return float(-np.sum(2 * t * a * c * (1 - theta * a) ** (2 * t - 1)) / self.horizon)

    def _gauss(self, f, theta: float, sigma: float) -> float:
        # L is a polynomial of degree 2T: Gauss-Hermite with T + 1 nodes is exact.
        x, w = np.polynomial.hermite_e.hermegauss(self.horizon + 1)
        vals = np.array([f(theta + sigma * xi) for xi in x])
        return float(np.sum(w * vals) / np.sqrt(2 * np.pi))

    def smoothed_loss(self, theta: float, sigma: float) -> float:
        """Returns ``E_{n ~ N(0,1)}[L(theta + sigma n)]`` (exact quadrature)."""
        return self._gauss(self.true_loss, theta, sigma)

    def smoothed_grad(self, theta: float, sigma: float) -> float:
        """Returns ``d/dtheta E[L(theta + sigma n)] = E[L'(theta + sigma n)]`` (exact quadrature)."""
        return self._gauss(self.true_grad, theta, sigma)


def grad_norms(system: QuadraticLearningRate, theta: float, horizons) -> list[float]:
    """Returns ``|dL/dtheta|`` of full episodes for each horizon in ``horizons``
    (it grows geometrically with T when some ``|1 - theta a_i| > 1``)."""
    return [
        abs(QuadraticLearningRate(int(h), system.a, system.w0, system.theta0).true_grad(theta))
        for h in horizons
    ]
