"""The ``vograd`` command line: recipes, training, evaluation, benchmarks.

    vograd recipes
    vograd train RECIPE --preset P --out DIR [--seed S] [--ablation NAME]
    vograd eval DIR
    vograd export DIR NAME [--dest DIR]
    vograd ablations RECIPE --preset P --out DIR [--seeds N] [--only a,b]
    vograd bench estimators [--out DIR] [--quick]
    vograd bench speed [--out DIR] [--quick]

``train`` is resumable: run the same command again after an interruption and
it continues from the last checkpoint in DIR.
"""

from __future__ import annotations

import argparse
import logging
import sys


def _cmd_recipes(args) -> int:
    from vograd.recipes import registry

    for name in registry.names():
        module = registry.get(name)
        print(f"{name}: {module.DESCRIPTION}")
        print(f"  presets: {', '.join(module.PRESETS)}")
        ablations = getattr(module, "ABLATIONS", None)
        if ablations:
            print(f"  ablations: {', '.join(ablations)}")
    return 0


def _cmd_train(args) -> int:
    from vograd.recipes import registry, run

    config = registry.preset(args.recipe, args.preset)
    if args.ablation:
        config = registry.get(args.recipe).ablation(config, args.ablation)
    result = run.train(
        args.recipe, config, args.out, seed=args.seed, preset=args.preset,
        progress=not args.no_progress, tensorboard=args.tensorboard,
    )
    resumed = f" (resumed from step {result.resumed_from})" if result.resumed_from else ""
    print(
        f"trained {args.recipe}/{args.preset} for {result.step} outer steps{resumed}; "
        f"skipped updates: {result.num_skipped}; run directory: {args.out}"
    )
    return 0


def _cmd_eval(args) -> int:
    from vograd.recipes import curve_cache, evaluate_run

    parts = tuple(args.only.split(",")) if args.only else evaluate_run.PARTS
    cache = None if args.no_cache else (args.cache_dir or curve_cache.default_directory())
    print(evaluate_run.evaluate(args.dir, progress=not args.no_progress, parts=parts,
                                cache_dir=cache))
    return 0


def _cmd_export(args) -> int:
    from vograd.recipes import run

    print(f"wrote {run.export(args.dir, args.name, args.dest)}")
    return 0


def _cmd_ablations(args) -> int:
    from vograd.recipes import ablations

    only = args.only.split(",") if args.only else None
    print(ablations.run(args.recipe, args.preset, args.out, seeds=args.seeds, only=only,
                        progress=not args.no_progress))
    return 0


def _cmd_bench(args) -> int:
    if args.which == "estimators":
        from vograd.benchmarks import estimators as bench
    else:
        from vograd.benchmarks import speed as bench
    print(bench.main(out_dir=args.out, quick=args.quick))
    return 0


def parser() -> argparse.ArgumentParser:
    """Returns the argument parser of the ``vograd`` command."""
    p = argparse.ArgumentParser(prog="vograd", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("recipes", help="list recipes, presets and ablations").set_defaults(fn=_cmd_recipes)

    t = sub.add_parser("train", help="outer-train a recipe (resumable)")
    t.add_argument("recipe")
    t.add_argument("--preset", default="demo")
    t.add_argument("--out", required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--ablation", default=None)
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard scalars to OUT/tensorboard (extra: tensorboard)")
    t.set_defaults(fn=_cmd_train)

    e = sub.add_parser("eval", help="evaluate a trained run against tuned baselines")
    e.add_argument("dir")
    e.add_argument("--only", default=None,
                   help="comma-separated parts: heldout, extra, generalization (default: all)")
    e.add_argument("--cache-dir", default=None,
                   help="baseline curves cache (default: $VOGRAD_CACHE_DIR/baselines or "
                        "~/.cache/vograd/baselines)")
    e.add_argument("--no-cache", action="store_true", help="recompute every baseline")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(fn=_cmd_eval)

    x = sub.add_parser("export", help="ship a trained run's weights as vograd.tasks.pretrained NAME")
    x.add_argument("dir")
    x.add_argument("name")
    x.add_argument("--dest", default=None, help="directory (default: the vograd/tasks/pretrained package)")
    x.set_defaults(fn=_cmd_export)

    a = sub.add_parser("ablations", help="train every ablation over several seeds (Figure 8)")
    a.add_argument("recipe")
    a.add_argument("--preset", default="demo")
    a.add_argument("--out", required=True)
    a.add_argument("--seeds", type=int, default=3)
    a.add_argument("--only", default=None, help="comma-separated ablation names")
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(fn=_cmd_ablations)

    b = sub.add_parser("bench", help="benchmarks: estimator quality or speed")
    b.add_argument("which", choices=["estimators", "speed"])
    b.add_argument("--out", default=None)
    b.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    b.set_defaults(fn=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status (2 for bad input)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except (KeyError, ValueError, FileNotFoundError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"vograd: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
