"""vograd.interop.npz: theta and the optimizer spec in a .npz that numpy alone reads."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vograd.tasks.pretrained
from vograd.interop import npz
from vograd.tasks.optimizers import LSTMOptimizer


def test_round_trip_gives_the_same_optimizer_and_updates(tmp_path):
    lopt, theta = vograd.tasks.pretrained.load_optimizer("metz2019-small")
    path = npz.save(tmp_path / "opt.npz", lopt, theta, metadata={"source": "metz2019-small"})
    lopt2, theta2 = npz.load(path)
    assert lopt2 == lopt
    for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(theta2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # bit for bit
    params = {"w": jnp.linspace(-1, 1, 6).reshape(3, 2)}
    grads = {"w": jnp.full((3, 2), 0.5)}
    u1, _ = lopt.as_optax(theta).update(grads, lopt.as_optax(theta).init(params), params)
    u2, _ = lopt2.as_optax(theta2).update(grads, lopt2.as_optax(theta2).init(params), params)
    np.testing.assert_array_equal(np.asarray(u1["w"]), np.asarray(u2["w"]))


def test_numpy_alone_reads_the_file(tmp_path):
    lopt, theta = vograd.tasks.pretrained.load_optimizer("metz2019-small")
    path = npz.save(tmp_path / "opt.npz", lopt, theta)
    # A fresh interpreter in which importing jax or vograd fails.
    code = (
        "import sys, json; sys.modules['jax'] = None; sys.modules['vograd'] = None\n"
        "import numpy as np\n"
        f"with np.load({str(path)!r}, allow_pickle=False) as f:\n"
        "    header = json.loads(str(f['header']))\n"
        "    theta = {n: f[n] for n in header['theta']}\n"
        f"np.savez({str(tmp_path / 'copy.npz')!r}, **theta)\n"
        "print(json.dumps(header['optimizer']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == vograd.tasks.pretrained.optimizer_spec(lopt)
    copy = np.load(tmp_path / "copy.npz")
    assert sorted(copy.files) == ["theta/b1", "theta/b2", "theta/w1", "theta/w2"]
    np.testing.assert_array_equal(copy["theta/w1"], np.asarray(theta.w1))
    np.testing.assert_array_equal(copy["theta/b2"], np.asarray(theta.b2))


def test_weights_of_another_architecture_are_refused(tmp_path):
    lopt, theta = vograd.tasks.pretrained.load_optimizer("metz2019-small")
    path = npz.save(tmp_path / "opt.npz", lopt, theta)
    header, arrays = npz.read(path)
    header["optimizer"]["fields"]["hidden"] = 16  # spec says 16 hidden units, weights have 32
    np.savez(tmp_path / "bad.npz", header=np.array(json.dumps(header)), **arrays)
    with pytest.raises(ValueError, match="theta/w1 is float32"):
        npz.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="must end in .npz"):
        npz.save(tmp_path / "opt.bin", lopt, theta)


def test_other_optimizer_families_round_trip(tmp_path):
    lopt = LSTMOptimizer()
    theta = lopt.init_theta(jax.random.key(3))
    lopt2, theta2 = npz.load(npz.save(tmp_path / "lstm.npz", lopt, theta))
    assert lopt2 == lopt
    for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(theta2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
