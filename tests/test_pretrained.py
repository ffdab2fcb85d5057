"""tasks.pretrained: shipped learned optimizers load as optax transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tasks import pretrained
from tasks.optimizers import LSTMOptimizer, MLPOptimizer
from vograd.checkpoint import CheckpointError


def test_save_load_round_trip_rebuilds_the_optimizer(tmp_path):
    lopt = MLPOptimizer(use_time=False, hidden=8)
    theta = lopt.init_theta(jax.random.key(3))
    pretrained.save(tmp_path / "mine.ckpt", lopt, theta, step=7, metadata={"seed": 5})
    assert pretrained.names(tmp_path) == ("mine",)
    got, got_theta = pretrained.load_optimizer("mine", tmp_path)
    assert got == lopt
    for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(got_theta)):
        np.testing.assert_array_equal(a, b)
    meta = pretrained.info("mine", tmp_path)
    assert meta["seed"] == 5 and meta["step"] == 7 and meta["optimizer"]["class"] == "MLPOptimizer"
    # As an optax transformation it gives the same update as the optimizer itself.
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}
    grads = {"w": jnp.linspace(0.5, -0.5, 6)}
    opt = pretrained.load("mine", tmp_path)
    assert isinstance(opt, optax.GradientTransformation)
    updates, _ = opt.update(grads, opt.init(params), params)
    want, _ = lopt.update(theta, grads, lopt.init(theta, params), params)
    np.testing.assert_allclose(updates["w"], want["w"], rtol=1e-6)


def test_unknown_name_corrupt_file_and_wrong_architecture_are_clear_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown pretrained optimizer 'nope'"):
        pretrained.load("nope", tmp_path)
    lopt = MLPOptimizer()
    pretrained.save(tmp_path / "a.ckpt", lopt, lopt.init_theta(jax.random.key(0)), step=1)
    data = bytearray((tmp_path / "a.ckpt").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "b.ckpt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        pretrained.load("b", tmp_path)
    # Weights of a 32-unit MLP under a header claiming 8 units: structure mismatch.
    raw = (tmp_path / "a.ckpt").read_bytes().replace(b'"hidden": 32', b'"hidden": 8', 1)
    (tmp_path / "c.ckpt").write_bytes(raw)
    with pytest.raises(CheckpointError):
        pretrained.load("c", tmp_path)
    with pytest.raises(TypeError, match="cannot export"):
        pretrained.optimizer_spec(object())
    assert pretrained.build_optimizer(pretrained.optimizer_spec(LSTMOptimizer())) == LSTMOptimizer()
