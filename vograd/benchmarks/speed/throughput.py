"""Outer-gradient throughput of ES, PES and Merged, with plain-JAX baselines timed alongside.

For each inner task (`TASKS`) and window, every estimator estimates with 8
antithetic pairs (16 unrolls, "8 parallel tasks" as in the reference), and
throughput counts every inner step of every unroll:
``inner steps/s = 2 * pairs * window / (seconds per estimate)``, the way the
reference figures of REFERENCES.md count (e.g. 0.8 s per estimate of 800
steps = 1,000 steps/s). The estimator state advances between calls, as in
training.

Two plain-JAX baselines run in the same rounds, on the same 16 tasks:

- ``adam``: the inner task trained by ``optax.adam`` in a jitted, vmapped
  ``lax.scan`` of ``window`` steps (batch, loss and gradient, update);
- ``lo``: the same scan stepping the learned optimizer (``system.step``)
  under one theta: the cost of the inner compute alone, without any
  estimator (no perturbations, resets, losses per branch, reductions).

Achieved FLOP/s: XLA's count of the operations of one vmapped inner step
(`speed_common.flops_of`) times the steps, over the measured time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from vograd.benchmarks.speed.common import Timed, compile_timed, flops_of, round_robin

PAIRS = 8  # "8 parallel tasks": 8 antithetic pairs, 16 unrolls
HORIZON = 1_000

# learned_optimization, TruncatedES/PES with its MLPLOpt, 8 tasks, 2-core CPU
# (REFERENCES.md, "Reference speed on this kind of machine"; not re-measured here).
REFERENCE_STEPS_PER_S = {"quadratic": 118_000.0, "mlp": 1_000.0, "conv": 1.6}
REFERENCE_WINDOW = {"quadratic": 50, "mlp": 50, "conv": 10}


@dataclasses.dataclass(frozen=True)
class Case:
    """One throughput measurement: task, estimator, window (and reverse-mode chunk)."""

    task: str
    estimator: str
    window: int
    chunk: int | None = None


def make_family(task: str):
    """Returns the task family of ``task``: ``"quadratic"`` (10-d), ``"mlp"`` (784-16-10,
    12,730 parameters, batch 128) or ``"conv"`` (3 x 32-channel CNN on 32x32x3, 19,722
    parameters, batch 128, im2col convolutions)."""
    from vograd.tasks.problems import ConvFamily, ImageMLPFamily, QuadraticFamily

    if task == "quadratic":
        return QuadraticFamily(dim=10, noise_std=0.1)
    if task == "mlp":
        return ImageMLPFamily("fashion_mnist", "all", k=10, hidden=(16,), batch_size=128)
    if task == "conv":
        return ConvFamily(classes="all", k=10, conv_impl="im2col", batch_size=128)
    raise KeyError(f"unknown task {task!r}")


def make_system(family, horizon: int = HORIZON):
    """Returns the learned-optimizer system: Metz 2019 MLP optimizer (fused forward)."""
    from vograd.tasks.optimizers import MLPOptimizer
    from vograd.tasks.system import LearnedOptimizerSystem

    return LearnedOptimizerSystem(MLPOptimizer(fused_forward=True), family, horizon=horizon)


def make_estimator(name: str, window: int, chunk: int | None):
    """Returns the estimator ``name`` (``"ES"``, ``"PES"``, ``"Merged"`` with 8 pairs;
    ``"TBPTT"``, truncated backprop, with 16 particles)."""
    from vograd.estimators import EvolutionStrategies, Merged, PersistentES, TruncatedBackprop

    if name == "TBPTT":
        return TruncatedBackprop(num_particles=2 * PAIRS, window=window, chunk=chunk)
    cls = {"ES": EvolutionStrategies, "PES": PersistentES, "Merged": Merged}[name]
    return cls(num_pairs=PAIRS, window=window, chunk=chunk)


def _advance_estimate(args: tuple, out) -> tuple:
    theta, _, key = args
    return theta, out[1], jax.random.fold_in(key, 1)


def estimator_timed(system, case: Case) -> Timed:
    """Returns the compiled ``estimate`` of ``case``; each call continues from the
    state the previous call returned, on fresh keys."""
    theta = system.init_theta(jax.random.key(0))
    est = make_estimator(case.estimator, case.window, case.chunk)
    state = eqx.filter_jit(est.init)(system, theta, jax.random.key(1))

    def estimate(theta, state, key):
        return est.estimate(system, theta, state, key)

    t = compile_timed(f"{case.task} {case.estimator} w{case.window}", estimate,
                      (theta, state, jax.random.key(2)))
    t.advance = _advance_estimate
    return t


def population(system, num: int):
    """Returns ``num`` fresh inner states (leaves ``[num, ...]``) and theta."""
    theta = system.init_theta(jax.random.key(0))
    keys = jax.random.split(jax.random.key(3), num)
    return theta, jax.vmap(lambda k: system.init(theta, k))(keys)


def adam_scan(family, window: int) -> Callable:
    """Returns ``f(params, opt_state, tasks, key)``: ``window`` steps of optax.adam on each
    task of the population (vmapped), in one ``lax.scan``; returns the new state and losses."""
    opt = optax.adam(1e-3)

    def one(params, opt_state, task, key):
        def body(carry, k):
            params, opt_state = carry
            batch = family.batch(task, k, "train")
            loss, grads = jax.value_and_grad(family.loss)(params, task, batch)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.lax.scan(body, (params, opt_state), jax.random.split(key, window))

    def run(params, opt_state, tasks, key):
        keys = jax.random.split(key, jax.tree.leaves(tasks)[0].shape[0])
        return jax.vmap(one)(params, opt_state, tasks, keys)

    return run


def lo_scan(system, window: int) -> Callable:
    """Returns ``f(theta, states, key)``: ``window`` learned-optimizer steps of each
    member of the population (vmapped), one ``lax.scan``, no estimator around it."""

    def one(theta, state, key):
        return jax.lax.scan(lambda s, k: system.step(theta, s, k), state,
                            jax.random.split(key, window))

    def run(theta, states, key):
        keys = jax.random.split(key, jax.tree.leaves(states)[0].shape[0])
        return jax.vmap(one, in_axes=(None, 0, 0))(theta, states, keys)

    return run


def baselines_timed(family, system, window: int, task: str) -> list[Timed]:
    """Returns the compiled adam and learned-optimizer scans for 2 x PAIRS tasks."""
    num = 2 * PAIRS
    theta, states = population(system, num)
    opt_state = jax.vmap(optax.adam(1e-3).init)(states.params)
    adam = compile_timed(f"{task} adam-scan w{window}", adam_scan(family, window),
                         (states.params, opt_state, states.task, jax.random.key(4)))
    lo = compile_timed(f"{task} lo-scan w{window}", lo_scan(system, window),
                       (theta, states, jax.random.key(5)))
    return [adam, lo]


def step_flops(family, system) -> dict[str, float]:
    """Returns XLA's FLOP count of one step of the 2 x PAIRS population: the learned
    optimizer's ``system.step`` (``"lo"``) and an adam training step (``"adam"``)."""
    num = 2 * PAIRS
    theta, states = population(system, num)
    keys = jax.random.split(jax.random.key(6), num)
    lo = flops_of(jax.vmap(lambda s, k: system.step(theta, s, k)), (states, keys))
    opt = optax.adam(1e-3)
    opt_state = jax.vmap(opt.init)(states.params)

    def adam_step(params, opt_state, task, key):
        batch = family.batch(task, key, "train")
        grads = jax.grad(family.loss)(params, task, batch)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    adam = flops_of(jax.vmap(adam_step), (states.params, opt_state, states.task, keys))
    return {"lo": lo, "adam": adam}


