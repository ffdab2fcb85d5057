"""The reparameterization (pathwise) gradient of the Gaussian-smoothed objective."""

from __future__ import annotations

import equinox as eqx
from jax.sharding import Mesh

from vograd.estimators import components, config
from vograd.estimators.windowed import Draws, WindowedEstimator


class Reparameterization(WindowedEstimator):
    """Returns ``g_rp = mean_i grad L(theta + sigma n_i)``, backprop through the window.

    Unbiased for the gradient of the smoothed objective
    ``E_{n ~ N(0, I)}[L(theta + sigma n)]``. Antithetic (default): pair ``i``
    draws ``eps_i ~ N(0, sigma^2 I)`` and runs ``theta + eps_i`` and
    ``theta - eps_i`` on the same step keys (same data); its sample is
    ``(grad L+ + grad L-) / 2``. Without ``antithetic`` each of the
    ``num_pairs`` draws runs ``theta + eps_i`` alone.

    Fields: ``num_pairs`` samples (>= 1); ``sigma`` > 0; ``window`` compiled
    steps per estimate (None: full episodes, fresh each estimate); ``chunk``
    steps per ``jax.checkpoint`` chunk (must divide the window); ``unroll``
    of the inner scan; ``burn_in`` steps re-run under the current theta
    before each window; ``stagger`` initial episode offsets; ``mesh`` /
    ``mesh_axis`` shard the population. In truncated mode a pair continues
    from its ``theta + eps`` branch's state.
    """

    num_pairs: int = eqx.field(static=True, default=8)
    sigma: float = eqx.field(static=True, default=0.01)
    window: int | None = eqx.field(static=True, default=None)
    antithetic: bool = eqx.field(static=True, default=True)
    chunk: int | None = eqx.field(static=True, default=None)
    unroll: int | bool = eqx.field(static=True, default=1)
    burn_in: int = eqx.field(static=True, default=0)
    stagger: bool = eqx.field(static=True, default=False)
    mesh: Mesh | None = eqx.field(static=True, default=None)
    mesh_axis: str = eqx.field(static=True, default="population")

    def __check_init__(self):
        config.check_count("num_pairs", self.num_pairs, 1)
        config.check_sigma(self.sigma)
        self.check_common()

    @property
    def num_draws(self) -> int:
        return self.num_pairs

    @property
    def noise_scale(self) -> float:
        return self.sigma

    @property
    def paired(self) -> bool:
        return self.antithetic

    @property
    def needs_grad(self) -> bool:
        return True

    def components(self, draws: Draws) -> dict:
        return {"rp": components.reparameterization(draws)}
