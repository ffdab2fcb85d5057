"""Writes recipes_v1.json: every recipe preset and ablation as the pre-typed code saw it.

Run once against the code before recipes held typed estimator and optimizer
values (commit e60da24; regenerated at 96475a9, whose adaptive presets changed):
``PYTHONPATH=OLD_CHECKOUT python tests/data/make_recipes_v1.py``.
For each preset it records the config as that code wrote it into a run's
``config.json`` (the old format, with string estimators and optimizer fields)
and the specs of the estimator and learned optimizer that code built from it.
``tests/test_recipe_values.py`` checks that the migrated config is today's
preset and builds the same values.
"""

import dataclasses
import json
from pathlib import Path

from vograd.recipes import config as cfg
from vograd.recipes import registry


def _spec(value):
    fields = {}
    for f in dataclasses.fields(value):
        v = getattr(value, f.name)
        fields[f.name] = list(v) if isinstance(v, tuple) else v
    return {"class": type(value).__name__, "fields": fields}


def main():
    out = {}
    for name in registry.names():
        module = registry.get(name)
        for preset, base in module.PRESETS.items():
            for ablation in (None, *getattr(module, "ABLATIONS", ())):
                config = base if ablation is None else module.ablation(base, ablation)
                entry = {"config": cfg.to_dict(config),
                         "optimizer": _spec(module.learned_optimizer(config))}
                try:
                    entry["estimator"] = _spec(module.estimator(config))
                except ValueError as err:  # e.g. paper/trunc10: chunk 50 does not divide 10
                    entry["error"] = str(err)
                out[f"{name}/{preset}" + (f"/{ablation}" if ablation else "")] = entry
    path = Path(__file__).with_name("recipes_v1.json")
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}: {len(out)} configs")


if __name__ == "__main__":
    main()
