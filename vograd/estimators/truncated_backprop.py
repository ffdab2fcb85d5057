"""Plain truncated backpropagation through time: the biased baseline."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx

from vograd.estimators import components, config
from vograd.estimators.windowed import Draws, WindowedEstimator


class TruncatedBackprop(WindowedEstimator):
    """Returns ``mean_i grad_theta L_window_i(theta)``: no smoothing, no perturbation.

    Each of ``num_particles`` particles runs the window under ``theta`` on its
    own data and is differentiated within the window only (the dependence of
    the starting state on theta is cut), which biases the estimate towards
    short-horizon effects. ``window=None``: full episodes (`FullBackprop`).
    Other fields as `Reparameterization`; the component is named ``"tbptt"``.
    """

    num_particles: int = eqx.field(static=True, default=8)

    paired: ClassVar[bool] = False
    needs_grad: ClassVar[bool] = True

    def __check_init__(self):
        config.check_count("num_particles", self.num_particles, 1)

    @property
    def num_draws(self) -> int:
        return self.num_particles

    def components(self, draws: Draws) -> dict:
        return {"tbptt": components.backprop(draws)}
