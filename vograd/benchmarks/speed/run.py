"""Speed benchmark (``vograd bench speed``): every figure a ratio measured in one run.

Sections (docs/performance.md explains the method and keeps the latest table):

1. outer-gradient throughput of ES, PES and Merged with the MLP learned
   optimizer on the 10-d quadratic, the 13k-parameter image MLP and the 3-layer
   CNN, 8 pairs, windows 10 and 50, against the reference figures of
   REFERENCES.md (not re-measured here) and against plain-JAX scans timed in
   the same rounds (`speed_throughput`);
2. the learned optimizers' cost per inner step against ``optax.adam``
   (`bench_optimizer_update`);
3. memory and time of the reparameterization gradient from 10 to 10,000 steps,
   one compilation for every length (`speed_memory`);
4. achieved FLOP/s of the inner compute against the float32 matmul peak
   measured in the same run;
5. the population sharded over 2 devices, and over 2 processes joined by
   ``jax.distributed`` (`speed_sharding`);
6. what a padded compiled window costs, with and without chunking
   (`speed_padding`).

    vograd bench speed [--quick] [--out DIR]
    python -m vograd.benchmarks.speed.run [--quick] [--out DIR]

``quick`` (~1 minute on 2 cores, the smoke test) runs sections 1, 3 and 4 on
the quadratic only, with small sizes; the full run takes ~20 minutes.
Writes ``speed.md`` (the returned string) and ``speed.json`` into ``out_dir``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime

from vograd.benchmarks.speed import memory as speed_memory
from vograd.benchmarks.speed import report as speed_report
from vograd.benchmarks.speed import throughput as speed_throughput
from vograd.benchmarks.speed.common import load_average, machine, matmul_peak, write_report
from vograd.benchmarks.speed.throughput import Case

DEFAULT_OUT = "runs/bench_speed"


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one run: ``throughput`` maps task -> window -> estimators (with an
    optional reverse-mode chunk per estimator), ``rounds`` task -> timing rounds."""

    quick: bool
    throughput: dict
    rounds: dict
    memory: tuple  # (max_window, chunk, windows, timed unchunked windows)
    optimizer: dict | None  # kwargs of bench_optimizer_update.run, None to skip
    sharding: bool
    peak_size: int
    padding: bool = False


ALL = (("ES", None), ("PES", None), ("Merged", None))

FULL = Config(
    quick=False,
    throughput={
        "quadratic": {10: ALL, 50: ALL},
        "mlp": {10: ALL, 50: ALL},
        # Merged keeps one chunk of activations (reverse mode through the inner
        # gradients of a CNN is ~60 MB per step and unroll); ES/PES need none.
        "conv": {10: (("ES", None), ("PES", None), ("Merged", 1)), 50: (("PES", None),)},
    },
    rounds={"quadratic": 15, "mlp": 5, "conv": 2},
    memory=(10_000, 100, (10, 100, 1_000, 10_000), (10, 100, 1_000, 10_000)),
    optimizer={"repeats": 10, "rounds": 5, "scan_steps": 20},
    sharding=True,
    peak_size=2048,
    padding=True,
)

QUICK = Config(
    quick=True,
    throughput={"quadratic": {10: (("ES", None),)}},
    rounds={"quadratic": 3},
    memory=(200, 20, (10, 200), (10, 200)),
    optimizer=None,
    sharding=False,
    peak_size=1024,
)


# One accelerator, under ~5 minutes: sections 1 (every task and window), 2, 3 and 4;
# not 5 (it needs two devices of one kind) or 6 (a CPU compile-time question).
GPU = Config(
    quick=False,
    throughput={"quadratic": {10: ALL, 50: ALL}, "mlp": {10: ALL, 50: ALL},
                "conv": {10: ALL, 50: (("PES", None),)}},
    rounds={"quadratic": 5, "mlp": 5, "conv": 3},
    memory=(10_000, 100, (10, 100, 1_000, 10_000), (10, 100, 1_000)),
    optimizer={"repeats": 10, "rounds": 5, "scan_steps": 20},
    sharding=False,
    peak_size=4096,
)

PRESETS = {"full": FULL, "quick": QUICK, "gpu": GPU}


def measure(config: Config, log=print) -> dict:
    """Returns every figure of one run (JSON-serializable)."""
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "quick": config.quick, "machine": machine()}
    log("peak: float32 matmul")
    results["peak_before"] = matmul_peak(config.peak_size)
    results["throughput"] = []
    for task, windows in config.throughput.items():
        log(f"throughput: {task}")
        cases = {w: [Case(task, name, w, chunk) for name, chunk in ests]
                 for w, ests in windows.items()}
        results["throughput"].append(
            speed_throughput.run_task(task, cases, config.rounds[task], log=log))
    if config.optimizer is not None:
        log("learned optimizer cost per step")
        from vograd.benchmarks.optimizer import update as bench_optimizer_update

        results["optimizer"] = bench_optimizer_update.run(**config.optimizer)
    log("memory: reparameterization gradient vs window")
    max_window, chunk, windows, timed = config.memory
    results["memory"] = speed_memory.run(max_window, chunk, windows, timed, log=log)
    if config.sharding:
        from vograd.benchmarks.speed import sharding as speed_sharding

        log("sharding: 2 devices")
        results["sharding"] = speed_sharding.run_devices()
        log("sharding: 2 processes (jax.distributed)")
        results["multihost"] = speed_sharding.run_multihost()
    if config.padding:
        from vograd.benchmarks.speed import padding as speed_padding

        log("padding: compiled window sizes")
        results["padding"] = speed_padding.run(log=log)
    results["peak_after"] = matmul_peak(config.peak_size)
    results["load_average_after"] = load_average()
    return results


def main(out_dir: str | None = None, quick: bool = False, preset: str | None = None) -> str:
    """Runs the benchmark (``preset``: a name of `PRESETS`, else ``quick`` picks QUICK or
    FULL); returns its markdown report (also written to ``out_dir``)."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    config = PRESETS[preset] if preset is not None else (QUICK if quick else FULL)
    results = measure(config)
    command = ("python -m vograd.benchmarks.speed.run --preset " + preset if preset is not None
               else "vograd bench speed" + (" --quick" if quick else ""))
    text = speed_report.report(results, command)
    write_report(out_dir or DEFAULT_OUT, "speed", results, text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="full, quick (= --quick) or gpu (one accelerator, ~5 minutes)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    print(main(out_dir=args.out, quick=args.quick, preset=args.preset))
