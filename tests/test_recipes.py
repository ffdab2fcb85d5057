"""Recipes: paper facts in the configs, ablation switches, a few outer steps of each demo, eval."""

import json
import shlex
import sys
from dataclasses import replace

import jax
import numpy as np
import pytest

from vograd.recipes import ablations, cli, config, evaluate_run, metz2019, registry, run
from vograd.progress import progress_bar
from vograd.recipes.cli import main
from vograd.recipes.config import Evaluation, Truncation
from vograd.tasks import pretrained
from vograd.estimators import EvolutionStrategies, Merged, PersistentES, Reparameterization, TruncatedBackprop
from vograd.schedules import Constant, LinearCurriculum


def test_metz2019_paper_preset_matches_the_paper():
    c = metz2019.PRESETS["paper"]
    est = c.estimator
    assert (est.sigma, c.outer_lr, c.outer_b1, c.clip_value) == (0.01, 1e-5, 0.5, 0.1)
    assert isinstance(est, Merged) and (c.horizon, 2 * est.num_pairs, est.weighting) == (
        10_000, 128, "per_element")
    # The authors' merge: weights from the same pairs, no jump detection.
    assert (est.weights, est.detect_jumps) == ("same_samples", False)
    s = c.truncation.schedule()
    assert isinstance(s, LinearCurriculum)
    assert (s.start, s.end, s.num_steps, s.jitter) == (50, 10_000, 5_000, 0.2)
    assert est.window == 10_000  # the longest window, capped at the horizon


def test_ablations_change_the_estimator_and_the_features():
    base = metz2019.PRESETS["demo"]
    kinds = {"full": Merged, "grad_only": Reparameterization, "es_only": EvolutionStrategies}
    for name, cls in kinds.items():
        est = base.ablation(name).estimator
        assert type(est) is cls and (est.num_pairs, est.sigma) == (4, 0.01)
    widths = {n: base.ablation(n).optimizer.num_features
              for n in ("full", "no_momentum", "no_time")}
    # g and w, 5 momenta, 9 time features; each ablation removes its group.
    assert widths == {"full": 16, "no_momentum": 11, "no_time": 7}
    total = sum(min(base.truncation.start + (base.truncation.end - base.truncation.start)
                    * min(s / base.truncation.num_steps, 1), base.horizon)
                for s in range(base.outer_steps))
    for w in (10, 100):
        c = base.ablation(f"trunc{w}")
        assert isinstance(c.truncation.schedule(), Constant) and c.truncation.fixed == w
        # Same inner-step budget as the curriculum, up to one window of rounding.
        assert abs(c.outer_steps * w - total) < w
        assert c.estimator.window == w  # the estimator's window follows the truncation
    with pytest.raises(KeyError, match="unknown ablation"):
        base.ablation("nope")


def test_configs_round_trip_through_json():
    for name in registry.names():
        recipe = registry.get(name)
        for preset in recipe.PRESETS.values():
            data = json.loads(json.dumps(config.to_dict(preset)))
            assert config.from_dict(recipe, data) == preset
    with pytest.raises(ValueError, match="unknown config keys"):
        config.from_dict(metz2019.Metz2019, {"sigmaa": 1.0})


def test_evaluation_refuses_steps_that_are_not_whole_evaluation_blocks():
    with pytest.raises(ValueError, match=r"generalization_steps \(200\) must be a multiple of eval_every \(30\)"):
        Evaluation(inner_steps=300, eval_every=30, generalization_steps=200)
    with pytest.raises(ValueError, match="inner_steps"):
        Evaluation(inner_steps=301, eval_every=30)


def _tiny(cfg):
    return replace(cfg, outer_steps=2, checkpoint_every=1, truncation=Truncation(fixed=4))


