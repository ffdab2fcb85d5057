"""Inverse-variance merge of the reparameterization and ES gradients (Metz et al. 2019)."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from vograd.estimators import components, config
from vograd.estimators.jumps import jump_flags
from vograd.estimators import stats
from vograd.estimators.reduce import Samples, cross_fit_estimate, merged_estimate
from vograd.estimators.windowed import Draws, SmoothedEstimator

WEIGHTS = ("same_samples", "cross_fit")


class Merged(SmoothedEstimator):
    """Returns ``g = (g_es / v_es + g_rp / v_rp) / (1 / v_es + 1 / v_rp)``.

    ``g_rp`` and ``g_es`` come from the SAME antithetic pairs (per pair:
    ``(grad L+ + grad L-) / 2`` and ``(L+ - L-) eps / (2 sigma^2)``); ``v`` are
    their unbiased sample variances plus ``1e-8``.

    - ``weighting="per_element"`` (default, as in the authors' released code)
      weights each element of theta separately; ``"total"`` (as in the
      paper's text) uses the scalar total variances ``sum_j v[j]``.
    - ``weights="same_samples"`` (the authors' rule): ``v`` from the pairs
      being weighted, which biases the merge (a pair that pulls a
      component's mean also raises its variance); ``"cross_fit"``:
      each pair is weighted with the variances of the other pairs
      (leave-one-out, `vograd.estimators.reduce.cross_fit_estimate`),
      unbiased at no extra unroll; needs ``num_pairs >= 3``.
    - ``detect_jumps=True``: when any kept pair's loss difference disagrees
      with its end gradients as only a jump can (`vograd.estimators.jumps`),
      the estimate is the ES mean (weights rp 0, es 1): the
      reparameterization gradient cannot see a discontinuity. Off: exactly
      the merge.

    Diagnostics report the weights (``"rp"``, ``"es"``; the mean over elements
    when per element) and the total variances. Needs ``num_pairs >= 2``:
    the weights come from sample variances, which one sample cannot
    estimate. Other fields as `Reparameterization`.
    """

    weighting: str = eqx.field(static=True, default="per_element", kw_only=True)
    weights: str = eqx.field(static=True, default="same_samples", kw_only=True)
    detect_jumps: bool = eqx.field(static=True, default=False, kw_only=True)

    paired: ClassVar[bool] = True
    needs_grad: ClassVar[bool] = True
    min_pairs: ClassVar[int] = 2
    min_pairs_reason: ClassVar[str] = "the merge weights need sample variances"

    def __check_init__(self):
        config.check_weighting(self.weighting)
        if self.weights not in WEIGHTS:
            raise ValueError(f"unknown weights {self.weights!r}; expected one of {WEIGHTS}")
        if self.weights == "cross_fit" and self.num_pairs < 3:
            raise ValueError(
                f"weights='cross_fit' needs num_pairs >= 3 (sample variances of the "
                f"other pairs), got {self.num_pairs}; use weights='same_samples'"
            )

    def components(self, draws: Draws) -> dict:
        return {
            "rp": components.reparameterization(draws),
            "es": components.evolution_strategies(draws, self.sigma),
        }

    def reduce(self, samples: Samples):
        if self.weights == "cross_fit":
            grad, diag = cross_fit_estimate(samples, self.weighting)
        else:
            grad, diag = merged_estimate(samples, self.weighting)
        if not self.detect_jumps:
            return grad, diag
        jump = jnp.any(jump_flags(samples, self.sigma))
        es = stats.masked_mean(samples.components["es"], samples.keep)
        grad = jax.tree.map(lambda e, g: jnp.where(jump, e, g), es, grad)
        one = jnp.ones((), samples.loss.dtype)
        weight = {"rp": jnp.where(jump, 0 * one, diag.weight["rp"]),
                  "es": jnp.where(jump, one, diag.weight["es"])}
        return grad, eqx.tree_at(lambda d: d.weight, diag, weight)
