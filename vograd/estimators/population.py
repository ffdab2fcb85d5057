"""A population of branches run over one window, and the persistent particles.

Every estimator reduces to: stack ``B`` branches (a parameter vector, a starting
particle and a key each), run them through one window under ``jax.vmap``
(axis name `POPULATION`, passed on to `vograd.unroll` so episode resets are
computed only when some branch finishes), optionally differentiating each
branch's window loss, and keep the particles for the next window.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import Array, Bool, Float, Int, Key, PRNGKeyArray, UInt32

from vograd.estimators.base import EstimatorState
from vograd.estimators.sampling import merge_pairs, split_pairs
from vograd.sharding import constrain_population
from vograd.system import Theta, UnrolledSystem
from vograd.unroll import Particle, UnrollOutput, init_particle, unroll

POPULATION = "vograd_population"  # the vmap axis name of the population
PAIR = "vograd_pair"  # the inner vmap axis of an antithetic pair (`run_population`'s ``shared_pairs``)

Tree = Any


def as_key(key: PRNGKeyArray) -> PRNGKeyArray:
    """Returns ``key`` as a typed key (raw ``uint32[2]`` keys are wrapped)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def window_keys(key: PRNGKeyArray) -> tuple[PRNGKeyArray, PRNGKeyArray]:
    """Returns the (head, tail) keys of a window split for burn-in."""
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


class WindowSpec(eqx.Module):
    """Static shape of one window: ``num_steps`` compiled slots, split into a
    head and a ``tail``-step tail when burn-in needs the state ``tail`` steps
    before the end; ``fresh``: every branch starts a new episode under its own
    theta (full-episode estimators)."""

    num_steps: int = eqx.field(static=True)
    chunk: int | None = eqx.field(static=True)
    unroll: int | bool = eqx.field(static=True)
    tail: int = eqx.field(static=True)
    fresh: bool = eqx.field(static=True)


class Replay(eqx.Module):
    """What burn-in needs to re-run the end of the previous window under the
    current theta: the particle ``length`` steps before that window ended, and
    the key data of those steps (the same data is replayed)."""

    start: Particle  # leaves [P, ...]
    key: UInt32[Array, "P 2"]
    length: Int[Array, ""]


class PopulationState(EstimatorState):
    """Persistent particles of a truncated estimator: one per sample.

    ``particles``: where each sample's episode stands after the last window
    (for antithetic pairs, the ``theta + eps`` branch); ``replay``: the
    burn-in record, None without burn-in.
    """

    particles: Particle  # leaves [P, ...]
    replay: Replay | None


class BranchRecords(eqx.Module):
    """Per-branch results of a window; every leaf has a leading ``[B]`` axis."""

    loss: Float[Array, "*B"]  # built per branch under vmap: scalar there, [B] after
    grad: Tree | None
    particle: Particle
    anchor: Particle | None  # particle ``tail`` steps before the end (burn-in)
    output: UnrollOutput


def run_window(
    system: UnrolledSystem,
    theta: Theta,
    particle: Particle | None,
    key: PRNGKeyArray,
    spec: WindowSpec,
    length: Int[Array, ""],
    axes: str | tuple[str, ...] = POPULATION,
) -> tuple[Particle, Particle | None, UnrollOutput]:
    """Returns (end particle, burn-in anchor, per-step records) of one branch.

    Must run under ``jax.vmap`` over the axis names ``axes``.
    """
    kwargs = dict(unroll=spec.unroll, population_axis=axes)
    if spec.fresh:
        k_init, key = jax.random.split(key)
        particle = init_particle(system, theta, k_init)
    if spec.tail == 0:
        particle, out = unroll(
            system, theta, particle, key, spec.num_steps, length=length, chunk=spec.chunk, **kwargs
        )
        return particle, None, out
    k_head, k_tail = window_keys(key)
    tail = jnp.minimum(length, spec.tail)
    anchor, head = unroll(
        system, theta, particle, k_head, spec.num_steps, length=length - tail,
        chunk=spec.chunk, **kwargs,
    )
    particle, tail_out = unroll(system, theta, anchor, k_tail, spec.tail, length=tail, **kwargs)
    out = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), head, tail_out)
    return particle, anchor, out


def run_population(
    system: UnrolledSystem,
    thetas: Tree,
    particles: Particle | None,
    keys: Key[Array, " B"],
    spec: WindowSpec,
    length: Int[Array, ""],
    *,
    with_grad: bool,
    mesh: Mesh | None = None,
    mesh_axis: str = "population",
    shared_pairs: bool = False,
) -> BranchRecords:
    """Returns the records of ``B`` branches run through one window.

    ``thetas``, ``particles`` (None for fresh episodes) and ``keys`` carry a
    leading ``[B]`` axis. With ``with_grad`` each branch also returns
    ``grad_theta`` of its window loss (the mean of the steps that ran);
    gradients flow only within the window, never into the starting particle.

    ``shared_pairs``: antithetic pairs, ``thetas`` ``[2P]`` (pair ``i``'s branches at
    ``2i`` and ``2i + 1``) and ``particles`` and ``keys`` ``[P]``, one per pair. Each
    pair runs as an inner ``vmap`` (axis `PAIR`) over its two thetas with the particle
    and key unbatched, so whatever does not depend on theta, such as the step's data
    batch, is computed once per pair. On the 784-16-10 MLP the pair's first-layer
    products become one: ES 12-18% faster per estimate (docs/performance.md). The
    records are ``[2P]`` as without it; the numbers agree up to float32 rounding.
    The windowed estimators use it without ``with_grad`` only: with it, XLA:CPU
    (jax 0.10.2) crashed on a CNN's reverse pass.
    """
    thetas, particles = constrain_population((thetas, particles), mesh, mesh_axis)
    axes = (POPULATION, PAIR) if shared_pairs else POPULATION

    def one(theta_b, particle, key):
        def loss_fn(th):
            p, anchor, out = run_window(system, th, particle, key, spec, length, axes)
            return out.mean_loss(), (p, anchor, out)

        if with_grad:
            (loss, aux), grad = jax.value_and_grad(loss_fn, has_aux=True)(theta_b)
        else:
            (loss, aux), grad = loss_fn(theta_b), None
        return BranchRecords(loss, grad, *aux)

    if shared_pairs:
        def pair(theta_pair, particle, key):
            return jax.vmap(lambda th: one(th, particle, key), axis_name=PAIR)(theta_pair)

        records = jax.vmap(pair, axis_name=POPULATION)(split_pairs(thetas), particles, keys)
        records = merge_pairs(records)
    else:
        records = jax.vmap(one, axis_name=POPULATION)(thetas, particles, keys)
    return constrain_population(records, mesh, mesh_axis)