@pytest.mark.parametrize("name", ["metz2019", "andrychowicz2016", "metz2020", "adaptive"])
def test_demo_recipe_trains_and_resumes(name, tmp_path):
    cfg = _tiny(registry.preset(name, "demo"))
    result = run.train(name, cfg, tmp_path, seed=0, preset="demo", progress=False)
    rows = run.read_metrics(tmp_path)
    assert result.step == 2 and [r["step"] for r in rows] == [0, 1]
    assert all(np.isfinite(r["loss"]) and r["num_dropped"] == 0 for r in rows)
    lopt, theta = run.load_theta(tmp_path)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(theta))
    # Running the same command again resumes from the last checkpoint: no new steps.
    again = run.train(name, cfg, tmp_path, seed=0, preset="demo", progress=False)
    assert again.resumed_from == 2 and len(run.read_metrics(tmp_path)) == 2
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(again.theta), jax.tree.leaves(result.theta)))
    # A run started before a config field was added (here: its config.json lacks the
    # newest fields) still resumes: the missing fields take their defaults.
    record = json.loads((tmp_path / "config.json").read_text())
    for key in ("extra_problems", "init_from"):
        record["config"].pop(key, None)
    (tmp_path / "config.json").write_text(json.dumps(record))
    assert run.train(name, cfg, tmp_path, seed=0, preset="demo", progress=False).step == 2
    # A different config in the same directory is refused rather than mixed in.
    with pytest.raises(ValueError, match="different configuration"):
        run.train(name, replace(cfg, outer_steps=3), tmp_path, seed=0, preset="demo", progress=False)
    # `vograd export` ships the weights as a vograd.tasks.pretrained entry with its provenance.
    assert main(["export", str(tmp_path), "mine", "--dest", str(tmp_path / "pre")]) == 0
    got, got_theta = pretrained.load_optimizer("mine", tmp_path / "pre")
    assert got == lopt
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got_theta), jax.tree.leaves(theta)))
    meta = pretrained.info("mine", tmp_path / "pre")
    # Its command remakes this config (the demo preset with the tiny changes), as written.
    assert meta["command"].startswith(f"vograd train {name} --preset demo ")
    assert "--outer-steps 2" in meta["command"] and "--truncation.fixed 4" in meta["command"]
    argv = shlex.split(meta["command"].replace("RUN_DIR", str(tmp_path / "again")))[1:]
    assert cli.parse(argv).recipe.config == cfg
    assert meta["step"] == 2 and meta["config"]["outer_steps"] == 2


def test_evaluation_writes_a_report_against_tuned_baselines(tmp_path, monkeypatch):
    cfg = replace(
        _tiny(registry.preset("andrychowicz2016", "demo")),
        evaluation=Evaluation(num_tasks=3, num_seeds=2, inner_steps=20, eval_every=10,
                              eval_batches=1, baselines=("adam",), lr_grid=4, random_search=3,
                              generalization=False),
    )
    run.train("andrychowicz2016", cfg, tmp_path, progress=False)
    cache = tmp_path / "cache"
    md = evaluate_run.evaluate(tmp_path, progress=False, cache_dir=cache)
    # RMSProp and SGD+momentum go through the same code as Adam (tests/test_evaluation.py
    # covers the tuning itself); Adam+Reg+Decay exercises the random search.
    for name in ("learned", "adam", "adam_reg_decay"):
        assert f"| {name} |" in md
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert np.asarray(results["curves"]["adam"]["train"]).shape == (3, 2, 2)  # tasks, seeds, evals
    assert (tmp_path / "eval" / "curves.png").stat().st_size > 0
    # Baseline curves are cached (adam and adam_reg_decay, never the learned optimizer):
    # evaluating again runs the learned optimizer only and reports the same curves.
    assert len(list(cache.glob("*.npz"))) == 2
    calls = []
    real = evaluate_run.grid_curves
    monkeypatch.setattr(evaluate_run, "grid_curves", lambda *a: calls.append(1) or real(*a))
    # Parts can be run alone; unknown parts are refused before any work.
    again = evaluate_run.evaluate(tmp_path, progress=False, parts=("heldout",), cache_dir=cache)
    assert "| adam |" in again and len(calls) == 1
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["curves"] == results["curves"]
    # Another evaluation seed means other tasks: misses, computed and stored.
    evaluate_run.evaluate(tmp_path, seed=1, progress=False, parts=("heldout",), cache_dir=cache)
    assert len(calls) == 4 and len(list(cache.glob("*.npz"))) == 4
    # An unreadable entry is a miss, not an error.
    for entry in cache.glob("*.npz"):
        entry.write_bytes(b"not an npz file")
    evaluate_run.evaluate(tmp_path, seed=1, progress=False, parts=("heldout",), cache_dir=cache)
    assert len(calls) == 7
    with pytest.raises(ValueError, match="unknown evaluation parts"):
        evaluate_run.evaluate(tmp_path, parts=("heldout", "bogus"))
    assert main(["eval", str(tmp_path), "--only", "bogus"]) == 2
    # A progress bar counting the optimizers, on in a notebook (whose stderr is no TTY).
    bars, enabled = [], []

    def recording_bar(**kw):
        bars.append(progress_bar(**kw))
        enabled.append(not bars[-1].disable)  # tqdm sets disable on close(): read it now
        return bars[-1]

    monkeypatch.setattr(evaluate_run, "progress_bar", recording_bar)
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", object())
    evaluate_run.evaluate(tmp_path, seed=1, parts=("heldout",), cache_dir=cache)
    assert [(b.total, b.n) for b in bars] == [(3, 3)] and enabled == [True]


