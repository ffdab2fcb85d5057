"""Benchmarks (not tests), grouped by what they measure; run through ``vograd bench ...``.

- `vograd.benchmarks.estimators`: bias, variance and cost of every estimator on
  toy systems with known gradients (``vograd bench estimators``);
- `vograd.benchmarks.speed`: throughput, memory, padding, sharding and replayed
  runs of vograd's own machinery (``vograd bench speed``);
- `vograd.benchmarks.reference`: the same work timed against learned_optimization
  in one process (``make bench-reference``);
- `vograd.benchmarks.optimizer`: one learned-optimizer update against optax.adam,
  and a profile of where a learned-optimizer step spends its time.

Nothing outside this package imports it but the CLI's ``bench`` command.
"""
