"""What a padded compiled window costs, and what chunking saves.

`vograd.train` compiles windows at power-of-two sizes (`vograd.bucket`) and
runs a shorter window through the dynamic ``length``: slots past ``length``
take the cheap branch of a ``lax.cond``. In reverse mode that branch is not
free: the scan's residuals are the union of both branches', so every skipped
slot still writes (zero) residuals of a full step. With ``chunk`` set, a
whole skipped chunk is one ``lax.cond`` under ``jax.checkpoint`` whose only
residual is the chunk's carry, so padding costs little more than the last
partly used chunk.

Rows, all timed round-robin in one run on the same system (Metz 2019 MLP
optimizer on the 14x14 Fashion-MNIST MLP of the ``demo`` preset, `Merged`
with 4 pairs): the window run at its own size; padded to ``pad x`` its size;
padded with ``chunk``; and at its own size with ``chunk``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from vograd.benchmarks.speed.common import Timed, compile_timed, round_robin


def _system():
    from vograd.tasks.optimizers import MLPOptimizer
    from vograd.tasks.problems import ImageMLPFamily
    from vograd.tasks.system import LearnedOptimizerSystem

    family = ImageMLPFamily("fashion_mnist", "train", hidden=(32,), batch_size=64, downsample=2)
    return LearnedOptimizerSystem(MLPOptimizer(), family, outer="valid", horizon=1_000)


def run(window: int = 16, pad: int = 4, chunk: int = 8, rounds: int = 3, log=print) -> dict:
    """Returns the rows ``{"name", "compiled", "chunk", "wall_s", "cpu_s", "compile_s"}``
    and the ratios of each to the exact, unchunked window."""
    from vograd.estimators import Merged

    system = _system()
    theta = system.init_theta(jax.random.key(0))
    length = jnp.asarray(window, jnp.int32)
    timed: list[Timed] = []
    configs = [("exact", window, None), ("padded", pad * window, None),
               ("padded + chunk", pad * window, chunk), ("exact + chunk", window, chunk)]
    for name, size, c in configs:
        est = Merged(num_pairs=4, sigma=0.01, window=size, chunk=c)
        state = eqx.filter_jit(est.init)(system, theta, jax.random.key(1))

        def fn(theta, state, key, length, est=est):
            return est.estimate(system, theta, state, key, length=length)[0]

        log(f"  padding: {name} (compiled {size}, chunk {c})")
        timed.append(compile_timed(name, fn, (theta, state, jax.random.key(2), length)))
    round_robin(timed, rounds)
    base = timed[0]
    rows = [
        {"name": t.name, "compiled": size, "chunk": c, "wall_s": t.wall_s, "cpu_s": t.cpu_s,
         "compile_s": t.compile_s, "cpu_ratio": t.cpu_s / base.cpu_s}
        for t, (_, size, c) in zip(timed, configs)
    ]
    return {"window": window, "pad": pad, "chunk": chunk, "rows": rows}
