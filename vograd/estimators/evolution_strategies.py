"""Antithetic evolution strategies: the score-function gradient of the smoothed objective."""

from __future__ import annotations

import equinox as eqx
from jax.sharding import Mesh

from vograd.estimators import components, config
from vograd.estimators.windowed import Draws, WindowedEstimator


class EvolutionStrategies(WindowedEstimator):
    """Returns ``g_es = mean_i (L(theta + eps_i) - L(theta - eps_i)) eps_i / (2 sigma^2)``.

    ``eps_i ~ N(0, sigma^2 I)``; both branches of a pair run on the same step
    keys. Unbiased for the gradient of ``E[L(theta + sigma n)]``; needs only
    forward passes, so it survives chaotic or non-differentiable windows where
    the reparameterization gradient explodes.

    Fields as `Reparameterization` (always antithetic). In truncated mode a
    pair continues from its ``theta + eps`` branch's state.
    """

    num_pairs: int = eqx.field(static=True, default=8)
    sigma: float = eqx.field(static=True, default=0.01)
    window: int | None = eqx.field(static=True, default=None)
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
        return True

    @property
    def needs_grad(self) -> bool:
        return False

    def components(self, draws: Draws) -> dict:
        return {"es": components.evolution_strategies(draws, self.sigma)}
