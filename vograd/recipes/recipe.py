"""`Recipe`: the base of the paper configs, one frozen dataclass per paper.

A recipe config is a value: it holds the outer-gradient estimator
(``estimator``, e.g. ``vograd.Merged(num_pairs=4, sigma=0.01)``) and the
learned optimizer (``optimizer``, e.g. ``AdaptiveMLPOptimizer(hidden=16,
lr=1e-2)``) themselves, next to the inner problems, truncation schedule,
outer optimizer settings and evaluation protocol. The estimator's
``window`` is derived: the truncation schedule's longest window, at most
``horizon`` (`vograd.train` replaces it per outer step), set whenever a
config is made. Its methods build the rest of what `vograd.train` needs:
`Recipe.system`, `Recipe.outer_optimizer`, `Recipe.initial_theta`. Its class carries
``DESCRIPTION``, ``PRESETS`` (name -> config) and ``ABLATIONS`` (name ->
function of a config returning the ablated one, a replacement of values).

Every subclass declares these fields: ``problem`` (or a ``problem``
property; ``extra_problems`` if it trains on more families), ``horizon``, ``truncation``, ``estimator``, ``optimizer``,
``outer_steps``, ``checkpoint_every`` and ``evaluation``.

A config is saved into a run's ``config.json`` by `vograd.recipes.config.to_dict`
(the estimator and the optimizer as ``{"class", "fields"}``, `vograd.spec`)
and read back by `Recipe.from_json`, which first brings a config of the
first format (string ``estimator``, optimizer settings as top-level fields)
into today's (`migrate`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

from vograd.recipes import config as cfg

# Fields of an estimator value that are not settings of a config: ``window`` is derived
# (`Recipe.__post_init__`), a device mesh is no JSON value. Neither is a command-line flag.
DERIVED_FIELDS = ("window", "mesh", "mesh_axis")
# The first format's ``estimator`` strings and the classes they built (read only by `migrate`).
V1_ESTIMATORS = {"merged": "Merged", "grad": "Reparameterization", "es": "EvolutionStrategies",
                 "nres": "NoiseReuseES"}


class Recipe:
    """Base class of the recipe configs (frozen dataclasses); see the module docstring."""

    DESCRIPTION: ClassVar[str]
    PRESETS: ClassVar[dict[str, Any]]
    ABLATIONS: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def __post_init__(self):
        # The estimator's compiled window is the schedule's longest (at most an episode);
        # `vograd.train` replaces it per outer step. Set here, it is never out of date.
        window = min(self.truncation.max_window(), self.horizon)
        if self.estimator.window != window:
            object.__setattr__(self, "estimator", dataclasses.replace(self.estimator, window=window))

    @property
    def extra_problems(self) -> tuple:
        """Returns the task families outer-trained on besides ``problem`` (none here; a
        recipe with several declares them), each evaluated by ``vograd eval --only extra``."""
        return ()

    def system(self, classes: str = "train"):
        """Returns the `vograd.UnrolledSystem` over the ``classes`` pool ("train" or "test")."""
        raise NotImplementedError

    def outer_optimizer(self):
        """Returns the outer ``optax.GradientTransformation``."""
        raise NotImplementedError

    def initial_theta(self):
        """Returns the weights outer training starts from, or None (a fresh initialisation)."""
        return None

    def ablation(self, name: str):
        """Returns this config with the named ablation applied; KeyError for an unknown name."""
        if name not in self.ABLATIONS:
            raise KeyError(f"unknown ablation {name!r}; known: {sorted(self.ABLATIONS)}")
        return self.ABLATIONS[name](self)

    @classmethod
    def migrate(cls, data: dict) -> dict:
        """Returns a config dict of the first format in today's (today's unchanged)."""
        return data

    @classmethod
    def from_json(cls, data: dict):
        """Returns the config of a ``config.json`` dict (`migrate`, then `config.from_dict`)."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: the config is a {type(data).__name__}, not an object")
        return cfg.from_dict(cls, cls.migrate(data))


class OneFamilyRecipe(Recipe):
    """A recipe outer-trained on its one ``problem`` family, with outer Adam at
    ``outer_lr`` (b1 = 0.9, as both the 2016 and the 2020 paper) after value clipping
    at ``clip_value`` (None: none). Subclasses declare those fields and ``outer``."""

    def system(self, classes: str = "train"):
        """Returns the `LearnedOptimizerSystem` over the ``classes`` pool."""
        return cfg.learned_optimizer_system(self.optimizer, self.problem, self.outer,
                                            self.horizon, classes)

    def outer_optimizer(self):
        """Returns value clipping (if ``clip_value``), then Adam(``outer_lr``, b1 = 0.9)."""
        from vograd.outer import outer_optimizer

        return outer_optimizer(self.outer_lr, b1=0.9, clip_value=self.clip_value)


def as_estimator(cls: type, estimator):
    """Returns a ``cls`` with every setting of ``estimator`` that ``cls`` also has (sample
    count, sigma, chunk, unroll, stagger, ...): an ablation swapping the estimator."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{f.name: getattr(estimator, f.name) for f in dataclasses.fields(estimator)
                  if f.init and f.name in names})


def is_first_format(data: dict) -> bool:
    """Returns whether a config dict is of the first format: no ``optimizer`` value and no
    ``{"class", "fields"}`` estimator (a string, or the default)."""
    return "optimizer" not in data and not isinstance(data.get("estimator"), dict)


def pop_chunk(data: dict) -> Any:
    """Returns the first format's ``truncation.chunk`` (removed from ``data``), else None."""
    if isinstance(data.get("truncation"), dict):
        data["truncation"] = dict(data["truncation"])
        return data["truncation"].pop("chunk", None)
    return None


def v1_smoothed_estimator(data: dict, *, num_pairs: int) -> dict:
    """Returns the spec of the estimator a first-format Metz 2019 or adaptive config built
    (its ``estimator`` string and settings popped from ``data``; missing ones take that
    format's defaults, ``num_pairs`` the recipe's; a missing ``stagger`` is False, the
    behaviour before the field existed)."""
    kind = data.pop("estimator", "merged")
    if kind not in V1_ESTIMATORS:
        raise ValueError(f"estimator must be one of {sorted(V1_ESTIMATORS)}, got {kind!r}")
    fields = {
        "num_pairs": data.pop("num_pairs", num_pairs), "sigma": data.pop("sigma", 0.01),
        "chunk": pop_chunk(data), "unroll": data.pop("unroll", 1),
        # a config without the field predates it: its particles were not staggered
        "stagger": data.pop("stagger", False),
    }
    weighting = data.pop("weighting", "per_element")
    if kind == "merged":  # the authors' rule: weights from the same pairs, no jump detection
        fields.update(weighting=weighting, weights="same_samples", detect_jumps=False)
    return {"class": V1_ESTIMATORS[kind], "fields": fields}


__all__ = ["DERIVED_FIELDS", "OneFamilyRecipe", "Recipe", "V1_ESTIMATORS", "as_estimator", "is_first_format",
           "pop_chunk", "v1_smoothed_estimator"]
