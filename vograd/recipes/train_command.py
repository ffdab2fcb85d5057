"""``vograd train RECIPE``: the command built from a recipe's config class.

`train_command` makes one dataclass per recipe: its own options (``--out``,
``--preset``, ``--seed``, ``--ablation``, ``--estimator.class``, ...) and
every field of the config as a flag, nested ones by their path, the
estimator's and optimizer's settings too (`vograd.recipes.value_flags`),
each defaulting to the chosen preset's value after the ablation and the
estimator class. `base_config` is that default config. The flag types the
subcommands share (`Flag`, `Verbose`, `NoProgress`) live here too.

(No ``from __future__ import annotations`` here: tyro reads the annotations of
classes built inside functions, which must then be real types.)
"""

import dataclasses
import typing
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal, Optional

import tyro
from tyro.conf import arg

from vograd.recipes import registry, validate, value_flags
from vograd.recipes.errors import UnknownNameError, UsageError

Flag = tyro.conf.FlagCreatePairsOff  # --force, not also --no-force
Verbose = Annotated[Flag[bool], arg(aliases=("-v",), help="show INFO logs (JAX's included)")]
NoProgress = Annotated[Flag[bool], arg(help="no progress bars")]


def default_preset(recipe) -> str:
    """Returns the preset a recipe class runs without ``--preset``: ``demo`` if it has one."""
    return "demo" if "demo" in recipe.PRESETS else next(iter(recipe.PRESETS))


def estimator_classes(recipe: str) -> dict[str, type]:
    """Returns ``{name: class}`` of the estimators a recipe's config can hold."""
    from vograd.recipes.config import value_classes

    return value_classes(typing.get_type_hints(registry.get(recipe))["estimator"])


def base_config(recipe: str, preset: str, ablation: str | None, estimator: str | None = None):
    """Returns the config of ``preset`` of ``recipe`` with ``ablation`` applied, then its
    estimator made a ``estimator`` (a class name; the settings both classes have are kept,
    `vograd.recipes.recipe.as_estimator`). Names are checked."""
    from vograd.recipes.recipe import as_estimator

    known = registry.get(recipe).ABLATIONS
    config = registry.preset(recipe, preset)
    if ablation is not None:
        if ablation not in known:
            raise UnknownNameError(f"recipe {recipe!r} has no ablation {ablation!r}; "
                                   f"ablations: {', '.join(known) or '(none)'}")
        config = config.ablation(ablation)
    if estimator is not None and estimator != type(config.estimator).__name__:
        classes = estimator_classes(recipe)
        if estimator not in classes:
            raise UnknownNameError(f"recipe {recipe!r} has no estimator class {estimator!r}; "
                                   f"--estimator.class: {', '.join(classes)}")
        config = dataclasses.replace(config, estimator=as_estimator(classes[estimator],
                                                                    config.estimator))
    return config


def preset_overrides(recipe: str, preset: str, ablation: str | None, config) -> dict:
    """Returns the overrides (`vograd.recipes.overrides`) that make ``config`` from ``preset``
    of ``recipe`` with ``ablation``, in today's flags: ``estimator.class`` first when the
    estimator is of another class than the preset's, then every field that differs from
    the preset with that class."""
    from vograd.recipes import overrides

    preset_and_ablation = base_config(recipe, preset, ablation)
    name = type(config.estimator).__name__
    switched = type(preset_and_ablation.estimator) is not type(config.estimator)
    base = base_config(recipe, preset, ablation, name) if switched else preset_and_ablation
    return {**({"estimator.class": name} if switched else {}), **overrides.diff(base, config)}


def describe(recipe: str) -> str:
    """Returns one recipe's line for the listings: description, presets, ablations."""
    cls = registry.get(recipe)
    text = f"{cls.DESCRIPTION}. Presets: {', '.join(cls.PRESETS)}"
    if cls.ABLATIONS:
        text += f". Ablations: {', '.join(cls.ABLATIONS)}"
    return text


