"""The ``vograd`` command line: help listings, overrides in config.json, one-line errors, export."""

import dataclasses
import errno
import json
import logging
import typing

import equinox as eqx
import jax
import numpy as np
import pytest

from vograd.recipes import cli, commands, metz2019, overrides, registry, run, validate
from vograd.recipes.cli import main
from vograd.recipes.recipe import DERIVED_FIELDS
from vograd.tasks import pretrained

# A two-step andrychowicz2016 run on 10-d quadratics: no dataset, about 30 s on 2 busy cores.
TINY = ["--outer-steps", "2", "--checkpoint-every", "1", "--truncation.fixed", "4",
        "--estimator.num-particles", "2", "--no-progress"]


@pytest.fixture(autouse=True)
def wide_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapped flag names in the help boxes


def _flags(config, prefix=""):
    """Yields the flag of every leaf field of a config (nested ones by their dotted path).

    A tuple of dataclasses keeps its length on the command line: an empty one
    (``extra_problems=()``) has no flags."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        if not f.init or (isinstance(config, eqx.Module) and f.name in DERIVED_FIELDS):
            continue  # an estimator's window follows the truncation; a mesh is no flag
        value = getattr(config, f.name)
        if value == () and any(dataclasses.is_dataclass(a) for a in typing.get_args(hints[f.name])):
            continue
        if dataclasses.is_dataclass(value):
            yield from _flags(value, f"{prefix}{f.name}.")
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, v in enumerate(value):
                yield from _flags(v, f"{prefix}{f.name}.{i}.")
        else:
            yield validate.flag(prefix + f.name)


def test_help_lists_recipes_presets_ablations_and_every_field_with_its_default(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for name in registry.names():
        module = registry.get(name)
        assert name in top and ", ".join(module.PRESETS) in top
    assert ", ".join(metz2019.ABLATIONS) in top and "--version" in top
    for command in ("recipes", "train", "eval", "export", "ablations", "bench"):
        assert command in top
    assert main(["train", "--help"]) == 0
    listing = capsys.readouterr().out
    assert all(n in listing for n in registry.names())
    # Each recipe: every config field is a flag; its default is the chosen preset's.
    for name in registry.names():
        module = registry.get(name)
        for preset in module.PRESETS:
            assert main(["train", name, "--preset", preset, "--help"]) == 0
            text = capsys.readouterr().out
            missing = [f for f in _flags(module.PRESETS[preset]) if f not in text]
            assert not missing, (name, preset, missing)
    assert main(["train", "metz2019", "--preset", "small", "--help"]) == 0
    small = capsys.readouterr().out
    line = small[small.index("--truncation.end"):].split("\n")[:2]
    assert "(default: 150)" in " ".join(line)  # small's curriculum ends at 150, demo's at 26
    # An ablation's changes show as defaults too: es_only's estimator has ES's settings.
    assert main(["train", "metz2019", "--ablation", "es_only", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--estimator.num-pairs" in text and "--estimator.weighting" not in text
    assert "Estimator: EvolutionStrategies (--estimator.*)" in " ".join(text.split())
    assert main(["train", "metz2019", "--ablation", "no_time", "--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: False)" in " ".join(text[text.index("--optimizer.use-time"):].split("\n")[:2])
    # Fields say what they are (their source comments), nested ones too.
    assert main(["train", "adaptive", "--preset", "default", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("antithetic pairs per outer update", "Adam learning rate the optimizer starts from",
                  "inner minibatch size", "smallest compiled window"):
        assert words in text, words
    for command in ("eval", "export", "bench", "ablations metz2019", "recipes"):
        assert main([*command.split(), "--help"]) == 0
    assert "--force" in capsys.readouterr().out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vograd {cli.version()}"


def test_jax_info_logs_only_with_verbose(capsys):
    jax_logger = logging.getLogger("jax._src.xla_bridge")
    assert main(["recipes"]) == 0
    assert not jax_logger.isEnabledFor(logging.INFO)
    assert logging.getLogger("vograd.tasks.datasets").isEnabledFor(logging.INFO)
    assert main(["recipes", "-v"]) == 0
    assert jax_logger.isEnabledFor(logging.INFO)
    main(["recipes"])  # back to the default for the other tests


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vograd: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, message", [
    (["train", "nope", "--out", "{tmp}/r"], "unknown recipe 'nope'"),
    (["train", "metz2019", "--preset", "huge", "--out", "{tmp}/r"], "no preset 'huge'"),
    (["train", "metz2019", "--ablation", "nope", "--out", "{tmp}/r"], "no ablation 'nope'"),
    (["train", "metz2019", "--out", "{tmp}/r", "--sigmaa", "1"], "--sigmaa"),
    (["train", "metz2019", "--out", "{tmp}/r", "--truncation.ennd", "1"],
     "--truncation.ennd, 1 (perhaps you meant --truncation.end"),
    (["train", "metz2019", "--out", "{tmp}/r", "--horizon", "ten"], "--horizon"),
    (["train", "metz2019", "--out", "{tmp}/r", "--estimator.weighting", "sgd"], "'sgd'"),
    (["train", "metz2019", "--out", "{tmp}/r", "--estimator", "grad"], "--estimator"),
    (["train", "metz2019", "--out", "{tmp}/r", "--estimator.num-pairs", "1"],
     "Error parsing --estimator: num_pairs must be an integer >= 2"),
    (["train", "metz2019", "--out", "{tmp}/r", "--estimator.window", "8"], "--estimator.window"),
    (["train", "metz2019", "--out", "{tmp}/r", "--estimator.class", "PersistentES"],
     "no estimator class 'PersistentES'"),
    (["train", "metz2019", "--out", "{tmp}/r", "--truncation.start", "0"],
     "--truncation.start must be an integer >= 1, got 0"),
    (["train", "metz2019", "--out", "{tmp}/r", "--estimator.sigma", "nan"],
     "sigma must be a finite number > 0"),
    (["train", "metz2019", "--out", "{tmp}/r", "--optimizer.hidden", "0"], "hidden must be >= 1"),
    (["train", "metz2019", "--out", "{tmp}/r", "--truncation.jitter", "1.5"], "[0, 1)"),
    (["train", "metz2019", "--out", "{tmp}/r", "--evaluation.inner-steps", "201"],
     "must be a multiple of eval_every"),
    (["train", "metz2019", "--out", "{tmp}/r", "--problem.dataset", "nope"], "unknown dataset"),
    (["train", "metz2019", "--out", "{tmp}/r", "--seed", "-1"], "[0, 2**32)"),
    (["train", "metz2019", "--out", "{tmp}/r", "--seed", str(2**32)], "[0, 2**32)"),
    (["train", "metz2019", "--out", "{tmp}/r", "--seed", str(2**70)], "[0, 2**32)"),
    (["train", "metz2019", "--out", ""], "--out must name a directory"),
    (["train", "metz2019"], "--out"),
    (["train", "andrychowicz2016", "--out", "{tmp}/" + "x" * 300], "File name too long"),
    (["train", "andrychowicz2016", "--out", "/proc/vograd-test/run"], "/proc/vograd-test"),
    (["eval", "{tmp}/missing"], "not a run directory"),
    (["eval", "{tmp}", "--only", "heldout,bogus"], "unknown evaluation parts ['bogus']"),
    (["export", "{tmp}/missing", "x"], "not a run directory"),
    (["ablations", "metz2019", "--out", "{tmp}/a", "--seeds", "0"], "--seeds must be"),
    (["ablations", "metz2019", "--out", "{tmp}/a", "--only", "nope"], "unknown ablations"),
    (["ablations", "metz2019", "--out", "{tmp}/a", "--preset", "huge"], "no preset 'huge'"),
    (["ablations", "metz2020", "--out", "{tmp}/a"], "metz2020"),
    (["bench", "everything"], "'everything'"),
    (["frobnicate"], "frobnicate"),
    ([], "subcommand"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    assert message in _one_error_line(capsys)


def test_out_refuses_files_and_other_directories_without_touching_them(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.jsonl").write_text("my own numbers\n")
    assert main(["train", "andrychowicz2016", "--out", str(mine)]) == 2
    assert "not a vograd run (it holds metrics.jsonl)" in _one_error_line(capsys)
    assert (mine / "metrics.jsonl").read_text() == "my own numbers\n"
    (tmp_path / "file").write_text("x")
    assert main(["train", "andrychowicz2016", "--out", str(tmp_path / "file")]) == 2
    assert "not a directory" in _one_error_line(capsys)
    # A config.json that is not a run's is not a run.
    (mine / "metrics.jsonl").unlink()
    (mine / "config.json").write_text('{"name": "my project"}')
    assert main(["train", "andrychowicz2016", "--out", str(mine)]) == 2
    assert "not a vograd run" in _one_error_line(capsys)
    # An ablation study's directory takes only its own entries.
    assert main(["ablations", "metz2019", "--out", str(mine)]) == 2
    assert "not an ablation study" in _one_error_line(capsys)


def test_full_disk_is_one_line_and_bugs_keep_their_traceback(tmp_path, capsys, monkeypatch):
    from vograd import checkpoint

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "atomic_write", full)
    assert main(["train", "andrychowicz2016", "--out", str(tmp_path / "r")]) == 2
    assert "No space left on device" in _one_error_line(capsys)

    def bug(*args, **kwargs):
        raise KeyError("an internal key")

    monkeypatch.setattr(run, "train", bug)
    with pytest.raises(KeyError, match="an internal key"):
        main(["train", "andrychowicz2016", "--out", str(tmp_path / "r2")])


def test_overrides_land_in_config_json_and_resume_compares_them(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["train", "andrychowicz2016", "--out", str(out), "--seed", "7", *TINY,
            "--problem.batch-size", "16", "--evaluation.baselines", "adam", "sgd_momentum"]
    assert main(argv) == 0
    assert "for 2 outer steps" in capsys.readouterr().out
    record = json.loads((out / "config.json").read_text())
    assert record["overrides"] == {
        "problem.batch_size": 16, "estimator.num_particles": 2, "truncation.fixed": 4,
        "outer_steps": 2,
        "checkpoint_every": 1, "evaluation.baselines": ["adam", "sgd_momentum"],
    }
    c = record["config"]
    assert (c["outer_steps"], c["estimator"]["fields"]["num_particles"], c["truncation"]["fixed"],
            record["seed"]) == (2, 2, 4, 7)
    assert c["estimator"]["class"] == "TruncatedBackprop" and c["estimator"]["fields"]["window"] == 4
    assert c["optimizer"] == {"class": "LSTMOptimizer", "fields": {
        "layers": 2, "units": 20, "preprocess_p": 10.0, "output_scale": 0.01}}
    assert c["evaluation"]["baselines"] == ["adam", "sgd_momentum"]
    assert len(run.read_metrics(out)) == 2
    # The same command resumes; another override is another run, refused.
    assert main(argv) == 0
    assert "resumed from step 2" in capsys.readouterr().out
    assert main([*argv, "--outer-lr", "0.01"]) == 2
    assert "different configuration" in _one_error_line(capsys)

    # Export: into $VOGRAD_DATA_DIR/pretrained, never over a name without --force,
    # never a shipped name; load, names and path find it after the shipped ones.
    data = tmp_path / "data"
    monkeypatch.setenv("VOGRAD_DATA_DIR", str(data))
    shipped = set(pretrained.shipped_names())
    assert main(["export", str(out), "tiny-lstm"]) == 0
    file = data / "pretrained" / "tiny-lstm.ckpt"
    assert capsys.readouterr().out.strip() == f"wrote {file}"
    assert pretrained.path("tiny-lstm") == file
    assert set(pretrained.names()) == shipped | {"tiny-lstm"}
    lopt, theta = run.load_theta(out)
    got, got_theta = pretrained.load_optimizer("tiny-lstm")
    assert got == lopt and all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(got_theta), jax.tree.leaves(theta)))
    assert pretrained.info("tiny-lstm")["command"] == (
        "vograd train andrychowicz2016 --preset demo --problem.batch-size 16 "
        "--estimator.num-particles 2 --truncation.fixed 4 --outer-steps 2 --checkpoint-every 1 "
        "--evaluation.baselines adam sgd_momentum --seed 7 --out RUN_DIR")
    before = file.read_bytes()
    assert main(["export", str(out), "tiny-lstm"]) == 2
    assert "already exists; pass --force" in _one_error_line(capsys)
    assert file.read_bytes() == before
    assert main(["export", str(out), "tiny-lstm", "--force"]) == 0
    capsys.readouterr()
    for name in sorted(shipped):
        shipped_bytes = pretrained.path(name).read_bytes()
        assert main(["export", str(out), name, "--force"]) == 2
        assert "shipped with vograd and cannot be replaced" in _one_error_line(capsys)
        assert pretrained.path(name).read_bytes() == shipped_bytes
        assert main(["export", str(out), name, "--dest", str(pretrained.DIRECTORY), "--force"]) == 2
        capsys.readouterr()
        assert pretrained.path(name).read_bytes() == shipped_bytes
    # Elsewhere a shipped name may be written (how a maintainer remakes a shipped file).
    assert main(["export", str(out), sorted(shipped)[0], "--dest", str(tmp_path / "remake")]) == 0
    capsys.readouterr()
    for bad in ("", "../up", ".hidden", "a/b", "x" * 101):
        assert main(["export", str(out), bad]) == 2
        assert "invalid pretrained name" in _one_error_line(capsys)
    # --dest keeps working, and an explicit directory is the only one searched.
    assert main(["export", str(out), "elsewhere", "--dest", str(tmp_path / "pre")]) == 0
    capsys.readouterr()
    assert pretrained.names(tmp_path / "pre") == ("elsewhere",)
    with pytest.raises(KeyError, match="unknown pretrained optimizer 'elsewhere'"):
        pretrained.path("elsewhere")


def test_user_directory_defaults_to_the_platform_data_directory(monkeypatch):
    import platformdirs

    monkeypatch.delenv("VOGRAD_DATA_DIR", raising=False)
    assert pretrained.user_directory() == (
        pretrained.Path(platformdirs.user_data_dir("vograd")) / "pretrained")
    monkeypatch.setenv("VOGRAD_DATA_DIR", "")  # empty: unset
    assert pretrained.user_directory().parent == pretrained.Path(platformdirs.user_data_dir("vograd"))


def test_overrides_diff_and_flags_round_trip_through_the_parser():
    base = metz2019.PRESETS["mixed"]
    changed = dataclasses.replace(
        base, init_from=None, optimizer=dataclasses.replace(base.optimizer, use_time=False),
        estimator=dataclasses.replace(base.estimator, sigma=0.02),
        truncation=dataclasses.replace(base.truncation, min_bucket=None, end=90),
        extra_problems=(dataclasses.replace(base.extra_problems[0], batch_size=8),),
    )
    diff = overrides.diff(base, changed)
    # The estimator's window follows truncation.end (109, not 121) but is no override.
    assert changed.estimator.window == 109
    assert diff == {"extra_problems.0.batch_size": 8, "init_from": None, "estimator.sigma": 0.02,
                    "optimizer.use_time": False, "truncation.end": 90,
                    "truncation.min_bucket": None}
    assert overrides.diff(base, base) == {}
    flags = overrides.as_flags(diff)
    assert "--optimizer.no-use-time" in flags and "--extra-problems.0.batch-size" in flags
    parsed = cli.parse(["train", "metz2019", "--preset", "mixed", "--out", "x", *flags])
    assert parsed.recipe.config == changed


def test_numeric_checks_accept_every_preset_and_name_the_flag():
    for name in registry.names():
        module = registry.get(name)
        for config in module.PRESETS.values():
            validate.check_config(config)
    bad = dataclasses.replace(
        metz2019.PRESETS["demo"],
        problem=dataclasses.replace(metz2019.PRESETS["demo"].problem, hidden=(32, 0), k=(5, 2)),
        evaluation=dataclasses.replace(metz2019.PRESETS["demo"].evaluation, lr_low=1.0,
                                       lr_high=0.1),
    )
    with pytest.raises(validate.UsageError) as info:
        validate.check_config(bad)
    text = str(info.value)
    assert "--problem.hidden must be an integer >= 1, got (32, 0)" in text
    assert "--problem.k must be a range (low, high) with low <= high, got (5, 2)" in text
    assert "--evaluation.lr-low (1.0) must be below --evaluation.lr-high (0.1)" in text
    assert validate.check_seed(2**32 - 1) == 2**32 - 1
    for seed in (-1, 2**32, True, 1.0):
        with pytest.raises(validate.UsageError):
            validate.check_seed(seed)


def test_any_registered_recipe_class_gets_a_train_command(monkeypatch, capsys):
    """A recipe needs no CLI code: registering a `Recipe` subclass is enough."""
    from dataclasses import dataclass
    from typing import ClassVar

    from vograd.estimators import TruncatedBackprop
    from vograd.recipes.config import Truncation
    from vograd.recipes.recipe import Recipe
    from vograd.tasks.optimizers import LSTMOptimizer

    @dataclass(frozen=True)
    class Toy(Recipe):
        DESCRIPTION: ClassVar[str] = "a toy recipe"
        outer_steps: int = 3
        horizon: int = 10
        estimator: TruncatedBackprop = TruncatedBackprop(num_particles=2)
        optimizer: LSTMOptimizer = LSTMOptimizer(units=4)
        truncation: Truncation = Truncation(fixed=5)

    Toy.PRESETS = {"only": Toy()}
    real = registry.get
    monkeypatch.setattr(registry, "_RECIPES", {**registry._RECIPES, "toy": ("toy", "Toy")})
    monkeypatch.setattr(registry, "get", lambda n: Toy if n == "toy" else real(n))
    monkeypatch.setattr(commands.registry, "get", registry.get)
    parsed = cli.parse(["train", "toy", "--out", "x", "--truncation.fixed", "7",
                        "--estimator.num-particles", "3"])
    assert parsed.recipe.preset == "only" and parsed.recipe.config == Toy(
        truncation=Truncation(fixed=7), estimator=TruncatedBackprop(num_particles=3))
    assert parsed.recipe.config.estimator.window == 7
    assert main(["train", "toy", "--help"]) == 0
    assert "a toy recipe" in capsys.readouterr().out
