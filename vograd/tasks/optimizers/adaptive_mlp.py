"""``AdaptiveMLPOptimizer``: Adam plus a bounded, learned per-parameter correction.

The optimizer vograd ships as its default. It is designed to generalise off
its outer-training distribution, the property the Metz 2019 `MLPOptimizer`
lacks (docs/optimizers.md, "Designed to generalise"):

- every input is normalised by the parameter's own running second moment, so
  the update does not change when the loss is multiplied by a constant;
- no input grows with the step count (no time features), so nothing leaves
  its training range past the training horizon;
- a parameter whose gradient history is exactly zero does not move;
- the step is bounded, and its multiplicative modulation too;
- the learned part is a residual whose output layer starts at zero: at
  initialisation the optimizer *is* Adam at learning rate ``lr``, and outer
  training starts from a good hand-designed optimizer.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from vograd.tasks.optimizers.base import LearnedOptimizer, Params, Updates
from vograd.tasks.optimizers.nn import normal_blocks
from vograd.tasks.optimizers.per_parameter_mlp import mlp_outputs

# Momentum decays seen by the MLP; ``ADAM_B1`` (0.9) is also Adam's first moment.
DECAYS = (0.5, 0.9, 0.99)
ADAM_B1 = 0.9


class AdaptiveMLPTheta(eqx.Module):
    """Weights: per-parameter MLP ``F -> H -> 2`` and the log learning-rate offset.

    ``w2`` and ``b2`` start at zero (the residual is off at initialisation);
    ``log_lr`` is in units of ``lr_mult`` e-folds (``lr * exp(lr_mult * log_lr)``).
    """

    w1: Float[Array, "F H"]
    b1: Float[Array, " H"]
    w2: Float[Array, "H 2"]
    b2: Float[Array, " 2"]
    log_lr: Float[Array, ""]


class AdaptiveMLPState(eqx.Module):
    """Per-parameter moments and the update count.

    ``momenta``: leaf shape ``[K, *param.shape]``, one EMA of the gradient per
    decay in `DECAYS`; ``second``: the EMA of the squared gradient (``b2``);
    ``step``: updates done so far.
    """

    momenta: Params
    second: Params
    step: Int[Array, ""]


class AdaptiveMLPOptimizer(LearnedOptimizer):
    """Returns ``u = -lr_t * clip(a * exp(s_max tanh(s)) + r_max tanh(d), -u_max, u_max)``.

    Per scalar parameter ``w`` with gradient ``g`` at update ``t`` (1-based):

    - moments ``m_k <- beta_k m_k + (1 - beta_k) g`` for ``beta_k`` in
      `DECAYS`, ``v <- b2 v + (1 - b2) g^2``, bias-corrected as in Adam
      (``m_k / (1 - beta_k^t)``, ``v / (1 - b2^t)``); ``D = sqrt(v_hat) + eps``;
    - Adam's direction ``a = m_hat_0.9 / D``;
    - MLP inputs (``F = 2 + K``), each clipped to ``[-clip, clip]``:
      ``g / D``, ``m_hat_k / D`` for every ``k``, and ``w / rms(w)`` with the RMS
      over the parameter's tensor (zero for a zero tensor);
    - one hidden layer of ``hidden`` ReLU units, outputs ``(d, s)``;
    - ``lr_t = lr * exp(lr_mult * log_lr)``.

    ``u`` is zero wherever ``v == 0`` (no gradient seen yet). Every input
    except ``w / rms(w)`` is invariant to scaling the loss by ``c > 0`` as long
    as ``sqrt(v) >> eps``; ``w / rms(w)`` does not depend on the loss. With
    ``w2 = b2 = 0`` and ``log_lr = 0`` the update is Adam's (``b1 = 0.9``,
    ``b2``, ``eps``) at learning rate ``lr``, clipped at ``u_max``.

    Cost per parameter: ``(F + 2) H`` multiply-adds for the MLP plus Adam's
    elementwise work, in one fused pass; reverse mode runs the MLP's blocked
    backward (`per_parameter_mlp.mlp_outputs`).
    """

    hidden: int = eqx.field(static=True, default=16)
    lr: float = eqx.field(static=True, default=1e-3)
    lr_mult: float = eqx.field(static=True, default=10.0)
    b2: float = eqx.field(static=True, default=0.999)
    eps: float = eqx.field(static=True, default=1e-12)
    clip: float = eqx.field(static=True, default=5.0)
    s_max: float = eqx.field(static=True, default=2.0)
    r_max: float = eqx.field(static=True, default=1.0)
    u_max: float = eqx.field(static=True, default=5.0)

    def __check_init__(self):
        if self.hidden < 1:
            raise ValueError(f"AdaptiveMLPOptimizer: hidden must be >= 1, got {self.hidden}")
        if not 0.0 <= self.b2 < 1.0:
            raise ValueError(f"AdaptiveMLPOptimizer: b2 must lie in [0, 1), got {self.b2}")
        for name in ("lr", "lr_mult", "eps", "clip", "s_max", "r_max", "u_max"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"AdaptiveMLPOptimizer: {name} must be finite and > 0, got {value}")

    @property
    def num_features(self) -> int:
        """Returns the MLP's input width ``F = 2 + len(DECAYS)``."""
        return 2 + len(DECAYS)

    @eqx.filter_jit
    def init_theta(self, key: PRNGKeyArray) -> AdaptiveMLPTheta:
        """Returns He-normal hidden weights and a zero output layer and ``log_lr``."""
        f, h = self.num_features, self.hidden
        (z1,) = normal_blocks(key, [(f, h)])
        return AdaptiveMLPTheta(
            w1=z1 * math.sqrt(2.0 / f),
            b1=jnp.zeros((h,)),
            w2=jnp.zeros((h, 2)),
            b2=jnp.zeros((2,)),
            log_lr=jnp.zeros(()),
        )

    def scale_rate(self, theta: AdaptiveMLPTheta, factor: float) -> AdaptiveMLPTheta:
        """Returns ``theta`` with its global rate ``lr * exp(lr_mult * log_lr)`` multiplied
        by ``factor > 0`` (``log_lr`` shifted by ``log(factor) / lr_mult``; the rest
        unchanged): the one knob a user may tune, and what a rate sweep varies."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"AdaptiveMLPOptimizer.scale_rate: factor must be finite and > 0, "
                             f"got {factor}")
        return eqx.tree_at(lambda t: t.log_lr, theta, theta.log_lr + math.log(factor) / self.lr_mult)

    def init(self, theta: AdaptiveMLPTheta, params: Params) -> AdaptiveMLPState:
        """Returns zero moments and ``step = 0``."""
        del theta
        k = len(DECAYS)
        return AdaptiveMLPState(
            momenta=jax.tree.map(lambda p: jnp.zeros((k,) + jnp.shape(p), jnp.result_type(p)), params),
            second=jax.tree.map(jnp.zeros_like, params),
            step=jnp.zeros((), jnp.int32),
        )

    def update(
        self, theta: AdaptiveMLPTheta, grads: Updates, state: AdaptiveMLPState, params: Params
    ) -> tuple[Updates, AdaptiveMLPState]:
        """Returns the additive updates (same tree as ``params``) and the new state."""
        t = (state.step + 1).astype(jnp.float32)
        decays = jnp.asarray(DECAYS, jnp.float32)
        correction = 1.0 / (1.0 - decays**t)  # [K]
        v_correction = 1.0 / (1.0 - self.b2**t)
        adam_index = DECAYS.index(ADAM_B1)
        lr = self.lr * jnp.exp(self.lr_mult * theta.log_lr)

        def leaf(g, w, m, v):
            beta = decays.reshape((-1,) + (1,) * g.ndim).astype(g.dtype)
            m = beta * m + (1.0 - beta) * g[None]
            v = self.b2 * v + (1.0 - self.b2) * jnp.square(g)
            if g.size == 0:
                return jnp.zeros_like(g), m, v
            # sqrt has an infinite derivative at 0: take it only where the argument is
            # positive (else 0 * inf = NaN in reverse mode, e.g. at zero-initialised biases).
            seen = v > 0
            inv_d = jnp.where(seen, 1.0 / (jnp.sqrt(jnp.where(seen, v, 1.0) * v_correction) + self.eps), 0.0)
            m_hat = m * correction.reshape((-1,) + (1,) * g.ndim).astype(g.dtype)
            adam = m_hat[adam_index] * inv_d
            w_ms = jnp.mean(jnp.square(w))
            w_norm = jnp.where(w_ms > 0, w * jax.lax.rsqrt(jnp.where(w_ms > 0, w_ms, 1.0)), 0.0)
            features = [g * inv_d] + [m_hat[k] * inv_d for k in range(len(DECAYS))] + [w_norm]
            rows = tuple(jnp.clip(x, -self.clip, self.clip) for x in features)
            d, s = mlp_outputs(theta.w1, theta.b1, theta.w2, theta.b2, rows)
            step = adam * jnp.exp(self.s_max * jnp.tanh(s)) + self.r_max * jnp.tanh(d)
            step = jnp.clip(step, -self.u_max, self.u_max)
            u = jnp.where(seen, -lr * step, 0.0)
            return u.astype(g.dtype), m, v

        treedef = jax.tree.structure(grads)
        leaves = zip(*(treedef.flatten_up_to(x) for x in (grads, params, state.momenta, state.second)))
        u, m, v = zip(*(leaf(*xs) for xs in leaves))
        unflatten = treedef.unflatten
        return unflatten(u), AdaptiveMLPState(
            momenta=unflatten(m), second=unflatten(v), step=state.step + 1
        )

__all__ = ["ADAM_B1", "DECAYS", "AdaptiveMLPOptimizer", "AdaptiveMLPState", "AdaptiveMLPTheta"]
