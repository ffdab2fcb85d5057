"""Tests of vograd.unroll: episode resets, masking, dynamic length, chunking, populations."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from vograd.tasks.toys import LinearQuadratic
from vograd import UnrolledSystem, init_particle, unroll


class Counter(UnrolledSystem):
    """State counts steps since init; the step loss is the new count."""

    horizon: int = eqx.field(static=True, default=3)

    def init_theta(self, key):
        return jnp.zeros(())

    def init(self, theta, key):
        return jnp.zeros(()) + 0.0 * theta

    def step(self, theta, s, key):
        return s + 1.0, s + 1.0 + 0.0 * theta


def _lq():
    return LinearQuadratic.random(jax.random.key(3), horizon=8, noise=0.3)


def test_resets_at_the_horizon_and_counts_steps():
    system = Counter()
    p = init_particle(system, jnp.zeros(()), jax.random.key(0))
    p, out = unroll(system, jnp.zeros(()), p, jax.random.key(1), 7)
    # horizon 3: counts 1,2,3 then a fresh episode before steps 3 and 6.
    np.testing.assert_array_equal(out.losses, [1, 2, 3, 1, 2, 3, 1])
    np.testing.assert_array_equal(out.is_reset, [0, 0, 0, 1, 0, 0, 1])
    assert bool(out.mask.all())
    assert int(p.t) == 1 and float(p.state) == 1.0


def test_masking_skips_slots_past_length():
    system = Counter(horizon=10)
    p = init_particle(system, jnp.zeros(()), jax.random.key(0))
    p, out = unroll(system, jnp.zeros(()), p, jax.random.key(1), 7, length=5)
    np.testing.assert_array_equal(out.mask, [1, 1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(out.losses, [1, 2, 3, 4, 5, 0, 0])
    # The mean runs over the 5 steps that ran: (1+2+3+4+5)/5.
    assert float(out.mean_loss()) == 3.0
    assert int(p.t) == 5


def test_dynamic_length_equals_shorter_static_window_bit_for_bit():
    system = _lq()
    theta = jnp.array([0.3, -0.2, 0.1])
    p0 = init_particle(system, theta, jax.random.key(0))
    key = jax.random.key(1)

    @jax.jit
    def long(theta, length):
        p, out = unroll(system, theta, p0, key, 12, length=length)
        return p, out

    @jax.jit
    def short(theta):
        return unroll(system, theta, p0, key, 7)

    p_long, out_long = long(theta, 7)
    p_short, out_short = short(theta)
    # Step keys depend only on the slot index, and skipped slots do nothing:
    # the 7 steps that ran are the same computation, so equal to the bit.
    np.testing.assert_array_equal(out_long.losses[:7], out_short.losses)
    np.testing.assert_array_equal(p_long.state, p_short.state)
    g_long = jax.jit(jax.grad(lambda th: long(th, 7)[1].mean_loss()))(theta)
    g_short = jax.jit(jax.grad(lambda th: short(th)[1].mean_loss()))(theta)
    np.testing.assert_array_equal(g_long, g_short)


def test_chunked_equals_unchunked_values_and_gradients():
    system = _lq()
    theta = jnp.array([0.3, -0.2, 0.1])
    p0 = init_particle(system, theta, jax.random.key(0))
    key = jax.random.key(1)

    def loss(theta, chunk, length):
        return unroll(system, theta, p0, key, 16, chunk=chunk, length=length)[1].mean_loss()

    for length in (16, 11):
        v0, g0 = jax.jit(jax.value_and_grad(lambda th: loss(th, None, length)))(theta)
        v1, g1 = jax.jit(jax.value_and_grad(lambda th: loss(th, 4, length)))(theta)
        # Recomputation replays the same float ops; allow only reassociation noise.
        np.testing.assert_allclose(v1, v0, rtol=1e-6)
        np.testing.assert_allclose(g1, g0, rtol=1e-5, atol=1e-6)


def test_population_axis_reset_matches_plain_vmap():
    system = Counter(horizon=5)
    theta = jnp.zeros(())
    t0 = jnp.array([0, 2, 4, 1])  # staggered: episodes end at different steps
    particles = jax.vmap(lambda t: init_particle(system, theta, jax.random.key(0), t))(t0)
    keys = jax.random.split(jax.random.key(1), 4)

    def run(axis):
        f = lambda p, k: unroll(system, theta, p, k, 9, population_axis=axis)  # noqa: E731
        return jax.jit(jax.vmap(f, axis_name="pop"))(particles, keys)

    p_a, out_a = run("pop")
    p_b, out_b = run(None)
    np.testing.assert_array_equal(out_a.losses, out_b.losses)
    np.testing.assert_array_equal(out_a.is_reset, out_b.is_reset)
    np.testing.assert_array_equal(p_a.t, p_b.t)
    # The particle started at t=4 resets before its second step.
    np.testing.assert_array_equal(out_a.losses[2, :3], [1, 1, 2])
