"""Wall-clock of an inner step on the CNN families: the shipped learned optimizers against Adam.

Run: ``.venv/bin/python -m vograd.benchmarks.optimizer.cnn_step`` (about 5 minutes on
2 CPU cores). Prints one table; `run` returns its rows.

What it times is what the evaluation's wall-clock panels show
(`vograd.recipes.evaluation.seconds_per_step`): `inner_curves` jitted for one run of
``num_steps`` training steps (one task, one seed: batch drawing, loss, gradient,
update) and one evaluation at the end, divided by ``num_steps``. The families are the
convolutional problems vograd evaluates on:

- ``small-cnn``: the Metz 2019 recipes' CNN (14x14 Fashion-MNIST, 8/16 channels,
  batch 64, im2col convolutions, the ``mixed`` preset's second family);
- ``cnn3``: the unseen-task suite's 3-layer CNN (MNIST, 16/32/32 channels, batch 64);
- ``conv6``: the 6-layer, 32-channel CNN on MNIST of ``vograd eval``'s
  generalization check (batch 128, ``lax`` convolutions).

Every optimizer in `vograd.tasks.pretrained.names` and ``optax.adam`` are timed
round-robin (one call of each per round, ``rounds`` rounds), so load from other
processes hits them alike. The ratio is each optimizer's median over Adam's.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import equinox as eqx
import jax
import optax

from vograd.benchmarks.speed import common
from vograd.recipes import evaluate_run, metz2019, suite
from vograd.recipes.evaluation import InnerSchedule, inner_curves
from vograd.tasks import pretrained

def _small_cnn():
    problem = metz2019.PRESETS["mixed"].extra_problems[0]
    return problem.family("test"), problem.eval_options


def _cnn3():
    (task,) = suite.by_name("mnist-cnn3")
    return task.build(), {"sequential": task.sequential}


def _conv6():
    # the metz2019 presets' generalization check (`vograd eval`)
    problem = evaluate_run.generalization_problem(metz2019.PRESETS["small"].problem.batch_size)
    return problem.family(), problem.eval_options


# name -> () -> (family, `InnerSchedule` options of its evaluation)
FAMILIES: dict[str, Callable[[], tuple[object, dict]]] = {
    "small-cnn": _small_cnn, "cnn3": _cnn3, "conv6": _conv6}


def _inner_run(static_family, optimizer: optax.GradientTransformation, schedule: InnerSchedule):
    """Returns ``f(family_arrays, task, key)``: one inner run (`inner_curves`) of ``optimizer``,
    the family's arrays passed in (not baked into the program as constants), as the
    evaluation's ``eqx.filter_jit`` does."""

    def fn(family_arrays, task, key):
        family = eqx.combine(family_arrays, static_family)
        return inner_curves(family, lambda _: optimizer, None, task, key, schedule)

    return fn


def optimizers() -> dict[str, optax.GradientTransformation]:
    """Returns ``{name: transformation}``: ``adam`` (1e-3; its rate does not change the
    cost) and every shipped learned optimizer with its trained theta."""
    out = {"adam": optax.adam(1e-3)}
    for name in pretrained.names(pretrained.DIRECTORY):
        out[name] = pretrained.load(name, pretrained.DIRECTORY)
    return out


def run(families: tuple[str, ...] = tuple(FAMILIES), num_steps: int = 50, rounds: int = 5,
        seed: int = 0) -> list[dict]:
    """Returns one row per (family, optimizer): median and minimum seconds per step, the
    compile time, and the ratios of the medians and of the minima to Adam's."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; known: {sorted(FAMILIES)}")
    opts = optimizers()
    rows = []
    for fname in families:
        family, options = FAMILIES[fname]()
        key = jax.random.key(seed)
        task = family.sample(jax.random.fold_in(key, 0))
        schedule = InnerSchedule(num_steps, num_steps, eval_batches=4, **options)
        arrays, static = eqx.partition(family, eqx.is_array)
        timed = [common.compile_timed(name, _inner_run(static, opt, schedule),
                                      (arrays, task, jax.random.fold_in(key, 1)))
                 for name, opt in opts.items()]
        common.round_robin(timed, rounds)
        adam = timed[0]
        num_params = sum(x.size for x in jax.tree.leaves(family.init_params(task, key)))
        load = common.load_average()
        for t in timed:
            rows.append({
                "family": fname, "optimizer": t.name, "num_params": int(num_params),
                "num_steps": num_steps, "step_s": t.wall_s / num_steps,
                "step_min_s": min(t.wall) / num_steps, "compile_s": t.compile_s,
                "ratio": t.wall_s / adam.wall_s, "min_ratio": min(t.wall) / min(adam.wall),
                "load_average": load,
            })
    return rows


def format_table(rows: list[dict]) -> str:
    """Returns the rows as a markdown table."""
    body = [[r["family"], f"{r['num_params']:,}", r["optimizer"], f"{r['step_s'] * 1e3:.3f}",
             f"{r['ratio']:.2f}x", f"{r['min_ratio']:.2f}x", f"{r['compile_s']:.1f}"]
            for r in rows]
    return common.markdown_table(["family", "parameters", "optimizer", "ms per step",
                                  "x adam (median)", "x adam (min)", "compile s"], body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help=f"comma-separated, of {', '.join(FAMILIES)}")
    parser.add_argument("--num-steps", type=int, default=50, help="inner steps per timed call")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    load = common.load_average()
    rows = run(tuple(f for f in args.families.split(",") if f), args.num_steps, args.rounds)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; load average "
          f"{load[0]:.2f} before, {rows[-1]['load_average'][0]:.2f} after")
    print(format_table(rows))


if __name__ == "__main__":
    main()
