"""Running a window of steps of an `UnrolledSystem`, with episode resets."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from vograd.system import State, Theta, UnrolledSystem


class WindowLength(eqx.Module):
    """A dynamic window length already checked against its window on the host
    (`vograd.estimators.config.window_length`); `vograd.train` passes one to
    ``estimate``. `unroll` takes it like an int, so an estimator may pass it on as is."""

    value: Int[Array, ""]


class Particle(eqx.Module):
    """One episode in progress: the inner ``state`` after ``t`` steps.

    ``t`` counts steps since the episode's ``init``; when it reaches the
    system's ``horizon`` the next step first starts a fresh episode. One
    particle has a scalar ``t``; a population stacks particles along leading
    axes (``[P]``, or ``[P, branches]``), and ``t`` then carries those axes.
    """

    state: State
    t: Int[Array, "*batch"]


class UnrollOutput(eqx.Module):
    """Per-step records of one window of ``num_steps`` slots.

    - ``losses[i]``: the loss of step ``i`` (0 where ``mask`` is False);
    - ``mask[i]``: step ``i`` ran (False for slots past a shorter ``length``);
    - ``is_reset[i]``: a fresh episode was started just before step ``i``.
    """

    losses: Float[Array, " num_steps"]
    mask: Bool[Array, " num_steps"]
    is_reset: Bool[Array, " num_steps"]

    def mean_loss(self) -> Float[Array, ""]:
        """Returns the window's outer loss, the mean of the steps that ran."""
        total = jnp.sum(jnp.where(self.mask, self.losses, 0.0))
        return total / jnp.maximum(jnp.sum(self.mask), 1)


def init_particle(
    system: UnrolledSystem, theta: Theta, key: PRNGKeyArray, t: int | Array = 0
) -> Particle:
    """Returns a fresh episode; ``t > 0`` shortens this first episode to
    ``horizon - t`` steps, which is how populations are staggered."""
    return Particle(system.init(theta, key), jnp.asarray(t, dtype=jnp.int32))


def step_key(key: PRNGKeyArray, i: Int[Array, ""]) -> tuple[PRNGKeyArray, PRNGKeyArray]:
    """Returns the (reset, step) keys of slot ``i`` of a window drawn with ``key``."""
    k_reset, k_step = jax.random.split(jax.random.fold_in(key, i))
    return k_reset, k_step


def unroll(
    system: UnrolledSystem,
    theta: Theta,
    particle: Particle,
    key: PRNGKeyArray,
    num_steps: int,
    *,
    length: int | Int[Array, ""] | WindowLength | None = None,
    chunk: int | None = None,
    unroll: int | bool = 1,
    population_axis: str | tuple[str, ...] | None = None,
) -> tuple[Particle, UnrollOutput]:
    """Returns the particle after a window and the window's per-step records.

    Runs ``num_steps`` slots (static: the compiled size) with ``lax.scan``.
    Only the first ``length`` slots run (dynamic, default ``num_steps``), so one
    compilation serves every window up to ``num_steps``; when ``length`` is not
    batched, skipped slots cost nothing (a real ``lax.cond``).

    Episode ends: before step ``i``, a particle with ``t >= horizon`` restarts
    from ``system.init(theta, k_reset)``. Under ``jax.vmap`` a batched
    predicate would make ``lax.cond`` compute ``init`` on every step; pass the
    vmap's ``axis_name`` as ``population_axis`` (for nested vmaps, the tuple of
    their names) and the reset branch runs only on steps where some particle of
    the population finishes.

    ``chunk``: split the window into ``num_steps // chunk`` chunks, each under
    ``jax.checkpoint``. Reverse mode then stores one state per chunk plus one
    chunk's activations (memory ~ num_steps / chunk + chunk states instead of
    num_steps). ``unroll`` is forwarded to the inner ``lax.scan`` (unrolling
    matters for convolutions on CPU).

    Step keys are ``fold_in(key, i)``: equal keys give equal data, so
    antithetic branches see the same minibatches.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    chunk = num_steps if chunk is None else int(chunk)
    if chunk < 1 or num_steps % chunk:
        raise ValueError(
            f"chunk ({chunk}) must be a positive divisor of num_steps ({num_steps})"
        )
    if isinstance(length, WindowLength):
        length = length.value
    length = jnp.asarray(num_steps if length is None else length, dtype=jnp.int32)
    loss_dtype = jnp.result_type(float)

    def one_step(p: Particle, xs):
        i, k_reset, k_step = xs
        done = p.t >= system.horizon
        if population_axis is None:
            any_done = done
        else:
            any_done = jax.lax.psum(done.astype(jnp.int32), population_axis) > 0

        def reset(p: Particle) -> Particle:
            fresh = init_particle(system, theta, k_reset)
            return jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, p)

        p = jax.lax.cond(any_done, reset, lambda p: p, p)
        state, loss = system.step(theta, p.state, k_step)
        out = (jnp.asarray(loss, loss_dtype), jnp.asarray(True), done)
        return Particle(state, p.t + 1), out

    def skip_step(p: Particle, xs):
        del xs
        return p, (jnp.zeros((), loss_dtype), jnp.asarray(False), jnp.asarray(False))

    def masked_step(p: Particle, xs):
        return jax.lax.cond(xs[0] < length, one_step, skip_step, p, xs)

    def run_chunk(p: Particle, c: Int[Array, ""]):
        i = c * chunk + jnp.arange(chunk)
        # The chunk's keys in one vectorized draw rather than two PRNG calls per
        # step inside the loop (on CPU each call is a small loop of its own).
        k_reset, k_step = jax.vmap(step_key, in_axes=(None, 0))(key, i)
        return jax.lax.scan(masked_step, p, (i, k_reset, k_step), unroll=unroll)

    num_chunks = num_steps // chunk
    if num_chunks == 1:
        particle, (losses, mask, is_reset) = run_chunk(particle, jnp.asarray(0))
    else:

        def skip_chunk(p: Particle, c: Int[Array, ""]):
            del c
            zeros = jnp.zeros((chunk,), loss_dtype)
            no = jnp.zeros((chunk,), bool)
            return p, (zeros, no, no)

        @jax.checkpoint
        def chunk_body(p: Particle, c: Int[Array, ""]):
            return jax.lax.cond(c * chunk < length, run_chunk, skip_chunk, p, c)

        particle, outs = jax.lax.scan(chunk_body, particle, jnp.arange(num_chunks))
        losses, mask, is_reset = (x.reshape(num_steps) for x in outs)
    return particle, UnrollOutput(losses, mask, is_reset)
