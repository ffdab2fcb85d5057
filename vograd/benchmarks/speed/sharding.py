"""Population sharding: 1 device vs 2 devices, and 2 processes through ``jax.distributed``.

Both runs happen in child processes (the device count is fixed when JAX
starts):

- ``devices``: one process with ``--xla_force_host_platform_device_count=2``
  times the same ES estimate (MLP task, 8 pairs) with ``mesh=None`` (one
  device; XLA still uses every core for it) and with
  ``mesh=population_mesh()`` (the 16 unrolls split 8 + 8 over 2 devices),
  round-robin, and checks that both give the same gradient;
- ``multihost``: two processes joined by ``jax.distributed.initialize``
  (CPU collectives over gloo, coordinator on localhost), each owning one CPU
  device; the mesh spans both processes, every process runs the same jitted
  estimate (SPMD) and XLA's all-reduce produces the replicated gradient. The
  parent checks it against a single-process estimate with the same key. This
  is the multi-host path of docs/performance.md, run on one machine.

    python -m vograd.benchmarks.speed.sharding devices [--quick]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

TASK = "mlp"
WINDOW = 10


def _child_env(devices: int | None) -> dict:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    if devices is not None:
        flags += f" --xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = flags.strip()
    env.setdefault("PYTHONPATH", os.getcwd())
    return env


def _last_json(text: str) -> dict:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON result in the child's output:\n{text[-2000:]}")


def _estimator(mesh, task: str, window: int):
    from vograd.benchmarks.speed.throughput import PAIRS, make_family, make_system
    from vograd.estimators import EvolutionStrategies

    system = make_system(make_family(task))
    est = EvolutionStrategies(num_pairs=PAIRS, window=window, mesh=mesh)
    return system, est


def devices_child(rounds: int, task: str, window: int) -> dict:
    """Runs in the child: times the 1-device and 2-device estimates; returns the figures."""
    import equinox as eqx
    import jax
    import numpy as np

    from vograd.benchmarks.speed.common import compile_timed, round_robin
    from vograd.sharding import population_mesh

    timed, grads = [], {}
    for name, mesh in (("1 device", None), ("2 devices", population_mesh())):
        system, est = _estimator(mesh, task, window)
        theta = system.init_theta(jax.random.key(0))
        state = eqx.filter_jit(est.init)(system, theta, jax.random.key(1))

        def estimate(theta, state, key, est=est, system=system):
            return est.estimate(system, theta, state, key)

        t = compile_timed(name, estimate, (theta, state, jax.random.key(2)))
        grads[name] = jax.tree.leaves(t.fn(*t.args)[0])
        timed.append(t)
    round_robin(timed, rounds)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(grads["1 device"], grads["2 devices"]))
    scale = max(float(np.max(np.abs(np.asarray(a)))) for a in grads["1 device"])
    return {
        "devices": [str(d) for d in jax.devices()],
        "rows": [{"name": t.name, "compile_s": t.compile_s, "wall_s": t.wall_s,
                  "cpu_s": t.cpu_s, "steps_per_s": 2 * est.num_pairs * window / t.wall_s}
                 for t in timed],
        "max_abs_diff": diff, "grad_scale": scale,
    }


def multihost_child(process_id: int, port: int, task: str, window: int, rounds: int) -> dict:
    """Runs in each of the 2 processes: one ES estimate on the global mesh."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
    import equinox as eqx
    import numpy as np

    from vograd.sharding import population_mesh

    mesh = population_mesh()  # every device of every process
    system, est = _estimator(mesh, task, window)
    theta = system.init_theta(jax.random.key(0))
    state = eqx.filter_jit(est.init)(system, theta, jax.random.key(1))
    fn = eqx.filter_jit(lambda th, st, k: est.estimate(system, th, st, k))
    start = time.perf_counter()
    grad = jax.block_until_ready(fn(theta, state, jax.random.key(2))[0])
    compile_s = time.perf_counter() - start
    walls = []
    for i in range(rounds):
        start = time.perf_counter()
        jax.block_until_ready(fn(theta, state, jax.random.key(2)))
        walls.append(time.perf_counter() - start)
    return {"process": jax.process_index(), "global_devices": len(jax.devices()),
            "local_devices": len(jax.local_devices()), "compile_s": compile_s,
            "wall_s": float(np.median(walls)),
            "grad": [np.asarray(x).tolist() for x in jax.tree.leaves(grad)]}


def single_reference(task: str, window: int) -> list:
    """Returns the single-process gradient with the multihost run's keys (leaves as lists)."""
    import equinox as eqx
    import jax
    import numpy as np

    system, est = _estimator(None, task, window)
    theta = system.init_theta(jax.random.key(0))
    state = eqx.filter_jit(est.init)(system, theta, jax.random.key(1))
    grad = eqx.filter_jit(lambda th, st, k: est.estimate(system, th, st, k))(
        theta, state, jax.random.key(2))[0]
    return [np.asarray(x).tolist() for x in jax.tree.leaves(grad)]


def run_devices(rounds: int = 5, task: str = TASK, window: int = WINDOW,
                timeout: float = 900) -> dict:
    """Returns `devices_child`'s figures, run in a child process with 2 CPU devices."""
    cmd = [sys.executable, "-m", "vograd.benchmarks.speed.sharding", "devices-child",
           str(rounds), task, str(window)]
    out = subprocess.run(cmd, env=_child_env(2), capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode:
        raise RuntimeError(f"sharding child failed:\n{out.stderr[-3000:]}")
    return _last_json(out.stdout)


def run_multihost(rounds: int = 3, task: str = TASK, window: int = WINDOW,
                  timeout: float = 900) -> dict:
    """Returns the 2-process ``jax.distributed`` run and its agreement with one process."""
    import numpy as np

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vograd.benchmarks.speed.sharding", "multihost-child", str(i),
             str(port), task, str(window), str(rounds)],
            env=_child_env(None), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        if p.returncode:
            raise RuntimeError(f"multihost child failed:\n{stderr[-3000:]}")
        results.append(_last_json(stdout))
    reference = single_reference(task, window)
    diffs = [max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                 for a, b in zip(r["grad"], reference)) for r in results]
    scale = max(float(np.max(np.abs(np.asarray(a)))) for a in reference)
    for r in results:
        del r["grad"]
    return {"processes": results, "max_abs_diff": max(diffs), "grad_scale": scale}


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "devices-child":
        print(json.dumps(devices_child(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))))
    elif what == "multihost-child":
        print(json.dumps(multihost_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                         int(sys.argv[5]), int(sys.argv[6]))))
    elif what == "devices":
        print(json.dumps(run_devices(rounds=2 if "--quick" in sys.argv else 5)))
    elif what == "multihost":
        print(json.dumps(run_multihost()))
    else:
        raise SystemExit(f"unknown command {what!r}; expected devices or multihost")
