"""SGD with a learned momentum on a 1-D loss with two minima (Metz et al. 2019, Fig. 2)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.system import UnrolledSystem

LOCAL_MINIMUM = 0.0
GLOBAL_MINIMUM = (21.0 + 57.0**0.5) / 8.0  # ~3.569, a root of l'(w) = w (4w^2 - 21w + 24)


def inner_loss(w: Float[Array, "..."]) -> Float[Array, "..."]:
    """Returns ``l(w) = (w - 4)(w - 3) w^2``: minima at 0 (local) and ~3.569 (global)."""
    return (w - 4.0) * (w - 3.0) * w**2


def inner_grad(w: Float[Array, "..."]) -> Float[Array, "..."]:
    """Returns ``l'(w) = 4 w^3 - 21 w^2 + 24 w``."""
    return 4.0 * w**3 - 21.0 * w**2 + 24.0 * w


class Momentum1D(UnrolledSystem):
    """``v <- theta v + l'(w)``, ``w <- w - lr v`` from ``w0 = -1.2``, ``v0 = 0``.

    Theta is the (scalar) momentum. The learning rate is fixed at
    ``lr = 0.01`` (our choice; the paper does not give one): then momentum
    below ~0.8 settles in the local minimum ``w = 0``, ~0.81-0.9 reaches the
    global minimum ~3.57, and larger values oscillate between the two basins
    before settling, so the final loss as a function of theta develops
    near-discontinuities as the horizon grows (`final_loss`). Step loss:
    ``l(w)`` after the update.
    """

    horizon: int = eqx.field(static=True, default=100)
    lr: float = eqx.field(static=True, default=0.01)
    w0: float = eqx.field(static=True, default=-1.2)
    theta0: float = eqx.field(static=True, default=0.5)

    def init_theta(self, key: PRNGKeyArray) -> Float[Array, ""]:
        """Returns ``theta0``."""
        del key
        return jnp.asarray(self.theta0, jnp.result_type(float))

    def init(self, theta, key):
        """Returns ``(w0, v = 0)``."""
        del key
        dtype = jnp.result_type(theta)
        return jnp.asarray(self.w0, dtype), jnp.zeros((), dtype)

    def step(self, theta, state, key):
        """Returns the state after one momentum step and ``l(w)`` there."""
        del key
        w, v = state
        v = theta * v + inner_grad(w)
        w = w - self.lr * v
        return (w, v), inner_loss(w)


def final_w(system: Momentum1D, theta: Float[Array, ""]) -> Float[Array, ""]:
    """Returns ``w_T`` after a full episode with momentum ``theta``."""
    state = system.init(theta, None)
    state = jax.lax.fori_loop(0, system.horizon, lambda i, s: system.step(theta, s, None)[0], state)
    return state[0]


def final_loss(system: Momentum1D, theta: Float[Array, ""]) -> Float[Array, ""]:
    """Returns ``l(w_T)``, the quantity plotted against momentum in Metz et al. Fig. 2c."""
    return inner_loss(final_w(system, theta))
