"""Configured values as JSON: ``{"class": name, "fields": {...}}``, from an allow-list of classes.

An estimator (`vograd.Merged(num_pairs=4, sigma=0.01)`) or a learned
optimizer is a frozen equinox module whose fields are static settings:
numbers, strings, booleans, None and tuples of them. `to_spec` writes such a
value as its class name and every constructor field; `from_spec` rebuilds it,
but only as one of the ``classes`` it is given (never a class named by the
file alone), so a config or checkpoint header cannot make the reader import
or call anything else. Whoever reads a spec from a file chooses the
allow-list: the pretrained optimizers (`vograd.tasks.pretrained`) and the
recipe configs (`vograd.recipes.config`) both use these two functions.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

Spec = dict[str, Any]
_SCALARS = (int, float, str, bool, type(None))


def is_setting(value: Any) -> bool:
    """Returns whether ``value`` is a JSON setting: a scalar, None, or a list of scalars."""
    if isinstance(value, list):
        return all(isinstance(v, _SCALARS) and v is not None for v in value)
    return isinstance(value, _SCALARS)


def to_spec(value: Any, classes: Mapping[str, type]) -> Spec:
    """Returns ``{"class": name, "fields": {...}}``: every constructor field of ``value``
    (tuples as lists), enough for `from_spec` to rebuild it.

    ``type(value)`` must be one of ``classes`` and every field a static JSON
    setting (`is_setting`); TypeError otherwise.
    """
    cls = type(value).__name__
    if classes.get(cls) is not type(value):
        raise TypeError(f"cannot write a {cls}; known classes: {sorted(classes)}")
    fields = {}
    for f in dataclasses.fields(value):
        if not f.init:
            continue
        setting = getattr(value, f.name)
        if isinstance(setting, tuple):
            setting = list(setting)
        if not is_setting(setting):
            raise TypeError(f"{cls}.{f.name} = {setting!r} is not a JSON-able setting")
        fields[f.name] = setting
    return {"class": cls, "fields": fields}


def spec_problem(spec: Any, classes: Mapping[str, type]) -> str | None:
    """Returns what is wrong with the shape of a spec read from a file, or None: it must be
    an object with a known ``class`` and ``fields`` mapping constructor field names to
    JSON settings."""
    if not isinstance(spec, dict) or not isinstance(spec.get("fields", {}), dict):
        return (f"the spec is a {type(spec).__name__}, "
                "not an object {'class': ..., 'fields': {...}}")
    unknown_keys = set(spec) - {"class", "fields"}
    if unknown_keys:
        return f"unknown spec keys {sorted(unknown_keys)} (expected 'class' and 'fields')"
    cls = classes.get(spec.get("class")) if isinstance(spec.get("class"), str) else None
    if cls is None:
        return f"unknown class {spec.get('class')!r}; known: {sorted(classes)}"
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for key, value in spec.get("fields", {}).items():
        if key not in names:
            return f"{cls.__name__} has no field {key!r}; its fields: {sorted(names)}"
        if not is_setting(value):
            return f"setting {key} = {value!r} is not a JSON scalar or a list of them"
    return None


def from_spec(spec: Any, classes: Mapping[str, type]) -> Any:
    """Returns the value a `to_spec` dict describes, built as one of ``classes``.

    Fields the spec leaves out take the class's defaults (a field added since
    the file was written). ValueError, saying what is wrong, for a malformed
    spec, an unknown class or field, or settings the constructor refuses.
    """
    problem = spec_problem(spec, classes)
    if problem is not None:
        raise ValueError(problem)
    cls = classes[spec["class"]]
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.get("fields", {}).items()}
    try:
        return cls(**fields)
    except (TypeError, ValueError) as err:  # the constructor's own checks of its settings
        raise ValueError(f"the {cls.__name__} spec does not build: {err}") from err


__all__ = ["Spec", "from_spec", "is_setting", "spec_problem", "to_spec"]
