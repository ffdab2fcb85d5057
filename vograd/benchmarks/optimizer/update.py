"""Cost of the learned optimizers' updates against ``optax.adam`` on a 784-H-10 MLP.

Run: ``.venv/bin/python -m vograd.benchmarks.optimizer.update`` (about a minute on
2 CPU cores; ``--hidden 128`` for the ~100k-parameter size of the default
optimizer's step-cost target). Prints one table; `run` returns its rows for the CLI.

The inner problem is a 784-H-10 ReLU MLP (H = 16: 12,730 parameters, the size of the
reference's "image MLP, 13k parameters"; H = 128: 101,770) with softmax cross-entropy
on one fixed batch of 128 synthetic 28x28 inputs: the data do not change the cost.
The shipped default (`vograd.tasks.pretrained.load()`) is timed with its trained
theta, the others with a random one.

Four timings per optimizer, each the median over ``rounds x repeats`` calls of a
jitted function (``block_until_ready`` after each), the optimizers interleaved
round by round so that load from other processes hits all of them alike
(the minimum is reported too: on a shared machine it is the steadier number):

- ``update``: one call ``update(grads, state, params)``;
- ``update_scan``: per update inside a ``lax.scan`` of ``scan_steps`` updates
  (no per-call dispatch: the cost seen inside `vograd.unroll`);
- ``step``: one inner training step (loss, gradient, update, apply);
- ``step_scan``: per step inside a ``lax.scan`` of ``scan_steps`` steps.

Beside them, each update's FLOP bound: the floating-point operations XLA counts for
one update (``cost_analysis`` of the loop-free ``update``), divided by the float32
matmul peak measured in the same run (`vograd.benchmarks.speed.common.matmul_peak`,
the larger of a measurement before and one after the timings). ``x bound`` is
``update_scan`` over that time: 1 would be an update running at the matmul peak. A
per-parameter MLP is elementwise work (XLA:CPU fuses it into one loop), so the matmul
peak is an upper bound on what it can reach, not a promise.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vograd.benchmarks.speed import common
from vograd.tasks import pretrained
from vograd.tasks.optimizers import HierarchicalOptimizer, LSTMOptimizer, MLPOptimizer

HIDDEN = 16
INPUTS = 28 * 28
CLASSES = 10
BATCH = 128


def mlp_params(key, hidden: int = HIDDEN) -> dict:
    """Returns the benchmark MLP's parameters (784-H-10; H = 16: 12,730 entries)."""
    k1, k2 = jax.random.split(key)
    return {
        "linear_0": {
            "w": jax.random.normal(k1, (INPUTS, hidden)) * np.sqrt(2.0 / INPUTS),
            "b": jnp.zeros((hidden,)),
        },
        "head": {
            "w": jax.random.normal(k2, (hidden, CLASSES)) * np.sqrt(1.0 / hidden),
            "b": jnp.zeros((CLASSES,)),
        },
    }


def mlp_loss(params: dict, batch: tuple) -> jax.Array:
    """Returns the mean softmax cross-entropy of the MLP on ``batch = (x, y)``."""
    x, y = batch
    h = jax.nn.relu(x @ params["linear_0"]["w"] + params["linear_0"]["b"])
    logits = h @ params["head"]["w"] + params["head"]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def optimizers(key) -> dict[str, optax.GradientTransformation]:
    """Returns ``{name: transformation}``: adam and the learned optimizers (randomly
    initialised theta, through ``as_optax``), the MLP both dense and fused."""
    lopts = {
        "MLPOptimizer": MLPOptimizer(),
        "MLPOptimizer(fused_forward)": MLPOptimizer(fused_forward=True),
        "LSTMOptimizer": LSTMOptimizer(),
        "HierarchicalOptimizer": HierarchicalOptimizer(),
    }
    out = {"adam": optax.adam(1e-3)}
    lopt, theta = pretrained.load_optimizer()
    out[f"{type(lopt).__name__} (shipped default)"] = lopt.as_optax(theta)
    for k, (name, lopt) in zip(jax.random.split(key, len(lopts)), lopts.items()):
        out[name] = lopt.as_optax(lopt.init_theta(k))
    return out


def _timed(fn: Callable, args: tuple, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out.append(time.perf_counter() - t0)
    return out


def _functions(opt: optax.GradientTransformation, params, batch, scan_steps: int):
    """Returns the four jitted functions and their arguments for one optimizer."""
    grads = jax.grad(mlp_loss)(params, batch)
    state = opt.init(params)

    def update(g, s, p):
        return opt.update(g, s, p)

    def step(p, s, b):
        loss, g = jax.value_and_grad(mlp_loss)(p, b)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    def update_scan(g, s, p):
        def body(carry, _):
            p, s = carry
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, (p, s), None, length=scan_steps)[0]

    def step_scan(p, s, b):
        def body(carry, _):
            p, s, loss = step(*carry, b)
            return (p, s), loss

        return jax.lax.scan(body, (p, s), None, length=scan_steps)

    return {
        "update": (jax.jit(update), (grads, state, params), 1),
        "update_scan": (jax.jit(update_scan), (grads, state, params), scan_steps),
        "step": (jax.jit(step), (params, state, batch), 1),
        "step_scan": (jax.jit(step_scan), (params, state, batch), scan_steps),
    }


