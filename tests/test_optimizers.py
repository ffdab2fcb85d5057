"""Tests of the learned optimizers (vograd/tasks/optimizers/mlp.py, lstm.py, hierarchical.py).

Each learned optimizer is checked against a reference written here in numpy
(float64), independently of the jax code: the features, normalisation and
network are re-derived from the papers' equations, not from the module.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vograd.tasks.optimizers import (
    HierarchicalOptimizer,
    LSTMOptimizer,
    MLPOptimizer,
    preprocess_gradient,
)

# float32 jax against a float64 numpy reference: a few ulps per operation over
# a ~100-operation chain leaves relative errors around 1e-6; 1e-4 is safe.
RTOL = 1e-4


def _tiny_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "a": rng.normal(size=(2, 3)).astype(np.float32),
        "b": rng.normal(size=(4,)).astype(np.float32),
        "s": np.float32(0.7),
    }


def _grads(seed, params):
    rng = np.random.default_rng(100 + seed)
    return {k: (0.1 * rng.normal(size=np.shape(v))).astype(np.float32) for k, v in params.items()}


def _to_np(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def _relu(x):
    return np.maximum(x, 0.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------ MLPOptimizer


def _mlp_reference(theta, grads_seq, params, decays, taus, step_mult, exp_mult):
    """Returns the list of updates of Metz et al. 2019's optimizer, numpy float64."""
    th = _to_np(theta)
    params = _to_np(params)
    mom = {k: np.zeros((len(decays),) + np.shape(v)) for k, v in params.items()}
    out = []
    for t, grads in enumerate(grads_seq):
        grads = _to_np(grads)
        upd = {}
        for k in params:
            g, w = grads[k].reshape(-1), params[k].reshape(-1)
            cols = [g, w]
            for i, beta in enumerate(decays):
                mom[k][i] = beta * mom[k][i] + (1 - beta) * grads[k]
                cols.append(mom[k][i].reshape(-1))
            cols = [c / np.sqrt(1e-5 + np.mean(c**2)) for c in cols]
            time_cols = [np.full_like(g, np.tanh(t / tau - 1.0)) for tau in taus]
            x = np.stack(cols + time_cols, axis=1)  # [n, F]
            o = _relu(x @ th.w1 + th.b1) @ th.w2 + th.b2
            u = -step_mult * o[:, 0] * np.exp(exp_mult * o[:, 1])
            upd[k] = u.reshape(np.shape(params[k]))
        out.append(upd)
        params = {k: params[k] + upd[k] for k in params}
    return out


@pytest.mark.parametrize(
    "use_momentum,use_time,fused",
    [(True, True, False), (False, True, False), (True, False, False)],
)
def test_mlp_optimizer_matches_numpy_reference(use_momentum, use_time, fused):
    # Large step/exp multipliers so that both outputs d and m matter numerically.
    opt = MLPOptimizer(use_momentum=use_momentum, use_time=use_time, step_mult=0.1,
                       exp_mult=0.5, fused_forward=fused)
    theta = opt.init_theta(jax.random.key(1))
    params = _tiny_params()
    grads_seq = [_grads(i, params) for i in range(3)]
    ref = _mlp_reference(
        theta, grads_seq, params, opt.active_decays, opt.active_taus, 0.1, 0.5
    )
    state = opt.init(theta, params)
    p = jax.tree.map(jnp.asarray, params)
    update = jax.jit(opt.update)
    for t, grads in enumerate(grads_seq):
        u, state = update(theta, grads, state, p)
        for k in params:
            np.testing.assert_allclose(np.asarray(u[k]), ref[t][k], rtol=RTOL, atol=1e-7)
        p = optax.apply_updates(p, u)
    assert int(state.step) == 3


