"""Shared pieces of the speed benchmark: timing on a shared machine, machine facts, peak.

Every timing is the median over repeated calls of an already compiled
function, with ``block_until_ready``. Functions compared with each other are
timed round-robin (one call of each per round), so that load from other
processes hits all of them alike, and both the wall-clock and the process CPU
time are recorded: on a machine shared with other jobs, ratios of CPU times
are the steadier figure (XLA's CPU backend uses every core it gets, so CPU time
is at most ``cores x`` wall time).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class Timed:
    """A compiled function, its arguments, and its measured times (seconds).

    ``advance(args, out)``, when given, returns the arguments of the next call
    (e.g. an estimator continuing from the state it returned).
    """

    name: str
    fn: Callable
    args: tuple
    compile_s: float = 0.0
    advance: Callable | None = None
    wall: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)

    @property
    def wall_s(self) -> float:
        """Returns the median wall time of one call."""
        return float(np.median(self.wall))

    @property
    def cpu_s(self) -> float:
        """Returns the median process CPU time of one call."""
        return float(np.median(self.cpu))


def compile_timed(name: str, fn: Callable, args: Sequence[Any], **jit_kwargs) -> Timed:
    """Returns ``fn`` jitted, lowered and compiled for ``args``; records the compile time
    (trace + lower + XLA compile) and runs it once (warm-up)."""
    start = time.perf_counter()
    compiled = jax.jit(fn, **jit_kwargs).lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))
    return Timed(name, compiled, tuple(args), compile_s)


def call_once(t: Timed) -> Any:
    """Calls ``t`` once, appends its wall and CPU time, advances its arguments."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(t.fn(*t.args))
    t.wall.append(time.perf_counter() - w0)
    t.cpu.append(time.process_time() - c0)
    if t.advance is not None:
        t.args = t.advance(t.args, out)
    return out


def round_robin(timed: Sequence[Timed], rounds: int, repeats: int = 1) -> None:
    """Times every function ``rounds x repeats`` times, one round at a time."""
    for _ in range(rounds):
        for t in timed:
            for _ in range(repeats):
                call_once(t)


def load_average() -> tuple[float, float, float]:
    """Returns the 1, 5 and 15 minute load averages (zeros where unknown)."""
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def machine() -> dict:
    """Returns what the numbers ran on: CPU model, cores, devices, versions, load."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "devices": [str(d) for d in jax.devices()],
        "platform": jax.devices()[0].platform,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": load_average(),
    }


def matmul_peak(size: int = 2048, rounds: int = 5) -> dict:
    """Returns the achieved float32 FLOP/s of a ``size x size`` matrix product (median of
    ``rounds`` calls): the machine's practical matmul peak for this process, now."""
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k1, (size, size), jnp.float32)
    b = jax.random.normal(k2, (size, size), jnp.float32)
    t = compile_timed("matmul", lambda a, b: a @ b, (a, b))
    round_robin([t], rounds)
    flops = 2.0 * size**3
    return {"size": size, "flops": flops, "wall_s": t.wall_s, "cpu_s": t.cpu_s,
            "flop_per_s": flops / t.wall_s}


def flops_of(fn: Callable, args: Sequence[Any]) -> float:
    """Returns XLA's count of floating-point operations of one call of ``fn(*args)``
    (``cost_analysis``; loops are not unrolled there, so pass loop-free functions)."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0))


def temp_bytes(fn: Callable, args: Sequence[Any]) -> int:
    """Returns the temporary (scratch) memory XLA allocates for one call of ``fn(*args)``:
    all intermediates, including what reverse mode keeps for the backward pass."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    return int(stats.temp_size_in_bytes)


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """Returns a markdown table: the ``header`` cells, a rule, then one line per row of
    ``body`` (each as many cells as the header)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def fmt(x: float, digits: int = 3) -> str:
    """Returns ``x`` with ``digits`` significant digits and thousands separators."""
    if x == 0 or not np.isfinite(x):
        return str(x)
    magnitude = int(np.floor(np.log10(abs(x))))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{x:,.{decimals}f}"


def write_report(out_dir: str, stem: str, results: dict, text: str) -> None:
    """Writes ``results`` to ``out_dir/stem.json`` and ``text`` to ``out_dir/stem.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=float))
    (out / f"{stem}.md").write_text(text)
