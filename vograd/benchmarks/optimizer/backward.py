"""Three ways to differentiate the per-parameter MLP, timed in one run.

    python -m vograd.benchmarks.optimizer.backward [--rounds 5] [--window 10]

The function is `per_parameter_mlp.mlp_outputs` (one hidden ReLU layer applied to
every scalar parameter); only its reverse mode differs:

- ``blocked``: the shipped custom VJP, ``BLOCK`` columns per ``lax.fori_loop`` step;
- ``dense``: a custom VJP that runs the dense form's VJP over all columns at once
  (what `MLPOptimizer(fused_forward=True)` shipped before);
- ``elementwise``: plain reverse mode through the fused elementwise forward (what
  `AdaptiveMLPOptimizer` shipped before).

Two tables, on 16 members of the 784-16-10 MLP population of
`benchmarks.speed.throughput` (12,730 parameters each), round robin:

1. the gradient of one learned update with respect to theta and all its inputs, for
   the Metz 2019 optimizer (fused forward; ``F = 7`` rows, ``H = 32``) and the
   default `AdaptiveMLPOptimizer` (``F = 5``, ``H = 8``); the Metz optimizer's
   ``elementwise`` row is left out (its compile took 218 s);
2. a truncated-backprop window: ``value_and_grad`` with respect to theta of the mean
   loss of ``window`` steps of `LearnedOptimizerSystem`, beside the same window
   forward only, for the Metz optimizer.

The variants are swapped in by rebinding the name ``mlp_outputs`` in the optimizer's
module while each function is traced (`_using`).
"""

from __future__ import annotations

import argparse
import contextlib
import types

import jax
import jax.numpy as jnp

from vograd.benchmarks.speed.common import compile_timed, load_average, markdown_table, round_robin
from vograd.benchmarks.speed.throughput import make_family, population
from vograd.tasks.optimizers import adaptive_mlp, mlp
from vograd.tasks.optimizers import per_parameter_mlp as ppm

POPULATION = 16


def _dense(w1, b1, w2, b2, rows):
    x = jnp.stack([jnp.reshape(r, (-1,)) for r in rows])
    out = w2.T @ jax.nn.relu(w1.T @ x + b1[:, None]) + b2[:, None]
    return tuple(jnp.reshape(o, jnp.shape(rows[0])) for o in out)


@jax.custom_vjp
def _dense_vjp(w1, b1, w2, b2, rows):
    return ppm._elementwise(w1, b1, w2, b2, rows)


_dense_vjp.defvjp(
    lambda *args: (ppm._elementwise(*args), args),
    lambda residuals, cotangents: jax.vjp(_dense, *residuals)[1](cotangents),
)

VARIANTS = {"blocked": ppm.mlp_outputs, "dense": _dense_vjp, "elementwise": ppm._elementwise}


@contextlib.contextmanager
def _using(module: types.ModuleType, variant: str):
    """Rebinds ``module.mlp_outputs`` to ``VARIANTS[variant]`` while a function is traced."""
    saved = module.mlp_outputs
    module.mlp_outputs = VARIANTS[variant]
    try:
        yield
    finally:
        module.mlp_outputs = saved


def _systems() -> dict:
    from vograd.tasks.optimizers import AdaptiveMLPOptimizer, MLPOptimizer
    from vograd.tasks.system import LearnedOptimizerSystem

    family = make_family("mlp")
    return {
        "Metz 2019 (fused forward)": (mlp, LearnedOptimizerSystem(
            MLPOptimizer(fused_forward=True), family, horizon=1_000)),
        "AdaptiveMLPOptimizer(hidden=8)": (adaptive_mlp, LearnedOptimizerSystem(
            AdaptiveMLPOptimizer(hidden=8, lr=1e-2), family, horizon=1_000)),
    }


