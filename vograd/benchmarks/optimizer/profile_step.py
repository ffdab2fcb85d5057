"""Where one learned-optimizer inner step spends its time, forward and reverse.

    python -m vograd.benchmarks.optimizer.profile_step [--downsample 1|2] [--population 8]

The Metz 2019 MLP optimizer on the Fashion-MNIST MLP tasks of the ``demo``
preset (one hidden layer of 32, batch 64, 28x28 or 14x14 inputs), a
population of particles vmapped as in an estimator. Each part is jitted and
timed alone (median of 20 calls after compiling), all in one run:

- ``inner value_and_grad``: batch, loss and gradient of the inner problem;
- ``inner VJP``: reverse mode through it (second order, as the
  reparameterization gradient through an unroll needs);
- ``LO update`` and ``LO update VJP``: the learned optimizer alone;
- ``system step`` and ``system step VJP``: everything one unroll step does.

Ratios to ``inner value_and_grad`` are printed beside the times.
"""

from __future__ import annotations

import argparse
import time

import jax


def _time(fn, *args, repeats: int = 20) -> float:
    fn = jax.jit(fn)
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def run(downsample: int = 2, population: int = 8) -> list[tuple[str, float]]:
    """Returns ``[(part, seconds per call)]`` for a population of ``population`` particles."""
    from vograd.tasks.optimizers import MLPOptimizer
    from vograd.tasks.problems import ImageMLPFamily
    from vograd.tasks.system import LearnedOptimizerSystem

    family = ImageMLPFamily("fashion_mnist", "train", hidden=(32,), batch_size=64,
                            downsample=downsample)
    system = LearnedOptimizerSystem(MLPOptimizer(), family, outer="valid", horizon=200)
    theta = system.init_theta(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), population)
    states = jax.vmap(lambda k: system.init(theta, k))(keys)
    lopt = system.optimizer

    def inner(s):
        def one(s, k):
            batch = family.batch(s.task, k, "train")
            return jax.value_and_grad(family.loss)(s.params, s.task, batch)
        return jax.vmap(one)(s, keys)

    def update(th, s):
        return jax.vmap(lambda g, st, p: lopt.update(th, g, st, p))(s.params, s.opt_state, s.params)

    def step(th, s):
        return jax.vmap(lambda s, k: system.step(th, s, k))(s, keys)

    def vjp(fn):
        def go(*args):
            out, pullback = jax.vjp(fn, *args)
            return pullback(out)
        return go

    return [
        ("inner value_and_grad", _time(inner, states)),
        ("inner VJP", _time(vjp(inner), states)),
        ("LO update", _time(update, theta, states)),
        ("LO update VJP", _time(vjp(update), theta, states)),
        ("system step", _time(step, theta, states)),
        ("system step VJP", _time(vjp(step), theta, states)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--downsample", type=int, default=2)
    parser.add_argument("--population", type=int, default=8)
    args = parser.parse_args()
    rows = run(args.downsample, args.population)
    base = rows[0][1]
    print(f"| part ({args.population} particles, downsample {args.downsample}) | ms per call | x inner value_and_grad |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e3:.2f} | {seconds / base:.1f} |")


if __name__ == "__main__":
    main()