def check_buildable(config) -> None:
    """Raises `UsageError` if the recipe cannot build its system, estimator, outer optimizer
    or starting weights from ``config`` (e.g. an unknown dataset, conv options on an MLP,
    an unknown ``init_from``); datasets are cached, so training reuses what this loads."""
    from vograd.tasks.datasets import DatasetUnavailableError

    try:
        config.initial_theta()
        config.system("train")
        config.outer_optimizer()
    except (ValueError, KeyError, DatasetUnavailableError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise UsageError(f"invalid configuration: {msg}") from err

@dataclass(frozen=True)
class TrainBase:
    """The fields every ``vograd train RECIPE`` has; `train_command` adds the rest."""

    RECIPE: ClassVar[str]
    DESCRIPTION: ClassVar[str]

    def overrides(self) -> dict:
        """Returns what this command line changes (`vograd.recipes.overrides`): the
        estimator's class if it is not the preset's (or the ablation's), then every field
        that differs from the preset with that class."""
        return preset_overrides(self.RECIPE, self.preset, getattr(self, "ablation", None),
                                self.config)

    def run(self) -> int:
        from vograd.recipes import run

        ablation = getattr(self, "ablation", None)
        validate.check_seed(self.seed)
        validate.check_config(self.config)
        validate.check_run_dir(self.out)
        check_buildable(self.config)
        result = run.train(
            self.RECIPE, self.config, self.out, seed=self.seed, preset=self.preset,
            progress=not self.no_progress, ablation=ablation,
            overrides=self.overrides(), tensorboard=self.tensorboard,
        )
        resumed = f" (resumed from step {result.resumed_from})" if result.resumed_from else ""
        print(
            f"trained {self.RECIPE}/{self.preset} for {result.step} outer steps{resumed}; "
            f"skipped updates: {result.num_skipped}; run directory: {self.out}"
        )
        return 0


def train_command(recipe: str, preset: str, ablation: str | None,
                  estimator: str | None = None) -> type:
    """Returns the dataclass of ``vograd train RECIPE``; its config defaults are those of
    ``preset`` with ``ablation`` applied and the estimator of class ``estimator``."""
    cls = registry.get(recipe)
    config = base_config(recipe, preset, ablation, estimator)
    own = {"out", "preset", "seed", "ablation", "estimator_class", "no_progress", "verbose",
           "tensorboard"}
    clash = own & {f.name for f in dataclasses.fields(cls)}
    fields = [
        ("out", Annotated[str, arg(metavar="DIR", help=(
            "run directory: new, empty, or an existing run of the same config to resume"))]),
        ("preset", Annotated[Literal[tuple(cls.PRESETS)], arg(
            help="the preset whose values are the defaults below (they show those of "
                 f"{preset!r}; `--preset P --help` shows P's)")],
         dataclasses.field(default=preset)),
        ("seed", Annotated[int, arg(help="outer-training seed, an integer in [0, 2**32)")],
         dataclasses.field(default=0)),
    ]
    if cls.ABLATIONS:
        fields.append(("ablation", Annotated[Optional[Literal[tuple(cls.ABLATIONS)]], arg(
            help="apply this ablation to the preset (its changes show in the defaults)")],
            dataclasses.field(default=ablation)))
    fields += [
        ("estimator_class", Annotated[Literal[tuple(estimator_classes(recipe))], arg(
            name="estimator.class", help=(
                "the estimator's class; the preset's settings that it has are kept, the "
                "--estimator.* flags below are its own (they show those of the class "
                "given: `--estimator.class C --help` shows C's)"))],
         dataclasses.field(default=type(config.estimator).__name__)),
        ("no_progress", NoProgress, dataclasses.field(default=False)),
        ("tensorboard", Annotated[Flag[bool], arg(help=(
            "also write TensorBoard event files into DIR/tensorboard (the 'tensorboard' extra)"))],
         dataclasses.field(default=False)),
        ("verbose", Verbose, dataclasses.field(default=False)),
        ("config", Annotated[value_flags.with_value_flags(cls), arg(
            name="config" if clash else "")], dataclasses.field(default=config)),
    ]
    command = dataclasses.make_dataclass(f"Train_{recipe}", fields, bases=(TrainBase,),
                                         frozen=True)
    command.RECIPE = recipe
    command.DESCRIPTION = (describe(recipe) + f". Estimator: {type(config.estimator).__name__} "
                           f"(--estimator.*); learned optimizer: "
                           f"{type(config.optimizer).__name__} (--optimizer.*)")
    command.__doc__ = (f"Outer-train {recipe} (resumable: rerun the same command to continue). "
                       + command.DESCRIPTION)
    return command