def run(
    repeats: int = 30, rounds: int = 10, scan_steps: int = 50, seed: int = 0,
    hidden: int = HIDDEN,
) -> list[dict]:
    """Returns one row per optimizer: median microseconds per update / step for the
    four timings, and their ratios to adam (``*_ratio``)."""
    key = jax.random.key(seed)
    k_p, k_x, k_y, k_o = jax.random.split(key, 4)
    params = mlp_params(k_p, hidden)
    batch = (
        jax.random.normal(k_x, (BATCH, INPUTS)),
        jax.random.randint(k_y, (BATCH,), 0, CLASSES),
    )
    num_params = sum(x.size for x in jax.tree.leaves(params))
    fns = {name: _functions(opt, params, batch, scan_steps) for name, opt in optimizers(k_o).items()}
    flops = {name: common.flops_of(f["update"][0], f["update"][1]) for name, f in fns.items()}
    peaks = [common.matmul_peak()["flop_per_s"]]
    samples = {name: {kind: [] for kind in f} for name, f in fns.items()}
    for f in fns.values():  # compile and warm up
        for fn, args, _ in f.values():
            jax.block_until_ready(fn(*args))
    for _ in range(rounds):
        for name, f in fns.items():
            for kind, (fn, args, per_call) in f.items():
                reps = repeats if per_call == 1 else max(1, repeats // 10)
                samples[name][kind] += [t / per_call for t in _timed(fn, args, reps)]
    peaks.append(common.matmul_peak()["flop_per_s"])
    peak = max(peaks)
    load = common.load_average()
    rows = []
    for name, kinds in samples.items():
        row = {"optimizer": name, "num_params": int(num_params), "update_flops": flops[name],
               "flops_per_param": flops[name] / num_params, "peak_flop_per_s": peak,
               "peaks_flop_per_s": peaks, "bound_us": flops[name] / peak * 1e6,
               "load_average": load}
        for kind, ts in kinds.items():
            row[f"{kind}_us"] = float(np.median(ts) * 1e6)
            row[f"{kind}_min_us"] = float(np.min(ts) * 1e6)
        row["update_scan_bound_ratio"] = row["update_scan_us"] / row["bound_us"]
        row["update_scan_min_bound_ratio"] = row["update_scan_min_us"] / row["bound_us"]
        rows.append(row)
    base = rows[0]
    for row in rows:
        for kind in samples["adam"]:
            row[f"{kind}_ratio"] = row[f"{kind}_us"] / base[f"{kind}_us"]
            row[f"{kind}_min_ratio"] = row[f"{kind}_min_us"] / base[f"{kind}_min_us"]
    return rows


def format_table(rows: list[dict], stat: str = "") -> str:
    """Returns the rows as a markdown table: microseconds and ratio to adam, of the
    median (``stat=""``) or of the minimum (``stat="min_"``)."""
    kinds = ("update", "update_scan", "step", "step_scan")
    head = "| optimizer | " + " | ".join(f"{k} us (x adam)" for k in kinds) + " |"
    lines = [head, "|" + "---|" * (len(kinds) + 1)]
    for r in rows:
        cells = [f"{r[f'{k}_{stat}us']:.0f} ({r[f'{k}_{stat}ratio']:.1f}x)" for k in kinds]
        lines.append(f"| {r['optimizer']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_bound_table(rows: list[dict]) -> str:
    """Returns the FLOP-bound table: XLA's FLOPs per update and per parameter, the time
    they take at the matmul peak, and ``update_scan`` (median and minimum) against it."""
    body = [[r["optimizer"], common.fmt(r["update_flops"]), common.fmt(r["flops_per_param"]),
             common.fmt(r["bound_us"]), f"{r['update_scan_us']:.0f}",
             f"{r['update_scan_bound_ratio']:.1f}x", f"{r['update_scan_min_bound_ratio']:.1f}x",
             f"{r['update_scan_ratio']:.1f}x"] for r in rows]
    return common.markdown_table(
        ["optimizer", "FLOPs per update", "per parameter", "bound us", "update_scan us",
         "x bound", "x bound (min)", "x adam"], body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--scan-steps", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=HIDDEN, help="hidden units of the MLP")
    args = parser.parse_args(argv)
    rows = run(repeats=args.repeats, rounds=args.rounds, scan_steps=args.scan_steps,
               hidden=args.hidden)
    peaks = ", ".join(f"{p / 1e9:.1f}" for p in rows[0]["peaks_flop_per_s"])
    print(f"{rows[0]['num_params']} parameters, jax {jax.__version__}, "
          f"{jax.devices()[0].platform}; matmul peak {peaks} GFLOP/s (before, after); "
          f"load average {rows[-1]['load_average'][0]:.2f}")
    print("median:")
    print(format_table(rows))
    print("minimum (least disturbed by other processes):")
    print(format_table(rows, "min_"))
    print("FLOP bound (an update inside a scan against XLA's FLOPs at the matmul peak):")
    print(format_bound_table(rows))


if __name__ == "__main__":
    main()
