"""Small systems and a tiny truncated estimator for the training-loop tests.

Also a command-line entry point, so the SIGKILL tests can run training in a
fresh process: ``python tests/train_fixtures.py CKPT_DIR LOG NUM_STEPS
[--sleep S] [--pause-before-rename S]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import vograd
from vograd.estimators import stats
from vograd.estimators.base import Diagnostics, Estimator, EstimatorState
from vograd.unroll import Particle, init_particle, unroll

DIAG = jnp.array([0.1, 0.5, 1.0])


class QuadraticLR(vograd.UnrolledSystem):
    """Learning a log learning rate: ``w <- w - exp(theta) a w`` on
    ``0.5 sum a w^2`` from ``w0 = 1``; per-step noise on w makes samples differ.

    ``p_nan``: the chance that an episode is poisoned (its losses are NaN),
    drawn at each episode start, to test dropping of non-finite samples. It is
    an array (traced), so every ``p_nan`` shares one compilation.
    """

    horizon: int = eqx.field(static=True, default=16)
    p_nan: jax.Array = eqx.field(default_factory=lambda: jnp.zeros(()))

    def __check_init__(self):
        if not isinstance(self.p_nan, jax.Array):
            raise TypeError("p_nan must be a jax array (so that it is traced)")

    def init_theta(self, key):
        return {"log_lr": jnp.asarray(-2.0)}

    def init(self, theta, key):
        poisoned = jax.random.uniform(key) < self.p_nan
        return {"w": jnp.ones(3), "scale": jnp.where(poisoned, jnp.nan, jnp.ones(()))}

    def step(self, theta, state, key):
        w = state["w"] - jnp.exp(theta["log_lr"]) * DIAG * state["w"]
        w = w + 0.01 * jax.random.normal(key, w.shape)
        loss = 0.5 * jnp.sum(DIAG * w**2) * state["scale"]
        return {"w": w, "scale": state["scale"]}, loss


class TinyState(EstimatorState):
    particles: Particle  # batched over the population


class TinyTruncated(Estimator):
    """Truncated backprop over a population of persistent particles (test stand-in)."""

    num_particles: int = eqx.field(static=True, default=4)
    window: int = eqx.field(static=True, default=4)
    chunk: int | None = eqx.field(static=True, default=None)

    def init(self, system, theta, key):
        keys = jax.random.split(key, self.num_particles)
        # Staggered starts, as populations of truncated estimators do.
        ts = jnp.arange(self.num_particles) * (system.horizon // self.num_particles)
        return TinyState(jax.vmap(lambda k, t: init_particle(system, theta, k, t))(keys, ts))

    def estimate(self, system, theta, state, key, *, length=None):
        keys = jax.random.split(key, self.num_particles)

        def one(p, k):
            def loss_fn(th):
                p2, out = unroll(system, th, p, k, self.window, length=length, chunk=self.chunk)
                return out.mean_loss(), p2

            (loss, p2), g = jax.value_and_grad(loss_fn, has_aux=True)(theta)
            return loss, g, p2

        losses, grads, particles = jax.vmap(one)(state.particles, keys)
        keep = stats.finite_per_sample(losses[:, None], grads)
        mean = stats.masked_mean(grads, keep)
        var = stats.tree_total(stats.masked_variance(grads, keep, mean))
        loss = jnp.sum(jnp.where(keep, losses, 0.0)) / jnp.maximum(jnp.sum(keep), 1)
        diag = Diagnostics(
            loss=loss,
            variance={"tbptt": var},
            weight={"tbptt": jnp.ones(())},
            num_dropped=stats.num_dropped(keep),
            num_samples=self.num_particles,
        )
        return mean, TinyState(particles), diag


def theta_bytes(theta) -> list[bytes]:
    """Returns the raw bytes of every leaf (for bit-for-bit comparisons)."""
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(theta)]


# One configuration shared by the test modules, so that within one pytest
# process the outer step compiles once (each compile costs seconds on 2 cores).
SYSTEM = QuadraticLR(horizon=16)
ESTIMATOR = TinyTruncated(num_particles=4, window=8)
OPTIMIZER = vograd.outer_optimizer(0.1, clip_value=1.0)
SCHEDULE = vograd.Constant(8)


def make_run(num_steps: int = 30):
    """Returns the (system, estimator, optimizer, schedule, key) of the kill tests.

    PES on the learning-rate toy: persistent particles of both branches and
    the accumulated perturbation must survive a kill. Jittered windows
    round(7 * U(0.9, 1.1)) in {6, 7, 8} share one bucket (8), so each fresh
    process traces the outer step once; the run does not clip to the episode.
    """
    from vograd.tasks.toys import QuadraticLearningRate

    system = QuadraticLearningRate(horizon=32, a=[0.5, 1.0, 1.5], w0=[1.0, -2.0, 0.5], theta0=0.1)
    estimator = vograd.PersistentES(num_pairs=4, sigma=0.01, window=8)
    schedule = vograd.LinearCurriculum(start=7, end=7, num_steps=num_steps, jitter=0.1)
    return system, estimator, KILL_OPTIMIZER, schedule, jax.random.key(7)


KILL_OPTIMIZER = vograd.outer_optimizer(0.02)


def main(argv: list[str]) -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint_dir")
    parser.add_argument("log")
    parser.add_argument("num_steps", type=int)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--pause-before-rename", type=float, default=0.0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--trace-delay", type=float, default=0.0)
    args = parser.parse_args(argv)

    # Test hooks (this script only): pace the run so the parent can SIGKILL it
    # at a random step, and optionally pause after a checkpoint's temporary
    # file is written but before it is renamed (a kill mid-commit).
    from vograd import checkpoint as ckpt

    real_replace, real_save = ckpt.os.replace, ckpt.save_to_directory

    def slow_replace(src, dst):
        if str(dst).endswith(".vograd"):
            print(f"RENAMING {src}", flush=True)
            time.sleep(args.pause_before_rename)
        real_replace(src, dst)

    def paced_save(*a, **kw):
        path = real_save(*a, **kw)
        print(f"SAVED {kw['step']}", flush=True)
        time.sleep(args.sleep)
        return path

    ckpt.os.replace = slow_replace
    ckpt.save_to_directory = paced_save
    if args.trace_delay:
        # Make the first outer step's trace (and so its compile) last at least this long,
        # whatever the machine's speed: the Python function runs only while tracing.
        train_module = sys.modules["vograd.train"]
        inner = train_module._outer_step.__wrapped__

        def slow_trace(*a, **kw):
            time.sleep(args.trace_delay)
            return inner(*a, **kw)

        train_module._outer_step = eqx.filter_jit(slow_trace)

    system, estimator, optimizer, schedule, key = make_run(args.num_steps)
    print("START", flush=True)
    try:
        result = train_kill_run(args, system, estimator, optimizer, schedule, key)
    except vograd.interrupt.TrainingInterrupted as e:  # what a command-line tool does
        sys.exit(e.exit_code)
    if args.out:
        np.save(args.out, np.asarray(result.theta))
    print("DONE", flush=True)


def train_kill_run(args, system, estimator, optimizer, schedule, key):
    return vograd.train(
        system,
        estimator,
        optimizer,
        args.num_steps,
        key,
        schedule=schedule,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=1,
        clip_to_episode=False,
        log=args.log,
        progress=False,
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])
