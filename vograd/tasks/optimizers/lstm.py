"""``LSTMOptimizer``: the coordinatewise LSTM optimizer of Andrychowicz et al. (2016)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.tasks.optimizers.base import LearnedOptimizer, Params, Updates
from vograd.tasks.optimizers.nn import Dense, LSTMCell, dense_init, lstm_init, normal_blocks


def preprocess_gradient(g: Float[Array, " n"], p: float) -> Float[Array, "2 n"]:
    """Returns the two input rows of Andrychowicz et al. (2016), Appendix A, shape ``[2, n]``:

    ``(log|g| / p, sign g)`` where ``|g| >= e^-p``, else ``(-1, e^p g)``.

    The logarithm is taken of ``max(|g|, e^-p)`` so that its derivative stays
    finite at ``g = 0`` (the unselected branch of a ``where`` still gets a
    gradient, and ``0 * inf`` would be NaN).
    """
    big = jnp.abs(g) >= math.exp(-p)
    log_mag = jnp.log(jnp.maximum(jnp.abs(g), math.exp(-p))) / p
    first = jnp.where(big, log_mag, -1.0)
    second = jnp.where(big, jnp.sign(g), math.exp(p) * g)
    return jnp.stack([first, second]).astype(g.dtype)


class LSTMTheta(eqx.Module):
    """Weights: one `LSTMCell` per layer (shared by all coordinates) and the output layer."""

    cells: tuple[LSTMCell, ...]
    out: Dense


class LSTMOptState(eqx.Module):
    """Hidden and cell states of every coordinate, ``[layers, U, P]`` with ``P`` the
    total number of parameters (all tensors flattened and concatenated)."""

    h: Float[Array, "layers units P"]
    c: Float[Array, "layers units P"]


class LSTMOptimizer(LearnedOptimizer):
    """Returns updates ``output_scale * (w_out . h_top + b_out)`` from a coordinatewise LSTM.

    Every scalar parameter runs its own copy of a ``layers``-layer LSTM with
    ``units`` units (shared weights, separate states). Its input is the
    preprocessed gradient (`preprocess_gradient`, two numbers); its output,
    scaled by ``output_scale``, is *added* to the parameter
    (``theta_{t+1} = theta_t + g_t`` in the paper's notation).

    ``preprocess_p``: the paper (Appendix A) uses ``p = 10``; the authors'
    released code (``learning-to-learn``) uses 5. Defaults follow the paper.

    All tensors are flattened into one ``[*, P]`` block per step, so the whole
    update is two dense LSTM layers over ``P`` columns (per-tensor work would
    cost one set of small kernels per tensor for nothing: there is no
    per-tensor statistic in this optimizer).
    """

    layers: int = eqx.field(static=True, default=2)
    units: int = eqx.field(static=True, default=20)
    preprocess_p: float = eqx.field(static=True, default=10.0)
    output_scale: float = eqx.field(static=True, default=0.01)

    def __check_init__(self):
        if self.layers < 1 or self.units < 1:
            raise ValueError(
                f"LSTMOptimizer: layers and units must be >= 1, got {self.layers}, {self.units}"
            )
        if self.preprocess_p <= 0:
            raise ValueError(f"LSTMOptimizer: preprocess_p must be > 0, got {self.preprocess_p}")

    @eqx.filter_jit  # one compile instead of one per eager random draw
    def init_theta(self, key: PRNGKeyArray) -> LSTMTheta:
        """Returns LSTM weights ``N(0, 1/fan_in)`` (forget bias 1) and an output layer
        ``N(0, 1/U)``, so first updates are ``O(output_scale)``."""
        u = self.units
        shapes = []
        for i in range(self.layers):
            shapes += [(2 if i == 0 else u, 4 * u), (u, 4 * u)]
        noise = normal_blocks(key, shapes + [(u, 1)])
        cells = tuple(lstm_init(noise[2 * i], noise[2 * i + 1]) for i in range(self.layers))
        return LSTMTheta(cells=cells, out=dense_init(noise[-1]))

    def init(self, theta: LSTMTheta, params: Params) -> LSTMOptState:
        """Returns zero hidden and cell states for all ``P`` coordinates of ``params``."""
        del theta
        num = sum(int(np.prod(jnp.shape(p))) for p in jax.tree.leaves(params))
        zeros = jnp.zeros((self.layers, self.units, num))
        return LSTMOptState(h=zeros, c=zeros)

    def update(
        self, theta: LSTMTheta, grads: Updates, state: LSTMOptState, params: Params
    ) -> tuple[Updates, LSTMOptState]:
        """Returns the additive updates (same tree as ``grads``) and the new states."""
        del params
        leaves, treedef = jax.tree.flatten(grads)
        sizes = [int(np.prod(jnp.shape(g))) for g in leaves]
        if sum(sizes) != state.h.shape[-1]:
            raise ValueError(
                f"LSTMOptimizer: state holds {state.h.shape[-1]} coordinates but the "
                f"gradients have {sum(sizes)}; was init called with these params?"
            )
        g = jnp.concatenate([jnp.reshape(x, (-1,)) for x in leaves]) if leaves else jnp.zeros((0,))
        x = preprocess_gradient(g, self.preprocess_p)
        hs, cs = [], []
        for layer, cell in enumerate(theta.cells):
            h, c = cell(x, state.h[layer], state.c[layer])
            hs.append(h)
            cs.append(c)
            x = h
        flat = self.output_scale * theta.out(x)[0]  # [P]
        offsets = np.cumsum([0] + sizes)
        updates = [
            flat[offsets[i] : offsets[i + 1]].reshape(jnp.shape(leaf)).astype(leaf.dtype)
            for i, leaf in enumerate(leaves)
        ]
        new_state = LSTMOptState(h=jnp.stack(hs), c=jnp.stack(cs))
        return jax.tree.unflatten(treedef, updates), new_state


__all__ = ["LSTMOptState", "LSTMOptimizer", "LSTMTheta", "preprocess_gradient"]