def _update_grad(system):
    """Returns ``f(theta, states)``: the VJP of one vmapped update (ones as cotangents)."""
    lopt = system.optimizer

    def f(theta, states):
        def one(s):
            out, vjp = jax.vjp(lambda th, g, st, p: lopt.update(th, g, st, p),
                               theta, s.params, s.opt_state, s.params)
            return vjp(jax.tree.map(jnp.ones_like, out))
        return jax.vmap(one)(states)

    return f


def _window(system, window: int, with_grad: bool):
    """Returns ``f(theta, states, key)``: the mean loss of ``window`` steps per member, and
    with ``with_grad`` its gradient with respect to theta (truncated backprop)."""

    def mean_loss(theta, state, key):
        step = lambda s, k: system.step(theta, s, k)  # noqa: E731
        return jnp.mean(jax.lax.scan(step, state, jax.random.split(key, window))[1])

    def f(theta, states, key):
        keys = jax.random.split(key, POPULATION)
        if with_grad:
            one = lambda s, k: jax.value_and_grad(mean_loss)(theta, s, k)  # noqa: E731
        else:
            one = lambda s, k: mean_loss(theta, s, k)  # noqa: E731
        return jax.vmap(one)(states, keys)

    return f


def run(rounds: int = 5, window: int = 10, log=print) -> list[dict]:
    """Returns one row per timed function: ``table``, ``optimizer``, ``variant``, median
    seconds, compile seconds and ``x`` (over the blocked row of the same table and
    optimizer)."""
    timed, rows = [], []
    for name, (module, system) in _systems().items():
        theta, states = population(system, POPULATION)
        variants = ["blocked", "dense"] + (["elementwise"] if module is adaptive_mlp else [])
        for variant in variants:
            with _using(module, variant):
                t = compile_timed(f"update VJP {name} {variant}", _update_grad(system),
                                  (theta, states))
            timed.append(t)
            rows.append({"table": "update VJP", "optimizer": name, "variant": variant, "t": t})
            log(f"compiled {t.name} in {t.compile_s:.1f} s")
        if module is mlp:
            args = (theta, states, jax.random.key(5))
            t = compile_timed(f"window {name} forward", _window(system, window, False), args)
            timed.append(t)
            rows.append({"table": "window", "optimizer": name, "variant": "forward only", "t": t})
            for variant in ("blocked", "dense"):
                with _using(module, variant):
                    t = compile_timed(f"window {name} {variant}", _window(system, window, True), args)
                timed.append(t)
                rows.append({"table": "window", "optimizer": name, "variant": variant, "t": t})
                log(f"compiled {t.name} in {t.compile_s:.1f} s")
    round_robin(timed, rounds=rounds)
    out = []
    for r in rows:
        base = next(q["t"] for q in rows if q["table"] == r["table"]
                    and q["optimizer"] == r["optimizer"] and q["variant"] == "blocked")
        out.append({"table": r["table"], "optimizer": r["optimizer"], "variant": r["variant"],
                    "s": r["t"].wall_s, "min_s": min(r["t"].wall), "compile_s": r["t"].compile_s,
                    "x": r["t"].wall_s / base.wall_s})
    return out


def format_table(rows: list[dict]) -> str:
    """Returns the rows as one markdown table."""
    return markdown_table(
        ["what", "optimizer", "backward", "ms (min)", "x blocked", "compile s"],
        [[r["table"], r["optimizer"], r["variant"], f"{r['s'] * 1e3:.1f} ({r['min_s'] * 1e3:.1f})",
          f"{r['x']:.2f}", f"{r['compile_s']:.1f}"] for r in rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=int, default=10)
    args = parser.parse_args(argv)
    start = load_average()
    rows = run(args.rounds, args.window)
    print(f"{POPULATION} members of the 784-16-10 MLP, window {args.window}, {args.rounds} rounds; "
          f"load average at the start {start[0]:.2f}, at the end {load_average()[0]:.2f}; "
          f"BLOCK = {ppm.BLOCK}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
