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


def test_shipped_metz2019_small_trains_held_out_tasks_like_tuned_adam():
    """The shipped optimizer on held-out Fashion-MNIST tasks (test class pool, never seen
    in outer training), 300 steps (its training horizon), same data for every optimizer."""
    from recipes.evaluation import InnerSchedule, inner_curves
    from tasks.problems import ImageMLPFamily

    assert "metz2019-small" in pretrained.names()
    meta = pretrained.info("metz2019-small")
    assert meta["command"] == "vograd train metz2019 --preset small --seed 0 --out RUN_DIR"
    assert meta["step"] == 1400
    family = ImageMLPFamily("fashion_mnist", "test", hidden=(32,), batch_size=128, downsample=2)
    schedule = InnerSchedule(300, 30, 2)
    tasks = jax.vmap(family.sample)(jax.random.split(jax.random.key(0), 3))
    keys = jax.random.split(jax.random.key(1), 3)

    def mean_train_loss(opt):
        curves = jax.jit(jax.vmap(lambda t, k: inner_curves(family, lambda _: opt, None, t, k, schedule)))
        train, _ = curves(tasks, keys)
        assert np.all(np.isfinite(train))
        return np.asarray(train)

    learned = mean_train_loss(pretrained.load("metz2019-small"))
    adam = {lr: mean_train_loss(optax.adam(lr)) for lr in (1e-3, 1e-2, 3e-2)}
    # Loss falls by more than half from the first 30 steps to the last 30.
    assert np.all(learned[:, -1] < 0.6 * learned[:, 0])
    # Better than Adam at its usual default, and level with (here: below) Adam at the
    # better of 1e-2 / 3e-2, the learning rates tuning picks on these tasks (measured per
    # task: 0.16, 0.82, 0.63x the former; 0.85, 0.98, 0.95x the latter; the 3% slack
    # absorbs floating-point differences between CPUs over 300 chaotic steps).
    avg = learned.mean(axis=1)
    assert np.all(avg < 0.9 * adam[1e-3].mean(axis=1))
    assert np.all(avg < 1.03 * np.minimum(adam[1e-2].mean(axis=1), adam[3e-2].mean(axis=1)))
