"""From per-sample estimates to one gradient and its `Diagnostics`."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from vograd.estimators import stats
from vograd.estimators.base import Diagnostics

Tree = Any

VARIANCE_FLOOR = 1e-8  # added to the empirical variances before inverting them


class Samples(eqx.Module):
    """Per-sample estimates of one window (``S`` independent samples).

    - ``components``: estimator name -> per-sample gradient estimates, leaves
      ``[S, ...]`` shaped like theta (an antithetic pair is one sample);
    - ``loss``: each sample's window loss (mean of its branches);
    - ``keep``: the sample's loss, gradients and estimates are all finite;
    - ``noise``: the perturbation ``eps_i`` of each sample (``[S, ...]``; the
      ``+`` branch ran ``theta + eps_i``), None for unsmoothed estimators.
    """

    components: dict[str, Tree]
    loss: Float[Array, " S"]
    keep: Bool[Array, " S"]
    noise: Tree | None = None

    @property
    def num_samples(self) -> int:
        """Returns ``S``."""
        return self.keep.shape[0]


def finite_samples(*trees: Tree) -> Bool[Array, " S"]:
    """Returns, per sample, whether every leaf of every tree is finite (None trees skipped)."""
    return stats.finite_per_sample(*(t for t in trees if t is not None))


def mean_estimate(samples: Samples, name: str) -> tuple[Tree, Diagnostics]:
    """Returns the mean over kept samples of component ``name`` and its diagnostics.

    ``variance[name]`` is ``sum_j Var_s[g_s[j]]`` (unbiased, kept samples).
    A zero gradient when every sample was dropped.
    """
    keep = samples.keep
    g = samples.components[name]
    mean = stats.masked_mean(g, keep)
    var = stats.masked_variance(g, keep, mean)
    diag = Diagnostics(
        loss=stats.masked_mean(samples.loss, keep),
        variance={name: stats.tree_total(var)},
        weight={name: jnp.ones((), samples.loss.dtype)},
        num_dropped=stats.num_dropped(keep),
        num_samples=samples.num_samples,
    )
    return mean, diag


def inverse_variance_weights(
    var_rp: Tree, var_es: Tree, weighting: str
) -> tuple[Tree, Tree]:
    """Returns the (rp, es) weights ``w = (1/v) / (1/v_rp + 1/v_es)``, ``v += 1e-8``.

    ``"per_element"``: one weight per element of theta (authors' code);
    ``"total"``: one scalar weight from the total variances ``sum_j v[j]``
    (paper text). Written with precisions ``1/v`` so an infinite variance gets
    weight 0 rather than NaN.
    """
    if weighting == "total":
        var_rp = stats.tree_total(var_rp)
        var_es = stats.tree_total(var_es)

    def weights(v_rp, v_es):
        p_rp = 1.0 / (v_rp + VARIANCE_FLOOR)
        p_es = 1.0 / (v_es + VARIANCE_FLOOR)
        total = p_rp + p_es
        ok = total > 0
        safe = jnp.where(ok, total, 1.0)
        return jnp.where(ok, p_rp / safe, 0.5), jnp.where(ok, p_es / safe, 0.5)

    pairs = jax.tree.map(weights, var_rp, var_es)
    # Transpose by structure, not by "is a tuple": theta may hold tuples itself.
    w_rp, w_es = jax.tree.transpose(jax.tree.structure(var_rp), jax.tree.structure((0, 0)), pairs)
    return w_rp, w_es


def merged_estimate(samples: Samples, weighting: str) -> tuple[Tree, Diagnostics]:
    """Returns the inverse-variance merge of the ``"rp"`` and ``"es"`` components.

    ``g = w_rp * mean_rp + w_es * mean_es`` with `inverse_variance_weights`
    computed from the unbiased sample variances of the same kept samples.
    ``weight`` reports each component's weight (mean over theta's elements for
    the per-element rule); ``variance`` the total variances.
    """
    keep = samples.keep
    means, variances = {}, {}
    for name in ("rp", "es"):
        means[name] = stats.masked_mean(samples.components[name], keep)
        variances[name] = stats.masked_variance(samples.components[name], keep, means[name])
    w_rp, w_es = inverse_variance_weights(variances["rp"], variances["es"], weighting)
    # A zero weight must silence its component even when that mean overflowed.
    combine = lambda r, e, a, b: jnp.where(a > 0, a * r, 0) + jnp.where(b > 0, b * e, 0)  # noqa: E731
    if weighting == "total":
        grad = jax.tree.map(lambda r, e: combine(r, e, w_rp, w_es), means["rp"], means["es"])
        weight = {"rp": w_rp, "es": w_es}
    else:
        grad = jax.tree.map(combine, means["rp"], means["es"], w_rp, w_es)
        size = stats.tree_size(w_rp)
        weight = {"rp": stats.tree_total(w_rp) / size, "es": stats.tree_total(w_es) / size}
    diag = Diagnostics(
        loss=stats.masked_mean(samples.loss, keep),
        variance={k: stats.tree_total(v) for k, v in variances.items()},
        weight=weight,
        num_dropped=stats.num_dropped(keep),
        num_samples=samples.num_samples,
    )
    return grad, diag


def _combine(mean_rp: Tree, mean_es: Tree, w_rp: Tree, w_es: Tree, weighting: str) -> Tree:
    """Returns ``w_rp * mean_rp + w_es * mean_es``; a zero weight silences its
    component even when that mean overflowed."""
    combine = lambda r, e, a, b: jnp.where(a > 0, a * r, 0) + jnp.where(b > 0, b * e, 0)  # noqa: E731
    if weighting == "total":
        return jax.tree.map(lambda r, e: combine(r, e, w_rp, w_es), mean_rp, mean_es)
    return jax.tree.map(combine, mean_rp, mean_es, w_rp, w_es)


def _mean_weight(w: Tree, weighting: str) -> Float[Array, ""]:
    return w if weighting == "total" else stats.tree_total(w) / stats.tree_size(w)


def cross_fit_estimate(samples: Samples, weighting: str) -> tuple[Tree, Diagnostics]:
    """Returns the merge with cross-fitted (leave-one-out) weights: unbiased
    whenever both parts are.

    Each kept sample ``i`` is merged with the `inverse_variance_weights`
    computed from the variances of the OTHER kept samples, and the merged
    samples are averaged:

        g = mean_i (w_rp^(-i) g_rp_i + w_es^(-i) g_es_i)

    ``w^(-i)`` is independent of sample ``i`` and the two weights sum to 1,
    so ``E[g] = E[g_rp] = E[g_es]`` when ``g_rp`` and ``g_es`` share their
    mean; the same-sample rule (`merged_estimate`) is biased because a sample
    that raises its component's mean also raises that component's variance.
    With fewer than three kept samples the leave-one-out variances are 0 and
    both weights 1/2. The samples are visited one at a time (``lax.map``:
    memory of one sample's variances). ``variance`` in the diagnostics is over
    all kept samples, ``weight`` the mean over kept samples of their weights.
    """
    keep = samples.keep
    rp, es = samples.components["rp"], samples.components["es"]
    index = jnp.arange(keep.shape[0])

    def one(i):
        others = keep & (index != i)
        v_rp = stats.masked_variance(rp, others, stats.masked_mean(rp, others))
        v_es = stats.masked_variance(es, others, stats.masked_mean(es, others))
        w_rp, w_es = inverse_variance_weights(v_rp, v_es, weighting)
        at = lambda tree: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
        g = _combine(at(rp), at(es), w_rp, w_es, weighting)
        return g, _mean_weight(w_rp, weighting), _mean_weight(w_es, weighting)

    per_sample, w_rp, w_es = jax.lax.map(one, index)
    variances = {
        k: stats.masked_variance(x, keep, stats.masked_mean(x, keep))
        for k, x in (("rp", rp), ("es", es))
    }
    diag = Diagnostics(
        loss=stats.masked_mean(samples.loss, keep),
        variance={k: stats.tree_total(v) for k, v in variances.items()},
        weight={"rp": stats.masked_mean(w_rp, keep), "es": stats.masked_mean(w_es, keep)},
        num_dropped=stats.num_dropped(keep),
        num_samples=samples.num_samples,
    )
    return stats.masked_mean(per_sample, keep), diag
