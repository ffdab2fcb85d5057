"""The ``vograd`` subcommands as typed dataclasses: tyro turns each into a parser.

``train`` has one subcommand per registered recipe (`vograd.recipes.registry`),
built by `vograd.recipes.train_command` from the recipe's config class: every config field is
a flag (``--horizon``, ``--truncation.end``, ``--problem.batch-size``, the
estimator's and optimizer's settings as ``--estimator.num-pairs``,
``--optimizer.hidden``: `vograd.recipes.value_flags`) whose default is the
chosen preset's value (after the ablation). A recipe needs nothing
CLI-specific: a `vograd.recipes.recipe.Recipe` subclass with its
``PRESETS``, ``DESCRIPTION`` and ``ABLATIONS``.

Each command's ``run()`` returns the exit status; bad input raises
`vograd.recipes.errors.UsageError` before any work starts. (No ``from __future__
import annotations`` here: tyro reads the annotations of classes built inside
functions, which must then be real types.)
"""

import math
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

import tyro
from tyro.conf import Positional, arg

from vograd.recipes import registry, validate
from vograd.recipes.errors import UnknownNameError, UsageError
from vograd.recipes.train_command import (  # noqa: F401 (the train command's, re-exported)
    Flag,
    NoProgress,
    TrainBase,
    Verbose,
    base_config,
    check_buildable,
    default_preset,
    describe,
    estimator_classes,
    train_command,
)

@dataclass(frozen=True)
class Recipes:
    """List the recipes with their presets and ablations."""

    verbose: Verbose = False

    def run(self) -> int:
        for name in registry.names():
            recipe = registry.get(name)
            print(f"{name}: {recipe.DESCRIPTION}")
            print(f"  presets: {', '.join(recipe.PRESETS)}")
            if recipe.ABLATIONS:
                print(f"  ablations: {', '.join(recipe.ABLATIONS)}")
        return 0


@dataclass(frozen=True)
class Eval:
    """Evaluate a trained run against tuned baselines; writes DIR/eval*/ (report.md, plots)."""

    dir: Annotated[Positional[str], arg(metavar="DIR", help="a trained run directory")]
    only: Annotated[Optional[str], arg(
        help="comma-separated parts: heldout, extra, generalization (default: these three), "
             "suite (the unseen-task suite, ~20 min)")] = None
    cache_dir: Annotated[Optional[str], arg(
        help="baseline curves cache (default: $VOGRAD_CACHE_DIR/baselines or "
             "~/.cache/vograd/baselines)")] = None
    no_cache: Annotated[Flag[bool], arg(help="recompute every baseline")] = False
    seed: Annotated[int, arg(help="evaluation seed (which held-out tasks), in [0, 2**32)")] = 0
    no_progress: NoProgress = False
    verbose: Verbose = False

    def run(self) -> int:
        from vograd.recipes import curve_cache, evaluate_run

        parts = evaluate_run.PARTS
        if self.only is not None:
            parts = tuple(p.strip() for p in self.only.split(","))
            known = evaluate_run.PARTS + evaluate_run.OPTIONAL_PARTS
            unknown = [p for p in parts if p not in known]
            if unknown or not parts:
                raise UsageError(f"--only: unknown evaluation parts {unknown}; "
                                 f"known: {', '.join(known)}")
        validate.check_seed(self.seed)
        if not validate.is_run(self.dir):
            raise UsageError(f"{self.dir} is not a run directory (no readable config.json)")
        cache = None if self.no_cache else (self.cache_dir or curve_cache.default_directory())
        print(evaluate_run.evaluate(self.dir, seed=self.seed, progress=not self.no_progress,
                                    parts=parts, cache_dir=cache))
        return 0


@dataclass(frozen=True)
class Export:
    """Save a trained run's weights as vograd.tasks.pretrained entry NAME (in the user's
    data directory: $VOGRAD_DATA_DIR/pretrained, or the platform's per-user one)."""

    dir: Annotated[Positional[str], arg(metavar="DIR", help="a trained run directory")]
    name: Annotated[Positional[str], arg(metavar="NAME", help=(
        "the name for vograd.tasks.pretrained.load(NAME): letters, digits, '.', '_', '-'"))]
    dest: Annotated[Optional[str], arg(metavar="DIR", help=(
        "write into this directory instead (load it with load(NAME, DIR))"))] = None
    force: Annotated[Flag[bool], arg(help="replace an existing entry of that name")] = False
    verbose: Verbose = False

    def run(self) -> int:
        from vograd.recipes import run

        print(f"wrote {run.export(self.dir, self.name, self.dest, force=self.force)}")
        return 0


