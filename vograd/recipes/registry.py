"""The recipes the CLI knows, by name.

A recipe module provides: ``CONFIG`` (its frozen dataclass), ``PRESETS``
(name -> config), ``DESCRIPTION``, and the builders ``system(config, classes)``,
``estimator(config)``, ``outer(config)``, ``learned_optimizer(config)``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from vograd.recipes.errors import UnknownNameError

_MODULES = {
    "adaptive": "vograd.recipes.adaptive",
    "metz2019": "vograd.recipes.metz2019",
    "andrychowicz2016": "vograd.recipes.andrychowicz2016",
    "metz2020": "vograd.recipes.metz2020",
}


def names() -> list[str]:
    """Returns the known recipe names."""
    return sorted(_MODULES)


def get(name: str) -> ModuleType:
    """Returns the recipe module called ``name``; unknown names are a clear error."""
    if name not in _MODULES:
        raise UnknownNameError(f"unknown recipe {name!r}; known recipes: {', '.join(names())}")
    return importlib.import_module(_MODULES[name])


def preset(name: str, preset_name: str):
    """Returns the config of ``preset_name`` of recipe ``name``."""
    module = get(name)
    if preset_name not in module.PRESETS:
        raise UnknownNameError(
            f"recipe {name!r} has no preset {preset_name!r}; presets: {', '.join(module.PRESETS)}"
        )
    return module.PRESETS[preset_name]
