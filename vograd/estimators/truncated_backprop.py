"""Plain truncated backpropagation through time: the biased baseline."""

from __future__ import annotations

import equinox as eqx
from jax.sharding import Mesh

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
    window: int | None = eqx.field(static=True, default=None)
    chunk: int | None = eqx.field(static=True, default=None)
    unroll: int | bool = eqx.field(static=True, default=1)
    burn_in: int = eqx.field(static=True, default=0)
    stagger: bool = eqx.field(static=True, default=False)
    mesh: Mesh | None = eqx.field(static=True, default=None)
    mesh_axis: str = eqx.field(static=True, default="population")

    def __check_init__(self):
        config.check_count("num_particles", self.num_particles, 1)
        self.check_common()

    @property
    def num_draws(self) -> int:
        return self.num_particles

    @property
    def noise_scale(self) -> float:
        return 0.0

    @property
    def paired(self) -> bool:
        return False

    @property
    def needs_grad(self) -> bool:
        return True

    def components(self, draws: Draws) -> dict:
        return {"tbptt": components.backprop(draws)}
