"""A custom UnrolledSystem: tuning the step size and damping of a noisy oscillator.

Run it: ``python docs/examples/custom_system.py``. The test suite runs this file
(tests/test_docs_examples.py), so the code in docs/custom_system.md stays correct.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import vograd


class DampedOscillator(vograd.UnrolledSystem):
    """A particle pulled towards ``target`` by a spring, with random kicks.

    theta = (log_dt, damping). State: position and velocity. Each step takes
    one semi-implicit Euler step and returns the squared distance to target.
    """

    horizon: int = eqx.field(static=True, default=50)  # steps per episode
    target: float = eqx.field(static=True, default=1.0)
    kick: float = eqx.field(static=True, default=0.05)

    def init_theta(self, key):
        return {"log_dt": jnp.asarray(-2.0), "damping": jnp.asarray(0.1)}

    def init(self, theta, key):
        # A random start: randomness comes only from the keys we are given.
        x0 = jax.random.normal(key, ())
        return jnp.stack([x0, jnp.zeros(())])

    def step(self, theta, state, key):
        x, v = state[0], state[1]
        dt = jnp.exp(theta["log_dt"])
        # Same key, same kick: antithetic branches see the same noise.
        force = -(x - self.target) - theta["damping"] * v
        v = v + dt * force + self.kick * jax.random.normal(key, ())
        x = x + dt * v
        return jnp.stack([x, v]), (x - self.target) ** 2


def main(num_steps: int = 20, seed: int = 0):
    """Returns (initial, final) mean episode loss after outer-training theta."""
    system = DampedOscillator()
    estimator = vograd.Merged(num_pairs=8, sigma=0.05, window=10)
    optimizer = optax.adam(0.05)

    key_theta, key_state, key_run = jax.random.split(jax.random.key(seed), 3)
    theta = system.init_theta(key_theta)
    state = estimator.init(system, theta, key_state)
    opt_state = optimizer.init(theta)

    @eqx.filter_jit
    def outer_step(theta, opt_state, state, key):
        grad, state, diag = estimator.estimate(system, theta, state, key)
        updates, opt_state = optimizer.update(grad, opt_state, theta)
        # Skip the update when every sample was non-finite.
        theta = jax.tree.map(
            lambda t, u: jnp.where(diag.all_dropped, t, t + u), theta, updates
        )
        return theta, opt_state, state, diag

    @eqx.filter_jit
    def evaluate(theta, key):
        # Judge theta on 16 whole fresh episodes (no estimator needed).
        def episode(k):
            particle = vograd.init_particle(system, theta, k)
            _, out = vograd.unroll(system, theta, particle, k, system.horizon)
            return out.mean_loss()

        return jnp.mean(jax.vmap(episode)(jax.random.split(key, 16)))

    before = evaluate(theta, jax.random.key(123))
    for key in jax.random.split(key_run, num_steps):
        theta, opt_state, state, diag = outer_step(theta, opt_state, state, key)
    after = evaluate(theta, jax.random.key(123))
    return float(before), float(after)


if __name__ == "__main__":
    before, after = main()
    print(f"mean episode loss: {before:.3f} -> {after:.3f}")