def test_mixed_preset_outer_trains_on_mlp_and_cnn_families_from_the_shipped_weights(tmp_path):
    import vograd
    from vograd.tasks.problems import ConvFamily, ImageMLPFamily

    cfg = metz2019.PRESETS["mixed"]
    system = cfg.system()
    assert isinstance(system, vograd.JointSystem) and system.weights == (0.5, 0.5)
    mlp, cnn = (s.family for s in system.systems)
    assert isinstance(mlp, ImageMLPFamily) and isinstance(cnn, ConvFamily)
    assert cnn.data.image_shape == (14, 14, 1) and (cnn.channels, cnn.strides) == ((8, 16), (2, 2))
    _, shipped = pretrained.load_optimizer("metz2019-small")
    start = cfg.initial_theta()
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(shipped)))
    with pytest.raises(ValueError, match="init_from"):
        replace(cfg, optimizer=replace(cfg.optimizer, use_momentum=False)).initial_theta()
    with pytest.raises(ValueError, match="channels: for conv architectures"):
        config.Problem("mlp", channels=(8,)).family()
    tiny_eval = Evaluation(num_tasks=1, num_seeds=2, inner_steps=4, eval_every=2, eval_batches=1,
                           baselines=("adam",), lr_grid=2, random_search=0, generalization=False)
    cfg = replace(_tiny(cfg), evaluation=tiny_eval)
    result = run.train("metz2019", cfg, tmp_path, seed=0, preset="mixed", progress=False)
    rows = run.read_metrics(tmp_path)
    assert result.step == 2 and all(np.isfinite(r["loss"]) and r["num_dropped"] == 0 for r in rows)
    # Training started from the shipped weights and moved them.
    moved = [float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(result.theta),
                                                          jax.tree.leaves(shipped))]
    assert 0 < max(moved) < 0.1
    # The CNN family is evaluated on its own held-out tasks too ("extra").
    md = evaluate_run.evaluate(tmp_path, progress=False, parts=("extra",))
    assert "outer-training family 2 (conv" in md and "| adam |" in md
    curves = json.loads((tmp_path / "eval_extra_1" / "results.json").read_text())["curves"]
    assert np.all(np.isfinite(curves["learned"]["train"])) and not (tmp_path / "eval").exists()


def test_joint_preset_trains_both_families_from_scratch_in_one_compiled_size():
    import vograd
    from vograd.schedules import bucket

    cfg, mixed = metz2019.PRESETS["joint"], metz2019.PRESETS["mixed"]
    assert isinstance(cfg.system(), vograd.JointSystem)
    # The families and the held-out evaluation of the two-stage `small` -> `mixed`,
    # in one stage from a fresh initialisation.
    assert (cfg.problem, cfg.extra_problems, cfg.evaluation) == (
        mixed.problem, mixed.extra_problems, mixed.evaluation)
    assert cfg.initial_theta() is None and cfg.estimator.num_pairs == 2
    # Once the curriculum ends, every jittered window fits the compiled size 128.
    t = cfg.truncation
    assert bucket(t.max_window(), minimum=t.min_bucket, maximum=cfg.horizon) == 128