def _recipes_with_ablations() -> tuple[str, ...]:
    return tuple(n for n in registry.names() if registry.get(n).ABLATIONS)


def ablations_command() -> type:
    """Returns the dataclass of ``vograd ablations`` (recipe choices from the registry)."""
    recipes = _recipes_with_ablations()

    @dataclass(frozen=True)
    class Ablations:
        """Train every ablation of a recipe over several seeds and score them (Figure 8)."""

        recipe: Annotated[Positional[Literal[recipes]], arg(
            metavar="{" + ",".join(recipes) + "}", help="the recipe; its ablations: " + "; ".join(
                f"{r}: {', '.join(registry.get(r).ABLATIONS)}" for r in recipes))]
        out: Annotated[str, arg(metavar="DIR", help="study directory: new, empty or a study")]
        preset: Annotated[str, arg(help="the recipe's preset")] = "demo"
        seeds: Annotated[int, arg(help="seeds per ablation, >= 1")] = 3
        only: Annotated[Optional[str], arg(help="comma-separated ablation names")] = None
        no_progress: NoProgress = False
        verbose: Verbose = False

        def run(self) -> int:
            from vograd.recipes import ablations

            known = registry.get(self.recipe).ABLATIONS
            registry.preset(self.recipe, self.preset)
            validate.check_count(self.seeds, "--seeds")
            only = None
            if self.only is not None:
                only = [a.strip() for a in self.only.split(",")]
                unknown = [a for a in only if a not in known]
                if unknown or not only:
                    raise UnknownNameError(f"--only: unknown ablations {unknown}; "
                                           f"ablations: {', '.join(known)}")
            validate.check_study_dir(self.out, list(known))
            print(ablations.run(self.recipe, self.preset, self.out, seeds=self.seeds, only=only,
                                progress=not self.no_progress))
            return 0

    return Ablations


@dataclass(frozen=True)
class Suite:
    """Run learned optimizers on the unseen-task suite against tuned Adam and SGD+momentum
    (docs/results.md); run directories given together are pooled as outer seeds."""

    sources: Annotated[Positional[tuple[str, ...]], arg(metavar="RUN_OR_NAME", help=(
        "trained run directories and/or vograd.tasks.pretrained names"))]
    out: Annotated[str, arg(metavar="DIR", help="where report.md, suite.json and the PNGs go")]
    tasks: Annotated[Optional[str], arg(help=(
        "comma-separated suite task names (default: all, and the loss-scale check)"))] = None
    seeds: Annotated[int, arg(help="inner seeds per task, >= 1")] = 3
    quick: Annotated[int, arg(help="divide every task's steps by this (a quick look, >= 1)")] = 1
    cache_dir: Annotated[Optional[str], arg(help=(
        "keep every run's curves here and reuse them (default: the user cache directory)"))] = None
    no_cache: Annotated[Flag[bool], arg(help="recompute every curve; read and write no cache")] = False
    rate_factors: Annotated[tuple[float, ...], arg(metavar="F", help=(
        "diagnosis: run each AdaptiveMLPOptimizer source with its global rate times each F "
        "(e.g. 0.25 0.5 1), one row per factor"))] = ()
    verbose: Verbose = False

    def run(self) -> int:
        from vograd.recipes import curve_cache, suite_run

        validate.check_count(self.seeds, "--seeds")
        validate.check_count(self.quick, "--quick")
        bad = [f for f in self.rate_factors if not (math.isfinite(f) and f > 0)]
        if bad:
            raise UsageError(f"--rate-factors must be finite and > 0, got {bad}")
        cache = None if self.no_cache else (self.cache_dir or curve_cache.default_directory())
        try:
            print(suite_run.compare(list(self.sources), self.out, tasks=self.tasks,
                                    num_seeds=self.seeds, quick=self.quick, cache_dir=cache,
                                    rate_factors=self.rate_factors))
        except KeyError as e:
            raise UnknownNameError(str(e.args[0]) if e.args else str(e)) from None
        except ValueError as e:
            raise UsageError(str(e)) from None
        return 0