def test_mlp_fused_forward_has_the_dense_gradient():
    rng = np.random.default_rng(7)
    params = jnp.asarray(rng.normal(size=(5,)), jnp.float32)  # one tensor: one compile
    grads = jnp.asarray(0.1 * rng.normal(size=(5,)), jnp.float32)

    def outer(theta, params, grads, opt):
        u, _ = opt.update(theta, grads, opt.init(theta, params), params)
        return jnp.sum(jnp.sin(30.0 * u)), u

    dense, fused = MLPOptimizer(step_mult=0.1), MLPOptimizer(step_mult=0.1, fused_forward=True)
    theta = dense.init_theta(jax.random.key(4))
    grad = jax.jit(jax.grad(outer, argnums=(0, 1, 2), has_aux=True), static_argnums=3)
    (g_dense, u_dense), (g_fused, u_fused) = grad(theta, params, grads, dense), grad(theta, params, grads, fused)
    np.testing.assert_allclose(np.asarray(u_fused), np.asarray(u_dense), rtol=1e-5, atol=1e-9)
    # Same function, different float32 summation order: agreement to ~1e-6
    # relative; checks the cotangents of theta and of the inputs (params, grads).
    for a, b in zip(jax.tree.leaves(g_dense), jax.tree.leaves(g_fused)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
    assert min(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(g_dense)) > 1e-3


def test_mlp_feature_flags_change_input_width():
    # 2 (g, w) + 5 momenta + 9 time features, as in Metz et al. 2019.
    assert MLPOptimizer().num_features == 16
    assert MLPOptimizer(use_momentum=False).num_features == 11
    assert MLPOptimizer(use_time=False).num_features == 7
    assert MLPOptimizer(use_momentum=False, use_time=False).num_features == 2
    assert MLPOptimizer(decays=(0.9,), taus=(10.0, 100.0)).num_features == 5
    theta = MLPOptimizer(use_momentum=False).init_theta(jax.random.key(0))
    assert theta.w1.shape == (11, 32)
    with pytest.raises(ValueError, match="decays"):
        MLPOptimizer(decays=(1.5,))


def test_random_mlp_optimizer_gives_small_finite_updates_on_real_mlp():
    opt = MLPOptimizer()
    rng = np.random.default_rng(0)
    widths = (784, 32, 32, 10)  # the Metz 2019 MLP task: 2 hidden layers of 32
    params = {}
    for i in range(3):
        params[f"w{i}"] = (rng.normal(size=widths[i : i + 2]) / np.sqrt(widths[i])).astype(np.float32)
        params[f"b{i}"] = np.zeros(widths[i + 1], np.float32)
    grads = {k: (1e-3 * rng.normal(size=v.shape)).astype(np.float32) for k, v in params.items()}
    theta = opt.init_theta(jax.random.key(5))
    state = opt.init(theta, params)
    u, state = jax.jit(opt.update)(theta, grads, state, params)
    flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(u)])
    assert np.all(np.isfinite(flat))
    # step_mult * |d| with d = O(1) from a He-initialised net on unit-rms inputs:
    # every update is well below 0.05 and the typical one is of order 1e-3.
    assert np.max(np.abs(flat)) < 0.05
    assert 1e-5 < np.median(np.abs(flat)) < 1e-2


# ----------------------------------------------------------------- LSTMOptimizer


