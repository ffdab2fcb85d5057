"""The recipes the CLI knows, by name: each a `vograd.recipes.recipe.Recipe` class.

A recipe class carries its ``DESCRIPTION``, ``PRESETS`` (name -> config) and
``ABLATIONS``; a config builds its system, estimator and outer optimizer
(`Recipe`). Classes are imported when first asked for.
"""

from __future__ import annotations

import importlib

from vograd.recipes.errors import UnknownNameError

_RECIPES = {
    "adaptive": ("vograd.recipes.adaptive", "Adaptive"),
    "metz2019": ("vograd.recipes.metz2019", "Metz2019"),
    "andrychowicz2016": ("vograd.recipes.andrychowicz2016", "Andrychowicz2016"),
    "metz2020": ("vograd.recipes.metz2020", "Metz2020"),
}


def names() -> list[str]:
    """Returns the known recipe names."""
    return sorted(_RECIPES)


def get(name: str) -> type:
    """Returns the `Recipe` class called ``name``; unknown names are a clear error."""
    if name not in _RECIPES:
        raise UnknownNameError(f"unknown recipe {name!r}; known recipes: {', '.join(names())}")
    module, cls = _RECIPES[name]
    return getattr(importlib.import_module(module), cls)


def name_of(config) -> str:
    """Returns the registered name of ``config``'s recipe class."""
    for name in names():
        if type(config) is get(name):
            return name
    raise UnknownNameError(f"{type(config).__name__} is not a registered recipe")


def preset(name: str, preset_name: str):
    """Returns the config of ``preset_name`` of recipe ``name``."""
    recipe = get(name)
    if preset_name not in recipe.PRESETS:
        raise UnknownNameError(
            f"recipe {name!r} has no preset {preset_name!r}; presets: {', '.join(recipe.PRESETS)}"
        )
    return recipe.PRESETS[preset_name]
