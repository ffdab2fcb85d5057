"""A linear system with a quadratic loss: every window loss is quadratic in theta."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.system import UnrolledSystem


class LinearQuadratic(UnrolledSystem):
    """``s <- A s + B theta + c + noise * z_t``, step loss ``0.5 ||s - target||^2``.

    ``z_t ~ N(0, I)`` is drawn from the step key, so antithetic branches share
    it. The state is affine in theta, so every window loss is quadratic in
    theta: the Gaussian-smoothed objective has the same gradient as the plain
    one, and both are known in closed form (`window_grad`). The noise has mean
    zero and enters linearly, so it leaves the expected gradient unchanged.
    Build a random instance with `LinearQuadratic.random`.
    """

    horizon: int = eqx.field(static=True)
    A: Float[Array, "d d"]
    B: Float[Array, "d p"]
    c: Float[Array, " d"]
    target: Float[Array, " d"]
    s0: Float[Array, " d"]
    noise: float = eqx.field(static=True, default=0.0)

    @classmethod
    def random(
        cls, key: PRNGKeyArray, dim: int = 4, num_params: int = 3, horizon: int = 10,
        noise: float = 0.0, radius: float = 0.9,
    ) -> "LinearQuadratic":
        """Returns an instance with a random stable ``A`` (spectral norm ``radius``)."""
        ka, kb, kc, kt, ks = jax.random.split(key, 5)
        q, _ = jnp.linalg.qr(jax.random.normal(ka, (dim, dim)))
        return cls(
            A=radius * q,
            B=jax.random.normal(kb, (dim, num_params)) / jnp.sqrt(num_params),
            c=0.1 * jax.random.normal(kc, (dim,)),
            target=jax.random.normal(kt, (dim,)),
            s0=jax.random.normal(ks, (dim,)),
            horizon=horizon,
            noise=noise,
        )

    def init_theta(self, key: PRNGKeyArray) -> Float[Array, " p"]:
        """Returns zeros."""
        del key
        return jnp.zeros(self.B.shape[1], self.B.dtype)

    def init(self, theta, key):
        """Returns ``s0``."""
        del theta, key
        return jnp.asarray(self.s0)

    def step(self, theta, s, key):
        """Returns the next state and its loss ``0.5 ||s - target||^2``."""
        z = jax.random.normal(key, s.shape, s.dtype)
        s = self.A @ s + self.B @ theta + self.c + self.noise * z
        return s, 0.5 * jnp.sum((s - self.target) ** 2)

    def _affine(self, start, num_steps):
        # The expected state after t steps is M_t theta + v_t.
        A, B = np.asarray(self.A, np.float64), np.asarray(self.B, np.float64)
        c = np.asarray(self.c, np.float64)
        M, v = np.zeros_like(B), np.asarray(self.s0 if start is None else start, np.float64)
        out = []
        for _ in range(num_steps):
            M, v = A @ M + B, A @ v + c
            out.append((M, v))
        return out

    def window_loss(self, theta, start=None, num_steps=None) -> float:
        """Returns the expected mean loss of ``num_steps`` (default: horizon) steps from
        state ``start`` (default ``s0``), noise included."""
        theta = np.asarray(theta, np.float64)
        steps = self._affine(start, num_steps or self.horizon)
        A = np.asarray(self.A, np.float64)
        cov, total = np.zeros_like(A), 0.0
        target = np.asarray(self.target, np.float64)
        for M, v in steps:
            cov = A @ cov @ A.T + self.noise**2 * np.eye(len(A))
            total += 0.5 * np.sum((M @ theta + v - target) ** 2) + 0.5 * np.trace(cov)
        return total / len(steps)

    def window_grad(self, theta, start=None, num_steps=None) -> np.ndarray:
        """Returns ``d/dtheta`` of `window_loss` (the start state held fixed):
        ``(1/n) sum_t M_t^T (M_t theta + v_t - target)``."""
        theta = np.asarray(theta, np.float64)
        steps = self._affine(start, num_steps or self.horizon)
        target = np.asarray(self.target, np.float64)
        return sum(M.T @ (M @ theta + v - target) for M, v in steps) / len(steps)

    def smoothed_grad(self, theta, sigma: float, start=None, num_steps=None) -> np.ndarray:
        """Returns the gradient of ``E[L(theta + sigma n)]``: equal to `window_grad`
        because the loss is quadratic in theta."""
        del sigma
        return self.window_grad(theta, start, num_steps)

    def smoothed_loss(self, theta, sigma: float, start=None, num_steps=None) -> float:
        """Returns ``E[L(theta + sigma n)] = L(theta) + 0.5 sigma^2 (1/n) sum_t ||M_t||_F^2``."""
        steps = self._affine(start, num_steps or self.horizon)
        extra = 0.5 * sigma**2 * sum(np.sum(M**2) for M, _ in steps) / len(steps)
        return self.window_loss(theta, start, num_steps) + extra
