"""The like-for-like comparison with learned_optimization (vograd/benchmarks/reference/run.py).

learned_optimization itself is not installed for the test suite (it needs
tensorflow; `make bench-reference` puts it in its own venv). What is checked
here: the vograd optimizer that the benchmark times against ``MLPLOpt 1x32``
computes MLPLOpt's update, transcribed below in numpy from its source
(learned_optimization/learned_optimizers/mlp_lopt.py, 0.0.1), over several
steps; and that a missing reference gives a clear error.
"""

from __future__ import annotations

import importlib.util

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vograd.benchmarks.reference import lopt
from vograd.tasks.optimizers import MLPOptimizer, MLPTheta


def _mlplopt_numpy(theta, params, grads_seq, start=0, step_mult=1e-3, exp_mult=1e-3):
    """Returns the params after MLPLOpt(hidden_layers=1)'s updates, in float64 numpy:
    per tensor, features [g, p, m_0..m_5] each scaled by 1/sqrt(1e-5 + mean(x^2)),
    then tanh(t / s - 1) for its 11 timescales; ReLU layer; p -= d exp(exp_mult m) step_mult."""
    # MLPLOpt's constants, written out here (not taken from vograd.benchmarks/) so that a wrong
    # constant in the benchmark's matched configuration fails this test.
    decays = np.asarray([0.1, 0.5, 0.9, 0.99, 0.999, 0.9999])
    scales = np.asarray([1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000], np.float64)
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    moms = {k: np.zeros((len(decays),) + v.shape) for k, v in params.items()}
    for t, grads in enumerate(grads_seq, start=start):
        time_feat = np.tanh(t / scales - 1.0)
        new = {}
        for k, p in params.items():
            g = np.asarray(grads[k], np.float64)
            moms[k] = decays.reshape((-1,) + (1,) * g.ndim) * moms[k] + (
                1 - decays.reshape((-1,) + (1,) * g.ndim)) * g
            rows = np.concatenate([g.reshape(1, -1), p.reshape(1, -1), moms[k].reshape(len(decays), -1)])
            rows = rows / np.sqrt(1e-5 + np.mean(rows**2, axis=1, keepdims=True))
            x = np.concatenate([rows, np.repeat(time_feat[:, None], rows.shape[1], axis=1)])
            h = np.maximum(theta.w1.T @ x + theta.b1[:, None], 0.0)
            out = theta.w2.T @ h + theta.b2[:, None]
            step = out[0] * np.exp(out[1] * exp_mult) * step_mult
            new[k] = p - step.reshape(p.shape)
        params = new
    return params


@pytest.mark.parametrize("start", [0, 30_000])  # late steps make the long timescales count
@pytest.mark.parametrize("fused", [False, True])
def test_matched_optimizer_computes_mlplopt_1x32(fused, start):
    opt = MLPOptimizer(decays=lopt.LOPT_DECAYS, taus=lopt.LOPT_TIMESCALES, hidden=32,
                       fused_forward=fused)
    assert opt.num_features == 19  # MLPLOpt's input width
    keys = jax.random.split(jax.random.key(0), 8)
    theta = opt.init_theta(keys[0])
    # Non-zero biases so that they are exercised too.
    theta = MLPTheta(w1=theta.w1, b1=0.1 * jax.random.normal(keys[1], (32,)),
                     w2=theta.w2, b2=0.1 * jax.random.normal(keys[2], (2,)))
    params = {"w": 0.05 * jax.random.normal(keys[3], (30, 16)), "b": jnp.zeros((16,))}
    grads_seq = [{"w": 0.01 * jax.random.normal(k, (30, 16)),
                  "b": 0.01 * jax.random.normal(jax.random.fold_in(k, 1), (16,))}
                 for k in keys[4:8]]
    state, ours = opt.init(theta, params), params
    state = eqx.tree_at(lambda s: s.step, state, jnp.asarray(start, jnp.int32))
    for grads in grads_seq:
        updates, state = opt.update(theta, grads, state, ours)
        ours = jax.tree.map(lambda p, u: p + u, ours, updates)
    theirs = _mlplopt_numpy(jax.tree.map(np.asarray, theta), params, grads_seq, start)
    for k in params:
        moved = np.max(np.abs(theirs[k] - np.asarray(params[k])))
        assert moved > 1e-4  # four real steps were taken
        np.testing.assert_allclose(np.asarray(ours[k]), theirs[k], atol=1e-6 * moved + 1e-8)


def test_missing_reference_gives_the_install_command():
    if importlib.util.find_spec("learned_optimization") and importlib.util.find_spec("haiku"):
        pytest.skip("learned_optimization is installed in this environment")
    with pytest.raises(RuntimeError, match="make bench-reference"):
        lopt.modules()


def test_reference_merged_row_is_the_sum_of_its_tbptt_and_es_rows():
    # learned_optimization has no merged estimator: its row is TruncatedGrad + TruncatedES
    # on the same unrolls, timed in the same rounds; steps/s counts the 16 unrolls once.
    from vograd.benchmarks.reference import run

    def row(est, window, wall):
        return {"task": "mlp", "window": window, "estimator": est, "name": "ref MLPLOpt 1x32",
                "first_call_s": 1.0, "wall_s": wall, "cpu_s": 2 * wall}

    rows = [row("ES", 10, 0.3), row("TBPTT", 10, 0.9), row("PES", 10, 0.2), row("ES", 50, 1.0),
            row("TBPTT", 50, 6.0)]
    merged = run.reference_merged_rows(rows, ["ref MLPLOpt 1x32"])
    assert [(m["window"], m["estimator"]) for m in merged] == [(10, "Merged"), (50, "Merged")]
    np.testing.assert_allclose([m["wall_s"] for m in merged], [1.2, 7.0])
    np.testing.assert_allclose(merged[0]["steps_per_s"], 2 * run.PAIRS * 10 / 1.2)
    assert merged[1]["cpu_s"] == 14.0 and merged[0]["first_call_s"] == 2.0
