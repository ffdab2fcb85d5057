"""Tests of population sharding over a 2-device CPU mesh (run in a subprocess:
the device count must be forced before jax is imported)."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

import vograd
from vograd.sharding import constrain_population, population_mesh, shard_population

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import equinox as eqx, jax, jax.numpy as jnp, numpy as np
    import vograd
    from vograd.tasks.toys import QuadraticLearningRate
    from vograd.sharding import population_mesh, shard_population

    assert len(jax.devices()) == 2, jax.devices()
    mesh = population_mesh()
    system = QuadraticLearningRate(horizon=8, a=[0.5, 1.0, 1.5], w0=[1.0, -1.0, 2.0])
    theta = jnp.asarray(0.4)
    out = {}
    for name, kwargs in [
        ("merged", dict(num_pairs=8, sigma=0.1, window=4)),
        ("pes", dict(num_pairs=8, sigma=0.1, window=4)),
    ]:
        cls = vograd.Merged if name == "merged" else vograd.PersistentES
        single, sharded = cls(**kwargs), cls(mesh=mesh, **kwargs)
        state1 = single.init(system, theta, jax.random.key(1))
        state2 = eqx.filter_jit(sharded.init)(system, theta, jax.random.key(1))
        leaf = state2.particles.state
        out[name + "_init_shards"] = [s.data.shape[0] for s in leaf.addressable_shards]
        f1, f2 = eqx.filter_jit(single.estimate), eqx.filter_jit(sharded.estimate)
        grads1, grads2 = [], []
        for k in range(2):  # two windows: the sharded state feeds the next one
            g1, state1, d1 = f1(system, theta, state1, jax.random.key(10 + k))
            g2, state2, d2 = f2(system, theta, state2, jax.random.key(10 + k))
            grads1.append(np.asarray(g1).tolist()); grads2.append(np.asarray(g2).tolist())
        out[name + "_single"], out[name + "_sharded"] = grads1, grads2
        out[name + "_state_diff"] = float(jnp.max(jnp.abs(
            state1.particles.state - state2.particles.state)))
        out[name + "_out_shards"] = [
            s.data.shape[0] for s in state2.particles.state.addressable_shards]
        if name == "merged":  # an unsharded estimator on a state placed by hand
            placed = shard_population(single.init(system, theta, jax.random.key(1)), mesh)
            g3, _, _ = f1(system, theta, placed, jax.random.key(10))
            out["merged_placed"] = np.asarray(g3).tolist()
    try:
        vograd.Merged(num_pairs=3, mesh=mesh)
        out["error"] = None
    except ValueError as e:
        out["error"] = str(e)
    print("RESULT" + json.dumps(out))
    """
)


def test_two_device_mesh_matches_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    out = json.loads(line[len("RESULT"):])
    for name in ("merged", "pes"):
        # The population is split 4 + 4 (pairs) over the two devices, in and out.
        assert out[name + "_init_shards"] == [4, 4]
        assert out[name + "_out_shards"] == [4, 4]
        # Same samples, same math; only the cross-device reduction order of
        # the means and variances can differ: float32 rounding, ~1e-7 relative.
        np.testing.assert_allclose(out[name + "_sharded"], out[name + "_single"], rtol=1e-5,
                                   atol=1e-6)
        assert out[name + "_state_diff"] < 1e-5
    np.testing.assert_allclose(out["merged_placed"], out["merged_single"][0], rtol=1e-5, atol=1e-6)
    assert "not divisible" in out["error"]


def test_single_device_helpers():
    mesh = population_mesh(jax.devices()[:1])
    tree = {"x": jnp.arange(6.0).reshape(3, 2), "n": jnp.asarray(3)}
    placed = shard_population(tree, mesh)
    np.testing.assert_array_equal(placed["x"], tree["x"])
    assert constrain_population(tree, None) is tree
    inside = jax.jit(lambda t: constrain_population(t, mesh))(tree)
    np.testing.assert_array_equal(inside["x"], tree["x"])
    est = vograd.EvolutionStrategies(num_pairs=3, sigma=0.1, window=2, mesh=mesh)
    assert est.mesh is mesh
