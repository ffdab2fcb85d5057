"""Influence balancing (Tallec and Ollivier 2017; PES paper, Vicol et al. 2021)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.system import UnrolledSystem


class InfluenceBalancing(UnrolledSystem):
    """``s <- A s + theta b`` in ``R^23`` from ``s0 = 1`` (all ones), step loss
    ``0.5 (s[0] - 1)^2`` after the update.

    ``A = 0.5 I + 0.5 * superdiagonal``, ``b = (+1 x 10, -1 x 13)``; theta is a
    scalar, ``theta0 = 0.5``; 500-step episodes. Theta's influence on ``s[0]``
    is positive in the short term (``b[0] = +1``) and negative in the long term
    (the ``-1`` entries travel up the superdiagonal), so truncated backprop
    with short windows gets the sign of the gradient wrong while PES does not.
    The state is affine in theta: every window loss is quadratic in theta and
    `true_grad` (= the smoothed gradient) is exact.
    """

    horizon: int = eqx.field(static=True, default=500)
    dim: int = eqx.field(static=True, default=23)
    num_positive: int = eqx.field(static=True, default=10)
    theta0: float = eqx.field(static=True, default=0.5)

    def matrices(self, dtype=jnp.float32):
        """Returns ``(A, b)``."""
        A = 0.5 * jnp.eye(self.dim, dtype=dtype) + 0.5 * jnp.eye(self.dim, k=1, dtype=dtype)
        b = jnp.where(jnp.arange(self.dim) < self.num_positive, 1.0, -1.0).astype(dtype)
        return A, b

    def init_theta(self, key: PRNGKeyArray) -> Float[Array, ""]:
        """Returns ``theta0``."""
        del key
        return jnp.asarray(self.theta0, jnp.result_type(float))

    def init(self, theta, key):
        """Returns ``s0 = 1`` (all ones)."""
        del key
        return jnp.ones(self.dim, jnp.result_type(theta))

    def step(self, theta, s, key):
        """Returns ``A s + theta b`` and ``0.5 (s[0] - 1)^2`` there."""
        del key
        A, b = self.matrices(s.dtype)
        s = A @ s + theta * b
        return s, 0.5 * (s[0] - 1.0) ** 2

    def _paths(self, start, num_steps):
        # s_j = A^j start + (sum_{k<j} A^k b) theta =: v_j + m_j theta.
        A, b = (np.asarray(x, np.float64) for x in self.matrices())
        v = np.ones(self.dim) if start is None else np.asarray(start, np.float64)
        m = np.zeros(self.dim)
        out = []
        for _ in range(num_steps):
            v, m = A @ v, A @ m + b
            out.append((v[0], m[0]))
        return np.array(out)

    def window_loss(self, theta: float, start=None, num_steps=None) -> float:
        """Returns the mean loss of ``num_steps`` (default: horizon) steps from ``start``
        (default ``s0``) under theta."""
        p = self._paths(start, num_steps or self.horizon)
        return float(np.mean(0.5 * (p[:, 0] + p[:, 1] * theta - 1.0) ** 2))

    def window_grad(self, theta: float, start=None, num_steps=None) -> float:
        """Returns ``d/dtheta`` of `window_loss` with the start state held fixed."""
        p = self._paths(start, num_steps or self.horizon)
        return float(np.mean((p[:, 0] + p[:, 1] * theta - 1.0) * p[:, 1]))

    def true_loss(self, theta: float) -> float:
        """Returns the full-episode loss from ``s0``."""
        return self.window_loss(theta)

    def true_grad(self, theta: float) -> float:
        """Returns the full-episode gradient (equal to the smoothed one: quadratic)."""
        return self.window_grad(theta)

    def state_at(self, theta: float, t: int) -> np.ndarray:
        """Returns ``s_t`` of an episode run under theta from ``s0``."""
        A, b = (np.asarray(x, np.float64) for x in self.matrices())
        s = np.ones(self.dim)
        for _ in range(t):
            s = A @ s + theta * b
        return s

    def truncated_grad(self, theta: float, window: int) -> float:
        """Returns the mean over an episode's windows of the truncated-backprop
        gradient (each window's start state held fixed), for ``window | horizon``."""
        starts = range(0, self.horizon, window)
        return float(
            np.mean([self.window_grad(theta, self.state_at(theta, t), window) for t in starts])
        )
