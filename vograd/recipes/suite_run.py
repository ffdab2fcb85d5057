"""Run the unseen-task suite for trained run directories and pretrained names.

    python -m vograd.recipes.suite_run runs/adaptive-s0 runs/adaptive-s1 metz2019-mixed --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from vograd.recipes import suite, suite_eval, suite_report


def load_learned(source: str):
    """Returns ``(label, optax transformation, fingerprint)`` of a run directory or a
    pretrained name; the fingerprint (`curve_cache.file_digest` of its files) keys its
    cached curves."""
    from vograd.recipes import curve_cache, run
    from vograd.tasks import pretrained

    if Path(source, "config.json").is_file():
        lopt, theta = run.load_theta(source)
        files = [Path(source, "config.json"), *sorted(Path(source).glob("*.ckpt"))]
        return Path(source).name, lopt.as_optax(theta), curve_cache.file_digest(*files)
    return source, pretrained.load(source), curve_cache.file_digest(pretrained.path(source))


def shortened(tasks: tuple[suite.SuiteTask, ...], factor: int) -> tuple[suite.SuiteTask, ...]:
    """Returns the tasks with ``factor`` times fewer steps (a quick look; not for results)."""
    return tuple(dataclasses.replace(t, num_steps=t.num_steps // factor,
                                     eval_every=max(1, t.eval_every // factor)) for t in tasks)


def compare(sources: list[str], out_dir: str | os.PathLike, *, tasks: str | None = None,
            num_seeds: int = 3, quick: int = 1, with_scales: bool = True, seed: int = 0,
            progress: bool = True, cache_dir=None) -> str:
    """Returns the report of the learned optimizers in ``sources`` on the suite (written
    to ``out_dir``); ``with_scales`` adds the loss-scale check, ``quick`` shortens every task;
    ``cache_dir``: reuse and keep every run's curves there (`suite_eval.run_suite`)."""
    if not sources:
        raise ValueError("name at least one run directory or pretrained optimizer")
    loaded = [load_learned(s) for s in sources]
    learned = {label: opt for label, opt, _ in loaded}
    fingerprints = {label: digest for label, _, digest in loaded if digest is not None}
    if len(learned) != len(sources):
        raise ValueError(f"two sources share a name: {sources}")
    chosen = suite.by_name(tasks)
    if not with_scales:
        chosen = tuple(t for t in chosen if t not in suite.LOSS_SCALES)
    if quick > 1:
        chosen = shortened(chosen, quick)
    result = suite_eval.run_suite(learned, chosen, num_seeds=num_seeds, seed=seed, progress=progress,
                                  cache_dir=cache_dir, fingerprints=fingerprints)
    runs = [label for label, s in zip(learned, sources) if Path(s, "config.json").is_file()]
    return suite_report.write(result, list(learned), out_dir, horizon=1_000 // quick,
                              pooled=runs if len(runs) > 1 else None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vograd.recipes.suite_run", description=__doc__)
    parser.add_argument("sources", nargs="+", help="run directories or pretrained names")
    parser.add_argument("--out", required=True, help="directory for report.md, suite.json, PNGs")
    parser.add_argument("--tasks", default=None, help="comma-separated suite task names")
    parser.add_argument("--seeds", type=int, default=3, help="inner seeds per task")
    parser.add_argument("--quick", type=int, default=1, help="divide every task's steps by this")
    parser.add_argument("--no-scales", action="store_true", help="skip the loss-scale check")
    parser.add_argument("--cache", default=None, help="curve cache directory (default: none)")
    args = parser.parse_args(argv)
    print(compare(args.sources, args.out, tasks=args.tasks, num_seeds=args.seeds, quick=args.quick,
                  with_scales=not args.no_scales, cache_dir=args.cache))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
