"""Careless input to training: seeds, bad systems, two writers, signals, stray files.

(vograd/guards.py, vograd/lock.py, vograd/interrupt.py and their use in vograd/train.py.)
"""

import os
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vograd
from vograd import checkpoint as ckpt
from vograd.estimators.base import Estimator
from vograd.guards import check_seed
from vograd.interrupt import TrainingInterrupted
from vograd.lock import DirectoryLockedError, one_writer

from train_fixtures import ESTIMATOR, OPTIMIZER, SCHEDULE, SYSTEM, QuadraticLR, theta_bytes


def run(num_steps, system=SYSTEM, **kw):
    return vograd.train(
        system, kw.pop("estimator", ESTIMATOR), OPTIMIZER, num_steps, jax.random.key(0),
        schedule=SCHEDULE, clip_to_episode=False, progress=False, **kw,
    )


def test_seeds_are_held_to_one_range(tmp_path):
    assert check_seed(0) == 0 and check_seed(2**32 - 1) == 2**32 - 1
    assert check_seed(np.uint32(7)) == 7
    for seed in (2**32, -1, 2**70):
        with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\) = \[0, 4294967295\]"):
            check_seed(seed)
    for seed in (True, "3", 3.0, None):
        with pytest.raises(TypeError, match="seed must be an integer"):
            check_seed(seed)
    from vograd.recipes import registry, run as runs

    # Checked before the run directory or its config.json is written.
    config = registry.preset("metz2019", "demo")
    with pytest.raises(ValueError, match="seed must be in"):
        runs.train("metz2019", config, tmp_path / "run", seed=2**64)
    assert not (tmp_path / "run").exists()


class NeverEstimated(Estimator):
    """Fails the test if training gets as far as initialising the estimator."""

    window: int = 8

    def init(self, system, theta, key):
        raise AssertionError("the system should have been rejected before the estimator ran")

    def estimate(self, system, theta, state, key, *, length=None):
        raise AssertionError("unreachable")


class IntLoss(QuadraticLR):
    def step(self, theta, state, key):
        state, loss = super().step(theta, state, key)
        return state, (loss * 100).astype(jnp.int32)


class ComplexVectorLoss(QuadraticLR):
    def step(self, theta, state, key):
        state, loss = super().step(theta, state, key)
        return state, jnp.stack([loss, loss]).astype(jnp.complex64)


class DriftingState(QuadraticLR):
    def step(self, theta, state, key):
        state, loss = super().step(theta, state, key)
        return {"w": state["w"].astype(jnp.float16), "scale": state["scale"][None]}, loss


class ExtraState(QuadraticLR):
    def step(self, theta, state, key):
        state, loss = super().step(theta, state, key)
        return {**state, "t": jnp.zeros((), jnp.int32)}, loss


class IntTheta(QuadraticLR):
    def init_theta(self, key):
        return {"log_lr": jnp.asarray(-2, jnp.int32), "mask": jnp.ones(3, bool)}


@pytest.mark.parametrize(
    "system, theta, match",
    [
        (IntLoss(), None, r"loss of dtype int32; it must be real floating point"),
        (ComplexVectorLoss(), None,
         r"loss of shape \(2,\); it must be a scalar, shape \(\); .*loss of dtype complex64"),
        (DriftingState(), None,
         r"state\['scale'\]: system.init gives float32\[\], system.step returns float32\[1\]; "
         r"state\['w'\]: system.init gives float32\[3\], system.step returns float16\[3\]"),
        (ExtraState(), None, "step returns a state of another structure than system.init"),
        (IntTheta(), None,
         r"theta\['log_lr'\] has dtype int32: .*; theta\['mask'\] has dtype bool"),
        (QuadraticLR(), {"log_lr": jnp.asarray(jnp.nan)},
         r"theta\['log_lr'\] has 1 non-finite values \(NaN or inf\) initially"),
    ],
    ids=["int_loss", "complex_vector_loss", "state_dtype_shape", "state_structure", "int_theta",
         "nan_theta"],
)
def test_bad_systems_are_named_before_anything_compiles(system, theta, match):
    with pytest.raises(ValueError, match=f"cannot be trained: .*{match}"):
        run(3, system, estimator=NeverEstimated(), theta=theta)


