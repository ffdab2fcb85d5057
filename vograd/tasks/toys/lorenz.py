"""Learning the parameters of the (chaotic) Lorenz system (NRES paper, Li et al. 2023)."""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.system import UnrolledSystem

TRUE_PARAMS = (10.0, 28.0, 8.0 / 3.0)  # (a, r, b)


def lorenz_step(xyz: Float[Array, "3"], a, r, b, dt: float) -> Float[Array, "3"]:
    """Returns one explicit Euler step of ``x' = a (y - x)``, ``y' = x (r - z) - y``,
    ``z' = x y - b z``."""
    x, y, z = xyz[0], xyz[1], xyz[2]
    return xyz + dt * jnp.stack([a * (y - x), x * (r - z) - y, x * y - b * z])


class Lorenz(UnrolledSystem):
    """Fit ``theta = (log a, log r)`` of a Lorenz system to the true trajectory.

    Both the model (``theta``, ``b = 8/3`` fixed) and the reference (true
    ``(a, r, b) = (10, 28, 8/3)``) start from ``s0`` and take Euler steps of
    ``dt = 0.005``; the step loss is ``(z - z_true)^2``. 2000-step episodes
    (10 time units), ``theta0 = (3.116, 3.7)``. The reference trajectory is
    stepped inside the state, so windows need no precomputed data. ``s0`` is
    our choice (the papers' is not known to us): ``(1, 1, 1)``. The loss is
    zero at `true_theta`; backprop through long windows explodes (chaos).
    """

    horizon: int = eqx.field(static=True, default=2000)
    dt: float = eqx.field(static=True, default=0.005)
    theta0: tuple[float, float] = eqx.field(static=True, default=(3.116, 3.7))
    s0: tuple[float, float, float] = eqx.field(static=True, default=(1.0, 1.0, 1.0))

    def init_theta(self, key: PRNGKeyArray) -> Float[Array, "2"]:
        """Returns ``theta0 = (log a, log r)``."""
        del key
        return jnp.asarray(self.theta0, jnp.result_type(float))

    def init(self, theta, key):
        """Returns ``(s0, s0)``: the model and the reference state."""
        del key
        s = jnp.asarray(self.s0, jnp.result_type(theta))
        return s, s

    def step(self, theta, state, key):
        """Returns both states after one Euler step and ``(z - z_true)^2``."""
        del key
        s, ref = state
        a, r = jnp.exp(theta[0]), jnp.exp(theta[1])
        s = lorenz_step(s, a, r, TRUE_PARAMS[2], self.dt)
        ref = lorenz_step(ref, *TRUE_PARAMS, self.dt)
        return (s, ref), (s[2] - ref[2]) ** 2


def true_theta() -> tuple[float, float]:
    """Returns ``(log 10, log 28)``, where the loss is zero."""
    return math.log(TRUE_PARAMS[0]), math.log(TRUE_PARAMS[1])
