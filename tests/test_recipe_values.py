"""Recipes hold their estimator and learned optimizer as typed values, saved as {"class", "fields"}.

The reference (tests/data/recipes_v1.json, tests/data/make_recipes_v1.py) is
every preset and ablation as the code before typed values wrote it to a run's
config.json and built its estimator and optimizer: the migrated old config
must be today's preset and build exactly those values, so no result changes.
"""

import dataclasses
import json
from pathlib import Path

import pytest

import vograd
from vograd import spec
from vograd.recipes import cli, config as cfg, overrides, registry, run
from vograd.recipes.errors import UsageError
from vograd.tasks import pretrained
from vograd.tasks.optimizers import AdaptiveMLPOptimizer, MLPOptimizer

REFERENCE = json.loads((Path(__file__).parent / "data" / "recipes_v1.json").read_text())
ROOT = Path(__file__).resolve().parents[1]


def _today(key: str):
    name, preset, *ablation = key.split("/")
    config = registry.preset(name, preset)
    return config.ablation(ablation[0]) if ablation else config


def _spec(value) -> dict:
    return json.loads(json.dumps(spec.to_spec(value, {type(value).__name__: type(value)})))


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_every_preset_and_ablation_builds_the_values_the_old_code_built(key):
    ref = REFERENCE[key]
    recipe = registry.get(key.split("/")[0])
    if "error" in ref:  # the old code could not build it either (chunk 50, window 10)
        with pytest.raises(ValueError, match="chunk"):
            _today(key)
        with pytest.raises(ValueError, match="chunk"):
            recipe.from_json(ref["config"])
        return
    today = _today(key)
    assert _spec(today.estimator) == ref["estimator"]
    assert _spec(today.optimizer) == ref["optimizer"]
    # The old config.json of that run reads as today's config.
    assert recipe.from_json(ref["config"]) == today


def test_config_round_trips_through_config_json_with_values_as_class_and_fields():
    for name in registry.names():
        recipe = registry.get(name)
        for preset in recipe.PRESETS.values():
            data = json.loads(json.dumps(cfg.to_dict(preset)))
            assert data["estimator"]["class"] == type(preset.estimator).__name__
            assert data["optimizer"] == pretrained.optimizer_spec(preset.optimizer)
            assert recipe.from_json(data) == preset
            assert recipe.migrate(data) == data  # today's format passes unchanged


def test_unknown_classes_and_forged_values_in_config_json_are_clear_errors(tmp_path):
    base = cfg.to_dict(registry.preset("adaptive", "demo"))
    forged = {
        "an unknown class": ({"class": "os.system", "fields": {}}, "unknown class 'os.system'"),
        "another recipe's estimator": ({"class": "PersistentES", "fields": {}},
                                       "unknown class 'PersistentES'"),
        "an unknown field": ({"class": "Merged", "fields": {"num_pairs": 2, "evil": 1}},
                             "Merged has no field 'evil'"),
        "a refused setting": ({"class": "Merged", "fields": {"num_pairs": 0}},
                              "the Merged spec does not build"),
        "not a spec": ([1, 2], "not an object"),
        "a nested object": ({"class": "Merged", "fields": {"sigma": {"a": 1}}},
                            "not a JSON scalar"),
    }
    for what, (value, message) in forged.items():
        out = tmp_path / what.replace(" ", "_").replace("'", "")
        out.mkdir()
        record = {"recipe": "adaptive", "preset": "demo", "seed": 0,
                  "config": {**base, "estimator": value}}
        (out / "config.json").write_text(json.dumps(record))
        with pytest.raises(UsageError, match="not a readable vograd run configuration") as info:
            run.read_run(out)
        assert "Adaptive.estimator" in str(info.value) and message in str(info.value), what
    optimizer = {**base, "optimizer": {"class": "MLPOptimizer", "fields": {}}}
    with pytest.raises(ValueError, match="Adaptive.optimizer: unknown class 'MLPOptimizer'"):
        registry.get("adaptive").from_json(optimizer)


