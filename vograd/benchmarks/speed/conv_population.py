"""Forward+backward speed of ConvFamily's loss: one task, and a population in several forms.

Times every variant round-robin (one run of each per round), so that a
fluctuating load on a shared machine hits all variants alike; reports the
minimum and the median over rounds. Not a test.

Usage: python vograd/benchmarks/speed/conv_population.py [--population 8] [--rounds 12]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from vograd.tasks.problems import ConvFamily


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    size = args.population

    # The shipped subset keeps set-up short; the network and batch (128) are the paper's.
    data = ConvFamily("cifar10", sources=["subset"]).data
    variants = {}
    for impl in ("lax", "unrolled", "im2col"):
        family = ConvFamily(data, conv_impl=impl)
        keys = jax.random.split(jax.random.key(0), size)
        tasks = jax.vmap(family.sample)(keys)
        params = jax.vmap(family.init_params)(tasks, keys)
        batches = jax.vmap(lambda t, k, family=family: family.batch(t, k, "train"))(tasks, keys)
        population = (params, tasks, batches)
        grad = jax.value_and_grad(family.loss)
        variants[f"{impl} one task"] = (jax.jit(grad), jax.tree.map(lambda a: a[0], population))
        variants[f"{impl} vmap x{size}"] = (jax.jit(jax.vmap(grad)), population)
        if impl == "lax":

            def loop(params, tasks, batches, grad=grad):
                population = (params, tasks, batches)
                return [grad(*jax.tree.map(lambda a: a[i], population)) for i in range(size)]

            variants[f"lax python loop x{size}"] = (jax.jit(loop), population)

    for name, (fn, fn_args) in variants.items():
        start = time.perf_counter()
        jax.block_until_ready(fn(*fn_args))
        print(f"compile + first call  {name:24s} {time.perf_counter() - start:6.1f} s", flush=True)
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (fn, fn_args) in variants.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*fn_args))
            times[name].append(time.perf_counter() - start)
    for name, ts in times.items():
        print(f"{name:24s} min {min(ts) * 1e3:8.1f} ms   median {np.median(ts) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