def run_task(task: str, windows: dict[int, list[Case]], rounds: int, log=print) -> dict:
    """Returns the measurements of one task: rows per case and baseline, FLOPs per step.

    ``windows``: window -> the estimator cases to measure at that window. All
    functions of the task are compiled first, then timed round-robin.
    """
    family = make_family(task)
    system = make_system(family)
    timed, kinds = [], []
    for window, cases in windows.items():
        for t in baselines_timed(family, system, window, task):
            log(f"  compiled {t.name} ({t.compile_s:.1f} s)")
            timed.append(t)
            kinds.append(("baseline", window, t.name.split()[1].removesuffix("-scan"), None))
        for case in cases:
            t = estimator_timed(system, case)
            log(f"  compiled {t.name} ({t.compile_s:.1f} s)")
            timed.append(t)
            kinds.append(("estimator", window, case.estimator, case.chunk))
    for r in range(rounds):
        round_robin(timed, 1)
        log(f"  round {r + 1}/{rounds} done")
    flops = step_flops(family, system)
    rows = []
    for t, (kind, window, name, chunk) in zip(timed, kinds):
        steps = 2 * PAIRS * window
        per_step_flops = flops["adam"] if name == "adam" else flops["lo"]
        rows.append({
            "task": task, "kind": kind, "name": name, "window": window, "chunk": chunk,
            "compile_s": t.compile_s, "wall_s": t.wall_s, "cpu_s": t.cpu_s,
            "walls": t.wall, "steps": steps, "steps_per_s": steps / t.wall_s,
            "steps_per_cpu_s": steps / t.cpu_s,
            "flop_per_s": per_step_flops * window / t.wall_s,
        })
    by_window = {(r["window"], r["name"]): r for r in rows}
    for r in rows:
        r["x_adam"] = r["steps_per_s"] / by_window[(r["window"], "adam")]["steps_per_s"]
        r["x_lo_scan"] = by_window[(r["window"], "lo")]["wall_s"] / r["wall_s"]
        r["x_reference"] = r["steps_per_s"] / REFERENCE_STEPS_PER_S[task]
    params = jax.tree.leaves(population(system, 1)[1].params)
    return {"task": task, "num_params": int(sum(x.size for x in params)),
            "step_flops": flops, "rows": rows}