def test_one_writer_per_checkpoint_directory(tmp_path):
    # The holder loads vograd/lock.py alone (standard library only): no jax import to wait for.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import importlib.util, sys, time\n"
         "spec = importlib.util.spec_from_file_location('lock', sys.argv[2])\n"
         "lock = importlib.util.module_from_spec(spec); spec.loader.exec_module(lock)\n"
         "with lock.one_writer(sys.argv[1]):\n    print('LOCKED', flush=True); time.sleep(120)",
         str(tmp_path), vograd.lock.__file__],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        with pytest.raises(DirectoryLockedError, match=rf"in use by another vograd process \(pid {holder.pid} on "):
            run(2, checkpoint_dir=tmp_path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert vograd.list_checkpoints(tmp_path) == []  # the refused run wrote nothing
    # A killed holder's lock is gone with it (the kernel's flock): training runs.
    assert run(2, checkpoint_dir=tmp_path).step == 2
    # In one process, a second writer is refused too (each call opens the lock anew).
    with one_writer(tmp_path):
        with pytest.raises(DirectoryLockedError, match=f"pid {os.getpid()} on"):
            run(3, checkpoint_dir=tmp_path)


def test_sigint_stops_at_the_next_step_with_a_checkpoint_then_resumes_bit_identical(tmp_path, capfd):
    whole = run(8)
    before = signal.getsignal(signal.SIGINT)

    def interrupt(record):
        if record["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as err:
        run(8, checkpoint_dir=tmp_path, checkpoint_every=100, log=interrupt)
    assert (err.value.step, err.value.signum, err.value.exit_code) == (3, signal.SIGINT, 130)
    assert [s for s, _ in vograd.list_checkpoints(tmp_path)] == [3]
    lines = capfd.readouterr().err.splitlines()
    assert lines == [
        "vograd: SIGINT: stopping after this outer step with a checkpoint (send it again to exit at once)",
        f"vograd: SIGINT: stopped after outer step 3 of 8; checkpoint in {tmp_path}; run again to resume",
    ]
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    resumed = run(8, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 3
    assert theta_bytes(resumed.theta) == theta_bytes(whole.theta)
    assert theta_bytes(resumed.opt_state) == theta_bytes(whole.opt_state)


def test_stray_checkpoint_with_a_later_name_is_reported_not_trusted(tmp_path):
    run(5, checkpoint_dir=tmp_path, checkpoint_every=1)
    assert [s for s, _ in vograd.list_checkpoints(tmp_path)] == [4, 5]
    shutil.copy(tmp_path / "checkpoint_000000004.vograd", tmp_path / "checkpoint_000000050.vograd")
    with pytest.raises(vograd.CheckpointError,
                       match="checkpoint_000000050.vograd records step 4, its name says 50"):
        run(8, checkpoint_dir=tmp_path)
    # Nothing was rotated away.
    assert [s for s, _ in vograd.list_checkpoints(tmp_path)] == [4, 5, 50]


def test_every_kind_of_stale_temporary_is_removed_on_the_next_start(tmp_path):
    ck, dead, live = tmp_path / "checkpoints", 2**22 + 1, os.getppid()
    ck.mkdir()
    hexa = "0123456789abcdef"
    stale = [
        ck / f".checkpoint_000000003.vograd.tmp-{live}-{hexa}",  # locked dir: any writer's
        ck / f".checkpoint_000000002.vograd.tmp-{dead}",  # the older naming
        tmp_path / f".metrics.jsonl.tmp-{dead}-{hexa}",
        tmp_path / f".theta.ckpt.tmp-{dead}",
        tmp_path / f".config.json.tmp-{dead}-{hexa}",
    ]
    kept = [
        tmp_path / f".config.json.tmp-{live}-{hexa}",  # a live writer, unlocked directory
        tmp_path / f".notes.txt.tmp-{dead}",  # not a vograd temporary
    ]
    for p in stale + kept:
        p.write_bytes(b"half")
    run(2, checkpoint_dir=ck, log=tmp_path / "metrics.jsonl")
    assert [p.name for p in stale if p.exists()] == []
    assert all(p.exists() for p in kept)
