"""Sharding the population (leading) axis of estimator states over devices.

Every estimator works on a population axis: antithetic branches, persistent
particles, PES accumulators, all stacked along axis 0. Splitting that axis over
the devices of a one-dimensional `jax.sharding.Mesh` is data parallelism over
samples: each device unrolls its share of the population, and XLA inserts the
all-reduce for the final mean over samples. Theta and the gradient stay
replicated.

Two ways to use it:

- give an estimator ``mesh=population_mesh()``: inside ``jit`` the estimator
  constrains its stacked population (`constrain_population`) so the
  partitioner splits the vmapped unrolls across devices, and ``init`` returns
  a state that is already sharded (``eqx.filter_jit(estimator.init)``);
- or place an existing state yourself with `shard_population`.

Multi-host: call ``jax.distributed.initialize()`` first in every process
(coordinator address, number of processes and process id from the cluster, or
auto-detected on TPU/SLURM). ``jax.devices()`` is then the global device list
and ``population_mesh()`` spans all hosts. Every process runs the same jitted
program with the same theta, keys and configuration (SPMD); data comes from
the step keys, so no host feeds data to another. There is no parameter
server: the gradient mean is a collective compiled by XLA, and every process
ends with the same replicated gradient. Build the estimator state inside
``jit`` (``eqx.filter_jit(estimator.init)``) so each host materializes only
its shard.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

POPULATION_AXIS = "population"

Tree = Any


def population_mesh(
    devices: Sequence[jax.Device] | None = None, axis_name: str = POPULATION_AXIS
) -> Mesh:
    """Returns a one-dimensional mesh over ``devices`` (default: all, every host)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("population_mesh needs at least one device")
    return Mesh(np.asarray(devices), (axis_name,), axis_types=(jax.sharding.AxisType.Auto,))


def _spec(x: Any, mesh: Mesh, axis_name: str) -> NamedSharding:
    size = mesh.shape[axis_name]
    if np.ndim(x) == 0:
        return NamedSharding(mesh, PartitionSpec())
    if np.shape(x)[0] % size:
        raise ValueError(
            f"population axis of length {np.shape(x)[0]} is not divisible by the "
            f"{size} devices of mesh axis {axis_name!r}"
        )
    return NamedSharding(mesh, PartitionSpec(axis_name))


def check_mesh(mesh: Mesh | None, axis_name: str, population: int) -> None:
    """Raises a ValueError unless ``population`` splits evenly over the mesh axis."""
    if mesh is None:
        return
    if axis_name not in mesh.shape:
        raise ValueError(f"mesh has no axis {axis_name!r}; its axes are {tuple(mesh.shape)}")
    size = mesh.shape[axis_name]
    if population % size:
        raise ValueError(
            f"population of {population} branches is not divisible by the {size} "
            f"devices of mesh axis {axis_name!r}"
        )


def shard_population(tree: Tree, mesh: Mesh, axis_name: str = POPULATION_AXIS) -> Tree:
    """Returns ``tree`` placed on ``mesh``: leading axes split over ``axis_name``,
    scalars replicated."""
    return jax.tree.map(lambda x: jax.device_put(x, _spec(x, mesh, axis_name)), tree)


def constrain_population(
    tree: Tree, mesh: Mesh | None, axis_name: str = POPULATION_AXIS
) -> Tree:
    """Returns ``tree`` with its leading axes constrained to be split over the mesh
    (inside ``jit``); the identity when ``mesh`` is None."""
    if mesh is None:
        return tree
    return jax.tree.map(
        lambda x: jax.lax.with_sharding_constraint(x, _spec(x, mesh, axis_name)), tree
    )
