"""The reparameterization (pathwise) gradient of the Gaussian-smoothed objective."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx

from vograd.estimators import components
from vograd.estimators.windowed import Draws, SmoothedEstimator


class Reparameterization(SmoothedEstimator):
    """Returns ``g_rp = mean_i grad L(theta + sigma n_i)``, backprop through the window.

    Unbiased for the gradient of the smoothed objective
    ``E_{n ~ N(0, I)}[L(theta + sigma n)]``. Antithetic (default): pair ``i``
    draws ``eps_i ~ N(0, sigma^2 I)`` and runs ``theta + eps_i`` and
    ``theta - eps_i`` on the same step keys (same data); its sample is
    ``(grad L+ + grad L-) / 2``. Without ``antithetic`` each of the
    ``num_pairs`` draws runs ``theta + eps_i`` alone.

    Fields: ``num_pairs``, ``sigma`` (`SmoothedEstimator`), ``antithetic``;
    ``window``, ``burn_in``, ``stagger`` (`WindowedEstimator`); ``chunk``,
    ``unroll``, ``mesh``, ``mesh_axis`` (`SampledEstimator`). In truncated
    mode a pair continues from its ``theta + eps`` branch's state.
    """

    antithetic: bool = eqx.field(static=True, default=True, kw_only=True)
    needs_grad: ClassVar[bool] = True

    @property
    def paired(self) -> bool:
        return self.antithetic

    def components(self, draws: Draws) -> dict:
        return {"rp": components.reparameterization(draws)}