@dataclass(frozen=True)
class Bench:
    """Benchmarks: estimator quality (Figures 2-4) or speed."""

    which: Annotated[Positional[Literal["estimators", "speed"]], arg(metavar="WHICH")]
    out: Annotated[Optional[str], arg(metavar="DIR", help="output directory")] = None
    quick: Annotated[Flag[bool], arg(help="small sizes, for a smoke run")] = False
    verbose: Verbose = False

    def run(self) -> int:
        if self.out is not None and not self.out.strip():
            raise UsageError("--out must name a directory, got ''")
        if self.which == "estimators":
            from vograd.benchmarks.estimators import run as bench
        else:
            from vograd.benchmarks.speed import run as bench
        print(bench.main(out_dir=self.out, quick=self.quick))
        return 0


@dataclass(frozen=True)
class Reproduce:
    """Re-run a paper finding at this machine's scale: results.json, report.md and plots in
    --out (resumable: rerun the same command to continue). docs/reproductions.md has the
    results of the full runs."""

    name: Annotated[Positional[Optional[str]], arg(metavar="NAME", help=(
        "the reproduction (`vograd reproduce --list` lists them)"))] = None
    list: Annotated[Flag[bool], arg(help="list the reproductions: name, paper, figure, claim")] = (
        False)
    size: Annotated[Literal["tiny", "full"], arg(help=(
        "full: the reported scale (minutes); tiny: seconds, a smoke run"))] = "full"
    seeds: Annotated[Optional[int], arg(help="seeds (default: the reproduction's, 3)")] = None
    out: Annotated[Optional[str], arg(metavar="DIR", help=(
        "output directory (default: runs/reproduce/NAME)"))] = None
    no_progress: NoProgress = False
    verbose: Verbose = False

    def run(self) -> int:
        from vograd.recipes import reproductions

        if self.list:
            if self.name is not None:
                raise UsageError("reproduce: give either NAME or --list, not both")
            for name in reproductions.names():
                r = reproductions.get(name)
                print(f"{name}: {r.paper}, {r.figure}\n  claim: {r.claim}")
            return 0
        if self.name is None:
            raise UsageError("reproduce: missing NAME (`vograd reproduce --list` lists them)")
        reproductions.get(self.name)  # an unknown name: UnknownNameError listing the known ones
        if self.seeds is not None:
            validate.check_count(self.seeds, "--seeds")
        if self.out is not None and not self.out.strip():
            raise UsageError("--out must name a directory, got ''")
        out = self.out or f"runs/reproduce/{self.name}"
        results = reproductions.reproduce(self.name, out, self.size, self.seeds,
                                          progress=not self.no_progress)
        print(f"{self.name}: {results['verdict']}; report: {out}/report.md")
        return 0


def command_type(recipe: str | None, preset: str | None, ablation: str | None,
                 estimator: str | None = None):
    """Returns the tyro type of the whole command line: a union of the subcommands.

    ``recipe``, ``preset``, ``ablation``, ``estimator`` (a class name): what the
    command line names (read before parsing), so that ``train RECIPE``'s
    defaults are that preset's.
    """
    trains = []
    for name in registry.names():
        chosen = name == recipe
        cls = train_command(name, preset if chosen and preset else default_preset(registry.get(name)),
                            ablation if chosen else None, estimator if chosen else None)
        trains.append(Annotated[cls, tyro.conf.subcommand(name, description=cls.DESCRIPTION)])

    @dataclass(frozen=True)
    class Train:
        """Outer-train a recipe (resumable). `vograd train RECIPE --help` lists its fields."""

        recipe: Annotated[Union_(trains), arg(name="")]

        def run(self) -> int:
            return self.recipe.run()

        @property
        def verbose(self) -> bool:
            return self.recipe.verbose

    sub = tyro.conf.subcommand
    return Union_([
        Annotated[Recipes, sub("recipes", description=Recipes.__doc__)],
        Annotated[Train, sub("train", description="Outer-train a recipe (resumable).")],
        Annotated[Eval, sub("eval", description="Evaluate a trained run against tuned baselines.")],
        Annotated[Export, sub("export", description=(
            "Save a trained run's weights as a vograd.tasks.pretrained entry."))],
        Annotated[ablations_command(), sub("ablations", description=(
            "Train every ablation over several seeds (Figure 8)."))],
        Annotated[Suite, sub("suite", description=(
            "Learned optimizers on problems of types they never saw, against tuned baselines."))],
        Annotated[Bench, sub("bench", description="Benchmarks: estimator quality or speed.")],
        Annotated[Reproduce, sub("reproduce", description=(
            "Re-run a paper finding at this machine's scale (docs/reproductions.md)."))],
    ])


def Union_(types: list):
    """Returns ``typing.Union`` of ``types`` (a single type stays itself)."""
    from typing import Union

    return Union[tuple(types)] if len(types) > 1 else types[0]
