"""Antithetic evolution strategies: the score-function gradient of the smoothed objective."""

from __future__ import annotations

from typing import ClassVar

from vograd.estimators import components
from vograd.estimators.windowed import Draws, SmoothedEstimator


class EvolutionStrategies(SmoothedEstimator):
    """Returns ``g_es = mean_i (L(theta + eps_i) - L(theta - eps_i)) eps_i / (2 sigma^2)``.

    ``eps_i ~ N(0, sigma^2 I)``; both branches of a pair run on the same step
    keys. Unbiased for the gradient of ``E[L(theta + sigma n)]``; needs only
    forward passes, so it survives chaotic or non-differentiable windows where
    the reparameterization gradient explodes.

    Fields as `Reparameterization` (always antithetic). In truncated mode a
    pair continues from its ``theta + eps`` branch's state.
    """

    paired: ClassVar[bool] = True
    needs_grad: ClassVar[bool] = False

    def components(self, draws: Draws) -> dict:
        return {"es": components.evolution_strategies(draws, self.sigma)}