def test_gradient_preprocessing_cases():
    p = 10.0
    g = jnp.array([0.5, -2.0, 1e-6, -3e-5, 0.0])
    x = np.asarray(preprocess_gradient(g, p))
    # |g| >= e^-10 ~ 4.54e-5: (log|g| / p, sign g); else (-1, e^p g).
    np.testing.assert_allclose(x[:, 0], [math.log(0.5) / p, 1.0], rtol=1e-6)
    np.testing.assert_allclose(x[:, 1], [math.log(2.0) / p, -1.0], rtol=1e-6)
    np.testing.assert_allclose(x[:, 2], [-1.0, math.exp(p) * 1e-6], rtol=1e-5)
    np.testing.assert_allclose(x[:, 3], [-1.0, -math.exp(p) * 3e-5], rtol=1e-5)
    np.testing.assert_allclose(x[:, 4], [-1.0, 0.0])
    # p = 5 (the authors' code): threshold e^-5 ~ 6.7e-3.
    x5 = np.asarray(preprocess_gradient(jnp.array([1e-2, 1e-3]), 5.0))
    np.testing.assert_allclose(x5[:, 0], [math.log(1e-2) / 5.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(x5[:, 1], [-1.0, math.exp(5.0) * 1e-3], rtol=1e-5)
    # Finite gradient through g = 0 (the log branch is guarded).
    d = jax.grad(lambda g: jnp.sum(preprocess_gradient(g, p)))(jnp.zeros(3))
    assert np.all(np.isfinite(np.asarray(d)))


def _lstm_cell_ref(cell, x, h, c):
    u = h.shape[1]
    z = x @ cell.w_x + h @ cell.w_h + cell.b  # [n, 4U]
    i, f, gg, o = z[:, :u], z[:, u : 2 * u], z[:, 2 * u : 3 * u], z[:, 3 * u :]
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
    return _sigmoid(o) * np.tanh(c), c


def test_lstm_optimizer_matches_numpy_reference():
    opt = LSTMOptimizer()
    theta = opt.init_theta(jax.random.key(2))
    th = _to_np(theta)
    params = _tiny_params()
    grads_seq = [_grads(i, params) for i in range(3)]
    grads_seq[1]["b"][0] = 1e-7  # exercise the small-gradient branch
    p = 10.0
    n = sum(np.size(v) for v in params.values())
    h = [np.zeros((n, 20)) for _ in range(2)]
    c = [np.zeros((n, 20)) for _ in range(2)]
    state = opt.init(theta, params)
    update = jax.jit(opt.update)
    for grads in grads_seq:
        g = np.concatenate([np.ravel(grads[k]).astype(np.float64) for k in sorted(params)])
        big = np.abs(g) >= np.exp(-p)
        x = np.stack(
            [np.where(big, np.log(np.maximum(np.abs(g), 1e-300)) / p, -1.0),
             np.where(big, np.sign(g), np.exp(p) * g)], axis=1,
        )
        for layer in range(2):
            h[layer], c[layer] = _lstm_cell_ref(th.cells[layer], x, h[layer], c[layer])
            x = h[layer]
        ref = 0.01 * (x @ th.out.w + th.out.b)[:, 0]
        u, state = update(theta, grads, state, params)
        got = np.concatenate([np.ravel(u[k]) for k in sorted(params)])
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=1e-9)
    with pytest.raises(ValueError, match="coordinates"):
        opt.update(theta, {"a": jnp.ones(3)}, state, {"a": jnp.ones(3)})


# -------------------------------------------------------- HierarchicalOptimizer


def test_hierarchical_optimizer_matches_numpy_reference():
    opt = HierarchicalOptimizer(step_mult=0.1, exp_mult=0.5)
    theta = opt.init_theta(jax.random.key(3))
    th = _to_np(theta)
    params = _tiny_params()
    names = sorted(params)  # tree-leaf order of a dict
    grads_seq = [_grads(i, params) for i in range(3)]
    decays, b2 = opt.decays, opt.second_moment_decay
    mom = {k: np.zeros((len(decays),) + np.shape(params[k])) for k in names}
    v = {k: np.zeros(np.shape(params[k])) for k in names}
    h = np.zeros((len(names), 64))
    c = np.zeros((len(names), 64))
    message = np.zeros(8)
    w = _to_np(params)
    state = opt.init(theta, params)
    update = jax.jit(opt.update)
    p = jax.tree.map(jnp.asarray, params)
    for t, grads in enumerate(grads_seq):
        grads64 = _to_np(grads)
        rows, stats = {}, []
        for k in names:
            g = grads64[k]
            v[k] = b2 * v[k] + (1 - b2) * g**2
            cols = [g.reshape(-1), w[k].reshape(-1)]
            for i, beta in enumerate(decays):
                mom[k][i] = beta * mom[k][i] + (1 - beta) * g
                cols.append(mom[k][i].reshape(-1))
            for i in range(len(decays)):
                cols.append((mom[k][i] / np.sqrt(v[k] + 1e-6)).reshape(-1))
            rms = np.array([np.sqrt(np.mean(col**2)) for col in cols])
            normed = [col / np.sqrt(1e-5 + np.mean(col**2)) for col in cols]
            rows[k] = np.stack(normed, axis=1)  # [n, Fp]
            stats.append(np.concatenate([
                np.log(1e-8 + rms) / 10.0,
                [np.mean(col) for col in normed],
                [math.log(g.size) / 10.0],
            ]))
        shared = np.concatenate([np.tanh(t / np.asarray(opt.taus) - 1.0), message])
        lstm_in = np.concatenate([np.stack(stats), np.tile(shared, (len(names), 1))], axis=1)
        h, c = _lstm_cell_ref(th.lstm, lstm_in, h, c)
        to_mlp = h @ th.to_mlp.w + th.to_mlp.b  # [T, E + 1]
        message = np.mean(h @ th.to_message.w + th.to_message.b, axis=0)
        ref = {}
        for ti, k in enumerate(names):
            x = np.concatenate(
                [rows[k], np.tile(to_mlp[ti, :-1], (rows[k].shape[0], 1))], axis=1
            )
            a = _relu(x @ th.mlp[0].w + th.mlp[0].b)
            a = _relu(a @ th.mlp[1].w + th.mlp[1].b)
            o = a @ th.mlp[2].w + th.mlp[2].b
            u = -0.1 * o[:, 0] * np.exp(0.5 * o[:, 1] + to_mlp[ti, -1])
            ref[k] = u.reshape(np.shape(params[k]))
        u, state = update(theta, grads, state, p)
        for k in names:
            np.testing.assert_allclose(np.asarray(u[k]), ref[k], rtol=RTOL, atol=1e-7)
        p = optax.apply_updates(p, u)
        w = {k: w[k] + ref[k] for k in names}


# ------------------------------------------------------------------- as_optax


@pytest.mark.parametrize("lopt", [MLPOptimizer(), LSTMOptimizer(), HierarchicalOptimizer()],
                         ids=lambda o: type(o).__name__)
def test_as_optax_in_an_ordinary_training_loop(lopt):
    theta = lopt.init_theta(jax.random.key(0))
    tx = lopt.as_optax(theta)
    target = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    params = {"w": jnp.zeros((3, 4)), "b": jnp.ones(2)}

    def loss(p):
        return jnp.sum((p["w"] - target) ** 2) + jnp.sum(p["b"] ** 2)

    @jax.jit
    def train(params):
        def body(carry, _):
            p, s = carry
            g = jax.grad(loss)(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, (params, tx.init(params)), None, length=20)[0]

    p_tx, _ = train(params)
    assert np.isfinite(float(loss(p_tx)))
    assert float(loss(p_tx)) != float(loss(params))  # the updates did something
    with pytest.raises(ValueError, match="parameters"):
        tx.update(jax.grad(loss)(params), tx.init(params))
    if not isinstance(lopt, MLPOptimizer):
        return  # as_optax is shared code: one raw-interface comparison suffices

    # The same 20 steps through the raw interface give the same parameters.
    @jax.jit
    def raw_step(p, s):
        u, s = lopt.update(theta, jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, u), s

    p, s = params, lopt.init(theta, params)
    for _ in range(20):
        p, s = raw_step(p, s)
    # Scan vs Python loop may fuse differently: float32 ulp-level agreement.
    for a, b in zip(jax.tree.leaves(p_tx), jax.tree.leaves(p)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