def test_convolutional_evaluation_runs_sequentially(tmp_path):
    # The generalization check's path: a conv problem evaluated with its runs one
    # after another (Problem.eval_options), on real MNIST-like digits.
    from vograd.tasks.optimizers import MLPOptimizer

    problem = config.Problem("conv6", "mnist", batch_size=8, k=10, class_pools="all")
    assert problem.eval_options == {"unroll": 5, "sequential": True}
    lopt = MLPOptimizer()
    ev = Evaluation(num_tasks=1, num_seeds=2, inner_steps=6, eval_every=3, eval_batches=1,
                    baselines=("adam",), lr_grid=2, lr_low=1e-3, lr_high=1e-2, random_search=0,
                    generalization=False)
    md = evaluate_run.evaluate_family(problem.family(), lopt, lopt.init_theta(jax.random.key(0)), ev,
                                      6, jax.random.key(1), tmp_path, "conv6", progress=False,
                                      **problem.eval_options)
    assert "| adam |" in md and "| learned |" in md
    curves = json.loads((tmp_path / "results.json").read_text())["curves"]
    adam = np.asarray(curves["adam"]["train"])
    assert adam.shape == (1, 2, 2) and np.all(np.isfinite(adam))
    # Ten-way classification from scratch: the first block's loss is near log(10).
    assert 1.5 < adam[0, 0, 0] < 3.5


def test_ablation_study_scores_each_run(tmp_path):
    scores = ablations.run_study("metz2019", "demo", tmp_path, seeds=1, only=["no_time"],
                                 progress=False, overrides=lambda c: replace(_tiny(c), horizon=20))
    assert list(scores) == ["no_time"] and np.isfinite(scores["no_time"][0])
    assert (tmp_path / "ablations.png").stat().st_size > 0


def test_cli_lists_recipes_and_rejects_bad_names(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "x"]) == 2
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in ("metz2019", "andrychowicz2016", "metz2020", "grad_only"))
    assert main(["train", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    assert main(["train", "metz2019", "--preset", "huge", "--out", str(tmp_path)]) == 2
    assert "no preset 'huge'" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_autoencoder_problem_family_trains_and_rejects_conv_fields():
    """``Problem("autoencoder")`` builds the squared-error family the ``regression`` preset adds,
    Adam halves its loss on real digits (run by the evaluation's own inner loop), and
    conv-only fields are refused by name."""
    import jax.numpy as jnp
    import optax

    from vograd.recipes.adaptive import PRESETS, REGRESSION_PROBLEM, TRAIN_PROBLEMS
    from vograd.recipes.evaluation import InnerSchedule, grid_curves
    from vograd.tasks.problems import ImageAutoencoderFamily

    assert PRESETS["regression"].problems == TRAIN_PROBLEMS + (REGRESSION_PROBLEM,)
    assert PRESETS["default"].problems == TRAIN_PROBLEMS
    family = config.Problem("autoencoder", "digits", hidden=(8,), batch_size=32,
                            activation="tanh").family("train")
    assert isinstance(family, ImageAutoencoderFamily) and family.activation == "tanh"
    params = family.init_params(family.sample(jax.random.key(0)), jax.random.key(1))
    assert params["decoder"]["w"].shape == (8, 64)
    tasks = jax.vmap(family.sample)(jax.random.split(jax.random.key(0), 1))
    keys = jax.random.split(jax.random.key(2), 2).reshape(1, 2)
    train, _ = grid_curves(family, optax.adam, jnp.asarray([1e-2]), tasks, keys,
                           InnerSchedule(200, 20, 1))  # [G, T, S, E]: loss every 20 steps
    train = np.asarray(train)[0, 0]
    assert np.all(np.isfinite(train)) and np.all(train[:, -1] < 0.5 * train[:, 0])
    with pytest.raises(ValueError, match="strides: for conv architectures"):
        config.Problem("autoencoder", strides=(2,)).family()
    with pytest.raises(ValueError, match="activation: for mlp and autoencoder"):
        config.Problem("conv", activation="tanh").family()
