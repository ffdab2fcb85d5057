"""Run the unseen-task suite for trained run directories and pretrained names.

    python -m vograd.recipes.suite_run runs/adaptive-s0 runs/adaptive-s1 metz2019-mixed --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from vograd.recipes import suite, suite_eval, suite_report


def load_learned(source: str, rate_factors: tuple[float, ...] = ()):
    """Returns ``[(label, optax transformation, fingerprint)]`` of a run directory or a
    pretrained name; the fingerprint (`curve_cache.file_digest` of its files) keys its
    cached curves. With ``rate_factors``, one entry per factor instead, labelled
    ``"LABEL xF"``: an `AdaptiveMLPOptimizer`'s global rate multiplied by ``F``
    (`AdaptiveMLPOptimizer.scale_rate`; ValueError for another optimizer)."""
    from vograd.recipes import curve_cache, run
    from vograd.tasks import pretrained
    from vograd.tasks.optimizers import AdaptiveMLPOptimizer

    if Path(source, "config.json").is_file():
        lopt, theta = run.load_theta(source)
        files = [Path(source, "config.json"), *sorted(Path(source).glob("*.ckpt"))]
        label, digest = Path(source).name, curve_cache.file_digest(*files)
    else:
        lopt, theta = pretrained.load_optimizer(source)
        label, digest = source, curve_cache.file_digest(pretrained.path(source))
    if not rate_factors:
        return [(label, lopt.as_optax(theta), digest)]
    if not isinstance(lopt, AdaptiveMLPOptimizer):
        raise ValueError(f"--rate-factors needs AdaptiveMLPOptimizer sources; {source} is a "
                         f"{type(lopt).__name__}")
    return [(f"{label} x{f:g}", lopt.as_optax(lopt.scale_rate(theta, f)), f"{digest}-x{f!r}")
            for f in rate_factors]


def shortened(tasks: tuple[suite.SuiteTask, ...], factor: int) -> tuple[suite.SuiteTask, ...]:
    """Returns the tasks with ``factor`` times fewer steps (a quick look; not for results)."""
    return tuple(dataclasses.replace(t, num_steps=t.num_steps // factor,
                                     eval_every=max(1, t.eval_every // factor)) for t in tasks)


def compare(sources: list[str], out_dir: str | os.PathLike, *, tasks: str | None = None,
            num_seeds: int = 3, quick: int = 1, with_scales: bool = True, seed: int = 0,
            progress: bool = True, cache_dir=None, rate_factors: tuple[float, ...] = ()) -> str:
    """Returns the report of the learned optimizers in ``sources`` on the suite (written
    to ``out_dir``); ``with_scales`` adds the loss-scale check, ``quick`` shortens every task;
    ``cache_dir``: reuse and keep every run's curves there (`suite_eval.run_suite`).
    ``rate_factors``: each source at its global rate times each factor instead (a
    diagnosis of what a task wants; never a way to choose what to ship, which is
    `vograd.recipes.validation`'s job on the training distribution)."""
    if not sources:
        raise ValueError("name at least one run directory or pretrained optimizer")
    loaded = [entry for s in sources for entry in load_learned(s, tuple(rate_factors))]
    learned = {label: opt for label, opt, _ in loaded}
    fingerprints = {label: digest for label, _, digest in loaded if digest is not None}
    if len(learned) != len(loaded):
        raise ValueError(f"two sources share a name: {sources}")
    chosen = suite.by_name(tasks)
    if not with_scales:
        chosen = tuple(t for t in chosen if t not in suite.LOSS_SCALES)
    if quick > 1:
        chosen = shortened(chosen, quick)
    result = suite_eval.run_suite(learned, chosen, num_seeds=num_seeds, seed=seed, progress=progress,
                                  cache_dir=cache_dir, fingerprints=fingerprints)
    runs = [Path(s).name for s in sources if Path(s, "config.json").is_file()]
    # Only two or more run directories are outer seeds to pool; rows of one optimizer at
    # several rates, or a run beside a pretrained name, are not.
    pooled = runs if len(runs) > 1 and not rate_factors else []
    return suite_report.write(result, list(learned), out_dir, horizon=1_000 // quick,
                              pooled=pooled)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vograd.recipes.suite_run", description=__doc__)
    parser.add_argument("sources", nargs="+", help="run directories or pretrained names")
    parser.add_argument("--out", required=True, help="directory for report.md, suite.json, PNGs")
    parser.add_argument("--tasks", default=None, help="comma-separated suite task names")
    parser.add_argument("--seeds", type=int, default=3, help="inner seeds per task")
    parser.add_argument("--quick", type=int, default=1, help="divide every task's steps by this")
    parser.add_argument("--no-scales", action="store_true", help="skip the loss-scale check")
    parser.add_argument("--cache", default=None, help="curve cache directory (default: none)")
    parser.add_argument("--rate-factors", type=float, nargs="+", default=(), metavar="F",
                        help="run each AdaptiveMLPOptimizer source at its rate times each F")
    args = parser.parse_args(argv)
    print(compare(args.sources, args.out, tasks=args.tasks, num_seeds=args.seeds, quick=args.quick,
                  with_scales=not args.no_scales, cache_dir=args.cache,
                  rate_factors=tuple(args.rate_factors)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
