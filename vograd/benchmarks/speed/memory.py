"""Memory and time of the reparameterization gradient as the window grows.

The system is the learned MLP optimizer on the 10-d quadratic (cheap steps,
so windows of 10,000 steps time in seconds); the estimator is
`Reparameterization` with one antithetic pair, i.e. reverse mode through two
unrolls of the window.

- **Chunked**: compiled ONCE with ``window = max_window`` and ``chunk`` steps
  per ``jax.checkpoint`` chunk; every shorter window runs through the dynamic
  ``length`` argument, and the jitted function's cache is checked to hold a
  single executable after all lengths ran (no recompilation per length).
- **Unchunked**: one compilation per window (compile only, plus a timing at
  the windows where it is cheap), to show what reverse mode keeps without
  recomputation.

Memory is XLA's temporary allocation of the compiled executable
(``memory_analysis().temp_size_in_bytes``): every intermediate, including
what the backward pass keeps. It is exact and does not depend on the load.
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp

from vograd.benchmarks.speed.common import Timed, call_once, temp_bytes
from vograd.benchmarks.speed.throughput import make_family, make_system


def _estimate_fn(system, window: int, chunk: int | None):
    from vograd.estimators import Reparameterization

    est = Reparameterization(num_pairs=1, window=window, chunk=chunk)
    theta = system.init_theta(jax.random.key(0))
    state = eqx.filter_jit(est.init)(system, theta, jax.random.key(1))

    def estimate(theta, state, key, length):
        return est.estimate(system, theta, state, key, length=length)

    return estimate, (theta, state, jax.random.key(2))


def run(max_window: int, chunk: int, windows: tuple[int, ...], timed_unchunked: tuple[int, ...],
        repeats: int = 3, log=print) -> dict:
    """Returns the chunked and unchunked rows (temp bytes, seconds per estimate).

    ``windows``: the lengths run through the one chunked executable (and the
    unchunked windows compiled); ``timed_unchunked``: unchunked windows also timed.
    """
    system = make_system(make_family("quadratic"), horizon=max_window)
    estimate, args = _estimate_fn(system, max_window, chunk)
    length0 = jnp.asarray(max_window, jnp.int32)
    jitted = jax.jit(estimate)
    start = time.perf_counter()
    jax.block_until_ready(jitted(*args, length0))
    compile_s = time.perf_counter() - start
    chunked_temp = temp_bytes(estimate, (*args, length0))
    log(f"  chunked window {max_window} (chunk {chunk}): compiled in {compile_s:.1f} s, "
        f"temp {chunked_temp / 2**20:.1f} MiB")
    rows = []
    for w in windows:
        t = Timed(f"chunked length {w}", jitted, (*args, jnp.asarray(w, jnp.int32)))
        for _ in range(repeats):
            call_once(t)
        rows.append({"mode": "chunked", "window": w, "compiled_window": max_window,
                     "chunk": chunk, "temp_bytes": chunked_temp, "wall_s": t.wall_s,
                     "cpu_s": t.cpu_s, "steps_per_s": 2 * w / t.wall_s})
    cache_size = jitted._cache_size()
    for w in windows:
        estimate_w, args_w = _estimate_fn(system, w, None)
        length = jnp.asarray(w, jnp.int32)
        row = {"mode": "unchunked", "window": w, "compiled_window": w, "chunk": None,
               "temp_bytes": temp_bytes(estimate_w, (*args_w, length)),
               "wall_s": None, "cpu_s": None, "steps_per_s": None}
        if w in timed_unchunked:
            t = Timed(f"unchunked {w}", jax.jit(estimate_w), (*args_w, length))
            call_once(t)  # compile and warm up
            t.wall.clear(), t.cpu.clear()
            for _ in range(repeats):
                call_once(t)
            row.update(wall_s=t.wall_s, cpu_s=t.cpu_s, steps_per_s=2 * w / t.wall_s)
        log(f"  unchunked window {w}: temp {row['temp_bytes'] / 2**20:.1f} MiB")
        rows.append(row)
    return {"rows": rows, "chunked_compile_s": compile_s, "chunked_cache_size": cache_size,
            "max_window": max_window, "chunk": chunk}