def test_migration_maps_the_first_format_to_values():
    old = {"horizon": 300, "estimator": "es", "num_pairs": 3, "sigma": 0.02, "unroll": 2,
           "weighting": "total", "truncation": {"fixed": 10, "chunk": 5},
           "use_time": False, "step_mult": 0.01}
    new = registry.get("metz2019").migrate(old)
    assert new["estimator"] == {"class": "EvolutionStrategies", "fields": {
        "num_pairs": 3, "sigma": 0.02, "chunk": 5, "unroll": 2, "stagger": False}}
    assert new["optimizer"] == {"class": "MLPOptimizer", "fields": {
        "use_momentum": True, "use_time": False, "step_mult": 0.01}}
    assert new["truncation"] == {"fixed": 10} and old["truncation"] == {"fixed": 10, "chunk": 5}
    config = registry.get("metz2019").from_json(old)
    assert config.estimator == vograd.EvolutionStrategies(
        num_pairs=3, sigma=0.02, window=10, chunk=5, unroll=2)
    assert not config.optimizer.use_time and config.optimizer.step_mult == 0.01
    nres = registry.get("adaptive").from_json({"estimator": "nres", "num_pairs": 3})
    # no ``stagger`` key: the config predates the field, whose behaviour was no staggering
    assert nres.estimator == vograd.NoiseReuseES(num_pairs=3, sigma=0.01, stagger=False,
                                                 window=nres.estimator.window)
    # Today's format with a value left out: that value's default, nothing migrated.
    partial = registry.get("metz2019").from_json({"estimator": {"class": "Merged", "fields": {
        "num_pairs": 3}}})
    assert partial.estimator.num_pairs == 3 and partial.optimizer == MLPOptimizer()
    with pytest.raises(ValueError, match="estimator must be one of"):
        registry.get("metz2019").migrate({"estimator": "sgd"})


@pytest.mark.parametrize("run_dir", sorted(
    str(p.parent.relative_to(ROOT)) for p in (ROOT / "docs" / "results").rglob("config.json")))
def test_committed_run_directories_still_read(run_dir):
    """docs/results/ holds runs of both formats: each reads for eval, suite and resume; a
    first-format one migrated to the values the old code built, a today's-format one to the
    values it records (and it writes back the same JSON)."""
    from vograd.recipes.recipe import is_first_format

    recipe, config, record = run.read_run(ROOT / run_dir)
    assert recipe is registry.get(record["recipe"]) and isinstance(config, recipe)
    old = record["config"]
    if not is_first_format(old):
        written = json.loads(json.dumps(cfg.to_dict(config)))
        assert written == old and recipe.from_json(written) == config
        return
    settings = dict(num_pairs=old["num_pairs"], sigma=old["sigma"], unroll=old["unroll"],
                    stagger=old.get("stagger", False),
                    window=min(config.truncation.max_window(), config.horizon))
    if old["estimator"] == "merged":
        expected = vograd.Merged(weighting=old["weighting"], **settings)
    else:
        classes = {"grad": vograd.Reparameterization, "es": vograd.EvolutionStrategies,
                   "nres": vograd.NoiseReuseES}
        expected = classes[old["estimator"]](**settings)
    assert config.estimator == expected
    assert config.optimizer == AdaptiveMLPOptimizer(hidden=old["hidden"], lr=old["lr"])


def test_nested_estimator_and_optimizer_fields_are_flags():
    parsed = cli.parse(["train", "adaptive", "--out", "x", "--estimator.num-pairs", "4",
                        "--estimator.no-stagger", "--optimizer.hidden", "8"])
    config = parsed.recipe.config
    base = registry.preset("adaptive", "demo")
    assert config == dataclasses.replace(
        base, estimator=dataclasses.replace(base.estimator, num_pairs=4, stagger=False),
        optimizer=AdaptiveMLPOptimizer(hidden=8, lr=1e-2))
    # An ablation that swaps the estimator's class makes its fields the flags.
    parsed = cli.parse(["train", "metz2019", "--out", "x", "--ablation", "grad_only",
                        "--estimator.sigma", "0.1"])
    assert parsed.recipe.config.estimator == vograd.Reparameterization(
        num_pairs=4, sigma=0.1, window=32)
    # --estimator.class picks another class of the union, keeping the preset's settings it has;
    # the overrides record it, and their flags give the same config again.
    argv = ["train", "adaptive", "--out", "x", "--estimator.class", "Merged",
            "--estimator.num-pairs", "3"]
    parsed = cli.parse(argv)
    assert parsed.recipe.config.estimator == vograd.Merged(
        num_pairs=3, sigma=0.01, stagger=True, window=25)
    changes = parsed.recipe.overrides()
    assert changes == {"estimator.class": "Merged", "estimator.num_pairs": 3}
    again = cli.parse(["train", "adaptive", "--out", "x", *overrides.as_flags(changes)])
    assert again.recipe.config == parsed.recipe.config
    assert cli.main([*argv[:4], "--estimator.class", "PersistentES", "--help"]) == 2


@pytest.mark.parametrize("run_dir", ["docs/results/adaptive-v2/s2", "docs/results/adaptive-v3/s0"])
def test_exported_command_remakes_the_run_config_with_todays_flags(run_dir, tmp_path):
    """A first-format run's recorded overrides name flags that no longer exist (--num-pairs,
    --estimator nres): the exported header's command is written from the config instead."""
    import shlex

    run.export(ROOT / run_dir, "probe", dest=tmp_path)
    command = pretrained.info("probe", tmp_path)["command"]
    assert "--num-pairs" not in command and "--hidden" not in command
    parsed = cli.parse(shlex.split(command.replace("RUN_DIR", str(tmp_path / "r")))[1:])
    assert parsed.recipe.config == run.read_run(ROOT / run_dir)[1]
