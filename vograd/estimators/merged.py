"""Inverse-variance merge of the reparameterization and ES gradients (Metz et al. 2019)."""

from __future__ import annotations

import equinox as eqx
from jax.sharding import Mesh

from vograd.estimators import components, config
from vograd.estimators.reduce import Samples, merged_estimate
from vograd.estimators.windowed import Draws, WindowedEstimator


class Merged(WindowedEstimator):
    """Returns ``g = (g_es / v_es + g_rp / v_rp) / (1 / v_es + 1 / v_rp)``.

    ``g_rp`` and ``g_es`` come from the SAME antithetic pairs (per pair:
    ``(grad L+ + grad L-) / 2`` and ``(L+ - L-) eps / (2 sigma^2)``); ``v`` are
    their unbiased sample variances across pairs plus ``1e-8``.
    ``weighting="per_element"`` (default, as in the authors' released code)
    weights each element of theta separately; ``"total"`` (as in the paper's
    text) uses the scalar total variances ``sum_j v[j]``. Diagnostics report
    the weights (``"rp"``, ``"es"``; the mean over elements when per element)
    and the total variances.

    Needs ``num_pairs >= 2``: the weights come from sample variances, which
    one sample cannot estimate. Other fields as `Reparameterization`.
    """

    num_pairs: int = eqx.field(static=True, default=8)
    sigma: float = eqx.field(static=True, default=0.01)
    window: int | None = eqx.field(static=True, default=None)
    weighting: str = eqx.field(static=True, default="per_element")
    chunk: int | None = eqx.field(static=True, default=None)
    unroll: int | bool = eqx.field(static=True, default=1)
    burn_in: int = eqx.field(static=True, default=0)
    stagger: bool = eqx.field(static=True, default=False)
    mesh: Mesh | None = eqx.field(static=True, default=None)
    mesh_axis: str = eqx.field(static=True, default="population")

    def __check_init__(self):
        config.check_count(
            "num_pairs", self.num_pairs, 2, "the merge weights need sample variances"
        )
        config.check_sigma(self.sigma)
        config.check_weighting(self.weighting)
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
        return True

    def components(self, draws: Draws) -> dict:
        return {
            "rp": components.reparameterization(draws),
            "es": components.evolution_strategies(draws, self.sigma),
        }

    def reduce(self, samples: Samples):
        return merged_estimate(samples, self.weighting)
