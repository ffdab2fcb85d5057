"""Command-line flags for the values a recipe config holds: its estimator and learned optimizer.

A config's ``estimator`` (``vograd.Merged(...)``) and ``optimizer``
(``AdaptiveMLPOptimizer(...)``) are equinox modules; tyro sees each as a
group of flags, one per setting, whose defaults are the preset's:
``--estimator.num-pairs 4``, ``--estimator.no-stagger``,
``--optimizer.hidden 8``. A union of estimator classes
(``Merged | Reparameterization | EvolutionStrategies | NoiseReuseES``) does
not become subcommands: the preset's (or ablation's, or ``--estimator.class``')
class is used and its settings are the flags, so ``--ablation grad_only
--estimator.sigma 0.1`` tunes the ablated estimator (`vograd.recipes.cli`
reads ``--preset``, ``--ablation`` and ``--estimator.class`` before tyro
builds the parser). The derived fields (`vograd.recipes.recipe.DERIVED_FIELDS`:
``window``, set from the truncation schedule, and the device ``mesh``) are
no flags.

`REGISTRY` is the tyro constructor registry that does this (`vograd.recipes.cli`
passes it to ``tyro.cli``); `HELP` says what each setting is.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

import tyro
from tyro.constructors import ConstructorRegistry, StructConstructorSpec, StructFieldSpec

from vograd.estimators import Estimator
from vograd.recipes.recipe import DERIVED_FIELDS
from vograd.tasks.optimizers.base import LearnedOptimizer

HELP = {
    # estimators
    "num_pairs": "antithetic pairs per outer update",
    "num_particles": "optimizee runs per outer update (truncated backprop through each)",
    "sigma": "smoothing standard deviation of the perturbations",
    "weighting": "merge weights per element of theta, or from total variances",
    "weights": "merge weights from the pairs they weight (the authors' rule) or cross-fitted",
    "detect_jumps": "use the ES estimate alone when a window's losses show a jump",
    "antithetic": "pairs of +eps and -eps perturbations (else single draws)",
    "chunk": "reverse-mode checkpointing granularity for long windows (None: no chunking)",
    "unroll": "lax.scan unroll of the inner steps",
    "burn_in": "steps re-run under the current theta before each window (0: none)",
    "stagger": "start the particles at random steps of their episodes",
    # learned optimizers
    "hidden": "hidden units of the optimizer's per-parameter MLP",
    "lr": "Adam learning rate the optimizer starts from (it is Adam at init)",
    "lr_mult": "scale of the learned log learning rate",
    "b2": "decay of the second-moment average",
    "eps": "added to the root second moment",
    "clip": "clip each MLP input to [-clip, clip]",
    "s_max": "bound of the learned log-scale of Adam's direction",
    "r_max": "bound of the learned residual direction",
    "u_max": "bound of the update before the learning rate",
    "decays": "momentum decays of the optimizer's input features",
    "taus": "time scales of the training-time features",
    "step_mult": "output scale of the update (0.001 in the paper)",
    "exp_mult": "scale of the learned log step",
    "use_momentum": "give the optimizer its momentum features",
    "use_time": "give the optimizer its training-time features",
    "fused_forward": "one fused elementwise loop per tensor (faster on CPU, slower to compile)",
    "layers": "LSTM layers",
    "units": "units per LSTM layer",
    "preprocess_p": "the paper's gradient preprocessing constant p",
    "output_scale": "scale of the LSTM's output update",
    "second_moment_decay": "decay of the second-moment average",
    "lstm_units": "units of the per-tensor LSTM",
    "embedding": "per-tensor embedding width fed to the per-parameter MLP",
    "message": "width of the message the tensors exchange",
}
# Settings typed as a plain ``str`` in their class whose choices the flag lists.
CHOICES = {
    "weighting": Literal["per_element", "total"],
    "weights": Literal["same_samples", "cross_fit"],
}

REGISTRY = ConstructorRegistry()


def _is_value(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, (Estimator, LearnedOptimizer))


@REGISTRY.struct_rule
def _value_rule(info) -> StructConstructorSpec | None:
    """Returns the flags of an estimator or learned-optimizer class: its settings, the
    derived fields left out (they keep the default's value)."""
    cls = info.type
    if not _is_value(cls):
        return None
    default = info.default if isinstance(info.default, cls) else None
    hints = typing.get_type_hints(cls)
    fields, kept = [], {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in DERIVED_FIELDS:
            if default is not None:
                kept[f.name] = getattr(default, f.name)
            continue
        value = getattr(default, f.name) if default is not None else (
            f.default if f.default is not dataclasses.MISSING else tyro.MISSING)
        fields.append(StructFieldSpec(f.name, CHOICES.get(f.name, hints[f.name]), value,
                                      helptext=HELP.get(f.name)))

    def instantiate(**settings):
        return cls(**kept, **settings)

    order = list(HELP)  # sample counts and sigma first, then the shared settings
    if issubclass(cls, Estimator):
        fields.sort(key=lambda f: order.index(f.name) if f.name in order else len(order))
    return StructConstructorSpec(instantiate=instantiate, fields=tuple(fields))


def with_value_flags(config_cls: type):
    """Returns the tyro type of a recipe config class: a union of value classes keeps its
    default's class (no subcommands)."""
    return tyro.conf.AvoidSubcommands[config_cls]


__all__ = ["CHOICES", "HELP", "REGISTRY", "with_value_flags"]
