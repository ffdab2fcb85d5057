"""``HierarchicalOptimizer``: a per-tensor LSTM feeding a per-parameter MLP (Metz et al. 2020).

Metz, Maheswaranathan, Freeman, Poole, Sohl-Dickstein, "Tasks, stability,
architecture, and compute: training more effective learned optimizers, and
using them to train themselves" (2020), Figure 1c. What is implemented here,
and where it simplifies the paper, is listed in `HierarchicalOptimizer` and in
docs/optimizers.md.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from vograd.tasks.optimizers.base import LearnedOptimizer, Params, Updates
from vograd.tasks.optimizers.features import (
    RMS_EPS,
    feature_rows,
    time_features,
    update_momenta,
)
from vograd.tasks.optimizers.mlp import METZ_TAUS
from vograd.tasks.optimizers.nn import Dense, LSTMCell, dense_init, lstm_init, normal_blocks

SECOND_MOMENT_EPS = 1e-6  # inside rsqrt(v + eps) for the Adam-like features


class HierarchicalTheta(eqx.Module):
    """Weights: the per-tensor ``lstm``, its three heads, and the per-parameter MLP.

    - ``lstm``: input ``S`` (per-tensor statistics + time + message) -> ``U`` units;
    - ``to_mlp``: ``U -> E + 1`` (embedding for the MLP, and a log step scale);
    - ``to_message``: ``U -> M`` (averaged over tensors, read at the next step);
    - ``mlp``: ``Fp + E -> H -> H -> 2`` (ReLU), outputs ``(d, m)``.
    """

    lstm: LSTMCell
    to_mlp: Dense
    to_message: Dense
    mlp: tuple[Dense, ...]


class HierarchicalOptState(eqx.Module):
    """State: per-parameter accumulators and per-tensor LSTM state.

    ``momenta`` leaves are ``[K, *p.shape]``; ``second_moment`` leaves ``p.shape``;
    ``h``, ``c`` are ``[U, T]`` (one column per tensor, in tree-leaf order);
    ``message`` is ``[M]``; ``step`` counts updates done so far.
    """

    momenta: Params
    second_moment: Params
    h: Float[Array, "U T"]
    c: Float[Array, "U T"]
    message: Float[Array, " M"]
    step: Int[Array, ""]


class HierarchicalOptimizer(LearnedOptimizer):
    """Returns updates ``-step_mult * d * exp(exp_mult * m) * exp(s_tensor)``.

    Per parameter (each row normalised over its tensor by
    ``x / sqrt(1e-5 + mean(x^2))``), ``Fp = 2 + 2K`` rows:
    ``g``, ``w``, momenta ``m_beta`` (``K = len(decays)``) and Adam-like
    ``m_beta / sqrt(v + 1e-6)`` with ``v <- b v + (1 - b) g^2``,
    ``b = second_moment_decay``.

    Per tensor (one LSTM column per tensor, weights shared), ``S`` inputs:

    - ``log(1e-8 + rms)`` of every raw per-parameter row, divided by 10 (the
      tensor's gradient, weight, momentum scales; ``Fp`` numbers);
    - the mean of every normalised row (how aligned the tensor's entries are;
      ``Fp`` numbers);
    - ``log(n) / 10`` for a tensor of ``n`` entries;
    - time features ``tanh(t / tau - 1)``;
    - the *message*: the mean over all tensors of ``to_message(h)`` from the
      previous step (``M`` numbers; zero at the first step). This is how the
      tensors' LSTMs exchange information (a mean, so the order and number of
      tensors do not matter).

    The LSTM's ``to_mlp`` head gives each tensor an ``E``-dim embedding,
    appended to every one of its parameters' MLP inputs (folded into the
    first-layer bias, so it costs nothing per parameter), and a log step
    scale ``s_tensor``.

    Simplifications against the paper and its released code (learned_optimization
    ``RNNMLPLOpt``): no training/validation-loss features (the optimizer interface
    does not pass the loss); no dynamic gradient clipping; one second-moment
    accumulator instead of one per decay; no reverse message from the MLP to
    the LSTM (mean of extra MLP outputs); no sinusoidal time embedding or
    tensor-shape features in the MLP (time and size reach the MLP only through
    the LSTM's embedding); zero initial LSTM state instead of a learned one;
    the per-tensor log step scale is an addition.
    """

    decays: tuple[float, ...] = eqx.field(static=True, default=(0.5, 0.9, 0.99))
    second_moment_decay: float = eqx.field(static=True, default=0.999)
    taus: tuple[float, ...] = eqx.field(static=True, default=METZ_TAUS)
    lstm_units: int = eqx.field(static=True, default=64)
    embedding: int = eqx.field(static=True, default=8)
    message: int = eqx.field(static=True, default=8)
    hidden: tuple[int, ...] = eqx.field(static=True, default=(32, 32))
    step_mult: float = eqx.field(static=True, default=0.001)
    exp_mult: float = eqx.field(static=True, default=0.001)

    def __check_init__(self):
        if any(not 0.0 <= b < 1.0 for b in (*self.decays, self.second_moment_decay)):
            raise ValueError(
                "HierarchicalOptimizer: decays must lie in [0, 1), got "
                f"{self.decays} and {self.second_moment_decay}"
            )
        if self.lstm_units < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError(
                "HierarchicalOptimizer: lstm_units and hidden widths must be >= 1, got "
                f"{self.lstm_units}, {self.hidden}"
            )

    @property
    def num_param_features(self) -> int:
        """Returns ``Fp = 2 + 2K``, the per-parameter rows."""
        return 2 + 2 * len(self.decays)

    @property
    def num_tensor_features(self) -> int:
        """Returns ``S = 2 Fp + 1 + len(taus) + M``, the LSTM input width."""
        return 2 * self.num_param_features + 1 + len(self.taus) + self.message

    @eqx.filter_jit  # one compile instead of one per eager random draw
    def init_theta(self, key: PRNGKeyArray) -> HierarchicalTheta:
        """Returns LSTM weights ``N(0, 1/fan_in)``, He-normal MLP hidden layers,
        ``N(0, 1/fan_in)`` output layers and zero biases."""
        fp, e, u, m = self.num_param_features, self.embedding, self.lstm_units, self.message
        widths = (fp + e, *self.hidden, 2)
        mlp_shapes = [(widths[i], widths[i + 1]) for i in range(len(widths) - 1)]
        noise = normal_blocks(
            key, [(self.num_tensor_features, 4 * u), (u, 4 * u), (u, e + 1), (u, m), *mlp_shapes]
        )
        gains = [2.0] * len(self.hidden) + [1.0]
        return HierarchicalTheta(
            lstm=lstm_init(noise[0], noise[1]),
            to_mlp=dense_init(noise[2]),
            to_message=dense_init(noise[3]),
            mlp=tuple(dense_init(z, gain) for z, gain in zip(noise[4:], gains)),
        )

    def init(self, theta: HierarchicalTheta, params: Params) -> HierarchicalOptState:
        """Returns zero accumulators, zero LSTM state and message, ``step = 0``."""
        del theta
        k = len(self.decays)
        num_tensors = len(jax.tree.leaves(params))
        return HierarchicalOptState(
            momenta=jax.tree.map(lambda p: jnp.zeros((k,) + jnp.shape(p), jnp.result_type(p)), params),
            second_moment=jax.tree.map(jnp.zeros_like, params),
            h=jnp.zeros((self.lstm_units, num_tensors)),
            c=jnp.zeros((self.lstm_units, num_tensors)),
            message=jnp.zeros((self.message,)),
            step=jnp.zeros((), jnp.int32),
        )

    def update(
        self,
        theta: HierarchicalTheta,
        grads: Updates,
        state: HierarchicalOptState,
        params: Params,
    ) -> tuple[Updates, HierarchicalOptState]:
        """Returns the additive updates (same tree as ``params``) and the new state."""
        g_leaves, treedef = jax.tree.flatten(grads)
        w_leaves = treedef.flatten_up_to(params)
        if len(g_leaves) != state.h.shape[1]:
            raise ValueError(
                f"HierarchicalOptimizer: state has {state.h.shape[1]} tensors but the "
                f"gradients have {len(g_leaves)}; was init called with these params?"
            )
        decays = jnp.asarray(self.decays, jnp.float32)
        b2 = self.second_moment_decay
        m_leaves = [
            update_momenta(decays, m, g)
            for g, m in zip(g_leaves, treedef.flatten_up_to(state.momenta))
        ]
        v_leaves = [
            b2 * v + (1.0 - b2) * jnp.square(g)
            for g, v in zip(g_leaves, treedef.flatten_up_to(state.second_moment))
        ]

        # Per-parameter rows and their per-tensor statistics.
        rows, scales, stats = [], [], []
        for g, w, m, v in zip(g_leaves, w_leaves, m_leaves, v_leaves):
            adam_like = m * jax.lax.rsqrt(v + SECOND_MOMENT_EPS)[None]
            x = feature_rows(g, w, m, adam_like)  # [Fp, n]
            mean_sq = jnp.mean(jnp.square(x), axis=1) if g.size else jnp.zeros(x.shape[0])
            inv_rms = jax.lax.rsqrt(RMS_EPS + mean_sq)
            mean_normalised = (jnp.mean(x, axis=1) if g.size else jnp.zeros(x.shape[0])) * inv_rms
            log_rms = jnp.log(1e-8 + jnp.sqrt(mean_sq)) / 10.0
            log_size = jnp.full((1,), math.log(max(g.size, 1)) / 10.0)
            rows.append(x)
            scales.append(inv_rms)
            stats.append(jnp.concatenate([log_rms, mean_normalised, log_size]))

        # Per-tensor LSTM: one column per tensor, shared weights.
        num_tensors = len(g_leaves)
        shared = jnp.concatenate([time_features(state.step, self.taus), state.message])
        lstm_in = jnp.concatenate(
            [jnp.stack(stats, axis=1), jnp.broadcast_to(shared[:, None], (shared.size, num_tensors))]
        )  # [S, T]
        h, c = theta.lstm(lstm_in, state.h, state.c)
        to_mlp = theta.to_mlp(h)  # [E + 1, T]
        message = jnp.mean(theta.to_message(h), axis=1)

        fp = self.num_param_features
        first, *rest = theta.mlp
        updates = []
        for i, (g, x, inv_rms) in enumerate(zip(g_leaves, rows, scales)):
            if g.size == 0:
                updates.append(jnp.zeros_like(g))
                continue
            # Normalisation folded into the weights, the embedding into the bias.
            w1 = first.w[:fp] * inv_rms[:, None]
            b1 = first.b + to_mlp[:-1, i] @ first.w[fp:]
            act = jax.nn.relu(w1.T @ x + b1[:, None])
            for layer in rest[:-1]:
                act = jax.nn.relu(layer(act))
            out = rest[-1](act)  # [2, n]
            log_scale = to_mlp[-1, i]
            step = -self.step_mult * out[0] * jnp.exp(self.exp_mult * out[1] + log_scale)
            updates.append(step.reshape(g.shape).astype(g.dtype))

        new_state = HierarchicalOptState(
            momenta=jax.tree.unflatten(treedef, m_leaves),
            second_moment=jax.tree.unflatten(treedef, v_leaves),
            h=h,
            c=c,
            message=message,
            step=state.step + 1,
        )
        return jax.tree.unflatten(treedef, updates), new_state


__all__ = ["HierarchicalOptState", "HierarchicalOptimizer", "HierarchicalTheta"]
