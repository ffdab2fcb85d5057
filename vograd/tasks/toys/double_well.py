"""SGD with a learned momentum on a tilted 1-D double well: a jump in the outer loss.

Not one of the papers' toys: a closed-form test bed for the merge's
near-discontinuity detection. With the defaults, the mean loss of a
100-step episode is smooth in the momentum theta except for a drop of
about 0.45 at theta ~ 0.589, where the iterate first overshoots the barrier
into the deeper basin; at ``theta0 = 0.49`` (two smoothing scales below the
jump for sigma = 0.05) the smoothed gradient is dominated by that jump,
which the reparameterization gradient cannot see.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.system import UnrolledSystem


class DoubleWell(UnrolledSystem):
    """``v <- theta v + l'(w)``, ``w <- w - lr v`` from ``(w0, 0)`` on ``l(w) = (w^2 - 1)^2 + c w``.

    Theta is the scalar momentum; the tilt ``c > 0`` makes the left minimum
    (``w ~ -1``) deeper than the right one (``w ~ 1``) where the iterate
    starts. Step loss: ``l(w)`` after the update; with ``terminal=True``
    only the last step of the episode counts: its loss is ``horizon * l(w_T)``
    and every other step's is 0, so the episode's mean loss is ``l(w_T)``
    (the step index is not passed to ``step``: the state carries it).
    Deterministic (keys unused).
    """

    horizon: int = eqx.field(static=True, default=100)
    lr: float = eqx.field(static=True, default=0.05)
    tilt: float = eqx.field(static=True, default=0.3)
    w0: float = eqx.field(static=True, default=1.8)
    theta0: float = eqx.field(static=True, default=0.49)
    terminal: bool = eqx.field(static=True, default=False)

    def init_theta(self, key: PRNGKeyArray) -> Float[Array, ""]:
        """Returns ``theta0``."""
        del key
        return jnp.asarray(self.theta0, jnp.result_type(float))

    def init(self, theta, key):
        """Returns ``(w0, v = 0, t = 0)``."""
        del key
        dtype = jnp.result_type(theta)
        return jnp.asarray(self.w0, dtype), jnp.zeros((), dtype), jnp.zeros((), jnp.int32)

    def step(self, theta, state, key):
        """Returns the state after one momentum step and ``l(w)`` there."""
        del key
        w, v, t = state
        v = theta * v + 4.0 * w * (w * w - 1.0) + self.tilt
        w = w - self.lr * v
        loss = (w * w - 1.0) ** 2 + self.tilt * w
        if self.terminal:  # counts only at the episode's last step
            loss = jnp.where(t == self.horizon - 1, self.horizon * loss, 0.0)
        return (w, v, t + 1), loss

    def episode_loss(self, thetas: Float[Array, " N"]) -> Float[Array, " N"]:
        """Returns the mean loss of a full episode for each momentum in ``thetas``."""

        def one(theta):
            def body(s, _):
                return self.step(theta, s, None)

            _, losses = jax.lax.scan(body, self.init(theta, None), None, length=self.horizon)
            return jnp.mean(losses)

        return jax.vmap(one)(thetas)

    def smoothed_grad(self, theta: float, sigma: float, nodes: int = 40001) -> float:
        """Returns ``d/dtheta E[L(theta + sigma n)]`` by Stein's identity
        ``E[L(theta + sigma n) n] / sigma``, a trapezoid rule on ``n in [-8, 8]``
        (``nodes`` points; run under ``jax.enable_x64`` for float64)."""
        n = np.linspace(-8.0, 8.0, nodes)
        w = np.exp(-0.5 * n**2) / np.sqrt(2.0 * np.pi) * (n[1] - n[0])
        losses = np.asarray(self.episode_loss(jnp.asarray(theta + sigma * n)), np.float64)
        return float(np.sum(w * losses * n) / sigma)