def init_particles(
    system: UnrolledSystem, theta: Theta, key: PRNGKeyArray, num: int, *, stagger: bool
) -> Particle:
    """Returns ``num`` fresh particles (leaves ``[num, ...]``).

    ``stagger``: particle ``i`` starts at a step ``t_i ~ U{0, ..., horizon-1}``,
    so its first episode lasts ``horizon - t_i`` steps and the population's
    episodes end at different windows.
    """
    k_init, k_t = jax.random.split(key)
    if stagger:
        t = jax.random.randint(k_t, (num,), 0, system.horizon, dtype=jnp.int32)
    else:
        t = jnp.zeros((num,), jnp.int32)
    keys = jax.random.split(k_init, num)
    return jax.vmap(lambda k, t_i: init_particle(system, theta, k, t_i))(keys, t)


def init_population_state(
    system: UnrolledSystem,
    theta: Theta,
    key: PRNGKeyArray,
    num: int,
    *,
    stagger: bool,
    burn_in: bool,
) -> PopulationState:
    """Returns fresh persistent particles, with an empty replay record when ``burn_in``."""
    particles = init_particles(system, theta, key, num, stagger=stagger)
    replay = None
    if burn_in:
        keys = jax.random.key_data(jax.random.split(key, num))
        replay = Replay(particles, keys, jnp.zeros((), jnp.int32))
    return PopulationState(particles, replay)


def replay_burn_in(
    system: UnrolledSystem, theta: Theta, state: PopulationState, spec: WindowSpec
) -> Particle:
    """Returns the particles to start the next window from.

    Without a replay record: ``state.particles``. With one: the stored state
    from ``replay.length`` steps before the last window's end, run again for
    those steps on the same data under the current ``theta`` (no gradient), so
    the window starts from a state produced by the current parameters rather
    than by the older, perturbed ones (hysteresis).
    """
    if state.replay is None or spec.tail == 0:
        return state.particles
    theta = jax.lax.stop_gradient(theta)
    replay = state.replay

    def one(particle, key_data):
        key = jax.random.wrap_key_data(key_data)
        return unroll(
            system, theta, particle, key, spec.tail, length=replay.length,
            unroll=spec.unroll, population_axis=POPULATION,
        )[0]

    return jax.vmap(one, axis_name=POPULATION)(replay.start, replay.key)


def check_state(state: Any, num: int) -> None:
    """Raises a ValueError unless ``state`` holds particles for ``num`` samples."""
    if not isinstance(state, EstimatorState):
        raise ValueError(
            "this truncated estimator needs the state returned by its init(); got "
            f"{type(state).__name__}"
        )
    sizes = {x.shape[0] for x in jax.tree.leaves(state.particles)}
    if sizes != {num}:
        raise ValueError(
            f"estimator state holds {sorted(sizes)} particles but the estimator has {num} "
            "samples; was it created by another estimator configuration?"
        )


def where_kept(keep: Bool[Array, " P"], kept: Tree, other: Tree) -> Tree:
    """Returns ``kept`` where ``keep`` and ``other`` elsewhere, per leading index."""
    return jax.tree.map(
        lambda a, b: jnp.where(keep.reshape(keep.shape + (1,) * (a.ndim - 1)), a, b),
        kept,
        other,
    )


def restart_dropped(
    system: UnrolledSystem,
    theta: Theta,
    particles: Particle,
    keep: Bool[Array, " P"],
    key: PRNGKeyArray,
    *,
    branches: int | None = None,
) -> Particle:
    """Returns ``particles`` with every dropped sample restarted as a fresh episode.

    A sample is dropped when its loss or gradient was non-finite; its state is
    likely non-finite too and would poison every later window. Leaves are
    ``[P, ...]`` (``branches=None``) or ``[P, branches, ...]`` (online ES,
    where all branches of a sample restart from the same fresh state). The fresh episodes
    are only computed when something was dropped.
    """
    num = keep.shape[0]

    def restart(p):
        fresh = init_particles(system, jax.lax.stop_gradient(theta), key, num, stagger=False)
        if branches is not None:
            fresh = jax.tree.map(
                lambda x: jnp.broadcast_to(x[:, None], (num, branches) + x.shape[1:]), fresh
            )
        return where_kept(keep, p, fresh)

    return jax.lax.cond(jnp.all(keep), lambda p: p, restart, particles)
