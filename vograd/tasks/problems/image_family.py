"""The shared part of the image classification families: tasks, batches, loss, accuracy.

A task draws ``k`` distinct classes of the family's class pool in random
order (class ``classes[j]`` gets label ``j``, so the order is the task's label
permutation), how many of them are active (``num_active``, between ``k_min``
and ``k_max``; logits of inactive labels are masked out) and a per-channel
input tint. The classifier head always has ``k_max`` outputs, so all tasks of
a family share their shapes.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from vograd.tasks.problems.base import Params, Split, TaskFamily
from vograd.tasks.problems.class_data import ClassData

# Masked logits: finite, so that no inf - inf can appear, and far below any real logit.
_MASKED_LOGIT = -1e9


class ImageTask(eqx.Module):
    """One k-class problem.

    Attributes:
        classes: int32 ``[k_max]``, distinct pool positions; label ``j`` is pool class
            ``classes[j]``.
        num_active: int32 scalar; only labels ``0 .. num_active - 1`` occur.
        tint: float32 ``[C]``; the input is ``tint * pixel / 255`` per channel.
    """

    classes: Int[Array, " k"]
    num_active: Int[Array, ""]
    tint: Float[Array, " c"]


class ImageBatch(eqx.Module):
    """One minibatch: tinted images float32 ``[B, H, W, C]`` in ``[0, 1]``, labels int32 ``[B]``."""

    images: Float[Array, "b h w c"]
    labels: Int[Array, " b"]


def resolve_k(k: int | tuple[int, int] | None, pool_size: int) -> tuple[int, int]:
    """Returns ``(k_min, k_max)``: 10-class problems when the pool has 10 classes or more,
    else 2 to ``min(5, pool_size)`` classes per task."""
    if k is None:
        k = 10 if pool_size >= 10 else (2, min(5, pool_size))
    k_min, k_max = (k, k) if isinstance(k, int) else tuple(k)
    if not 2 <= k_min <= k_max <= pool_size:
        raise ValueError(
            f"need 2 <= k_min <= k_max <= pool size {pool_size}, got k = {(k_min, k_max)}"
        )
    return k_min, k_max


def check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    """Returns ``value`` as a ``(low, high)`` tuple after checking ``0 < low <= high``."""
    low, high = (float(v) for v in value)
    if not 0 < low <= high:
        raise ValueError(f"{name} must satisfy 0 < low <= high, got {(low, high)}")
    return low, high


class ImageClassificationFamily(TaskFamily):
    """Classifiers of k-class problems drawn from a class pool; subclasses give the network.

    Concrete subclasses provide the fields below and ``init_params`` / ``logits``.
    """

    data: eqx.AbstractVar[ClassData]
    k_range: eqx.AbstractVar[tuple[int, int]]
    batch_size: eqx.AbstractVar[int]
    tint_range: eqx.AbstractVar[tuple[float, float]]

    @abc.abstractmethod
    def logits(self, params: Params, images: Float[Array, "b h w c"]) -> Float[Array, "b k"]:
        """Returns the unmasked logits ``[B, k_max]`` of the network on ``images``."""

    @property
    def k_max(self) -> int:
        """Returns the number of outputs of the classifier head."""
        return self.k_range[1]

    def sample(self, key: PRNGKeyArray) -> ImageTask:
        """Returns a task: ``k_max`` distinct pool classes in random order, ``num_active``
        uniform in ``[k_min, k_max]``, a tint uniform in ``tint_range`` per channel."""
        k_min, k_max = self.k_range
        pool, channels = self.data.pool_size, self.data.image_shape[-1]
        # One uniform draw for everything: each random call costs compile time.
        u = jax.random.uniform(key, (pool + 1 + channels,))
        low, high = self.tint_range
        num_active = k_min + (u[pool] * (k_max - k_min + 1)).astype(jnp.int32)
        return ImageTask(
            # A random order of the pool (one sort; cheaper to compile than random.permutation).
            classes=jnp.argsort(u[:pool])[:k_max].astype(jnp.int32),
            num_active=jnp.minimum(num_active, k_max),
            tint=low + (high - low) * u[pool + 1 :],
        )

    def batch(self, task: ImageTask, key: PRNGKeyArray, split: Split) -> ImageBatch:
        """Returns ``batch_size`` examples: labels uniform over the active labels, then a
        uniformly drawn example of each label's class from ``split``."""
        u = jax.random.uniform(key, (2, self.batch_size))
        labels = jnp.minimum((u[0] * task.num_active).astype(jnp.int32), task.num_active - 1)
        pixels = self.data.draw(u[1], task.classes[labels], split)
        images = pixels.astype(jnp.float32) * (task.tint / 255.0)
        return ImageBatch(images=images, labels=labels)

    def masked_logits(self, params: Params, task: ImageTask, images: Float[Array, "b h w c"]):
        """Returns logits ``[B, k_max]`` with the inactive labels set to -1e9."""
        logits = self.logits(params, images)
        active = jnp.arange(self.k_max) < task.num_active
        return jnp.where(active, logits, _MASKED_LOGIT)

    def loss(self, params: Params, task: ImageTask, batch: ImageBatch) -> Float[Array, ""]:
        """Returns the mean softmax cross-entropy ``mean_i [logsumexp(z_i) - z_i[y_i]]``."""
        logits = self.masked_logits(params, task, batch.images)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(log_probs, batch.labels[:, None], axis=-1))

    def accuracy(self, params: Params, task: ImageTask, batch: ImageBatch) -> Float[Array, ""]:
        """Returns the fraction of ``batch`` whose arg-max active logit is the label."""
        logits = self.masked_logits(params, task, batch.images)
        return jnp.mean(jnp.argmax(logits, axis=-1) == batch.labels)


def as_class_data(
    dataset: str | tuple | ClassData,
    classes,
    *,
    num_test_classes: int | None,
    valid_fraction: float,
    data_dir: str | None,
    sources: Sequence[str] | None,
    downsample: int = 1,
) -> ClassData:
    """Returns ``dataset`` itself if it is a ``ClassData`` (to share data between families),
    else ``load_class_data(dataset, classes, ...)``."""
    from vograd.tasks.problems.class_data import load_class_data

    if isinstance(dataset, ClassData):
        return dataset
    return load_class_data(
        dataset,
        classes,
        num_test_classes=num_test_classes,
        valid_fraction=valid_fraction,
        data_dir=data_dir,
        sources=sources,
        downsample=downsample,
    )


def normal_arrays(key: PRNGKeyArray, shapes: Sequence[tuple[int, ...]]) -> list[Array]:
    """Returns standard-normal arrays of the given shapes, cut from one flat draw.

    One 1-D draw compiles several times faster on CPU than one draw per
    (multi-dimensional) shape, which dominates the compile time of a population init.
    """
    sizes = [math.prod(shape) for shape in shapes]
    flat = jax.random.normal(key, (sum(sizes),))
    offsets = [0, *itertools.accumulate(sizes)]
    return [flat[a:b].reshape(shape) for a, b, shape in zip(offsets, offsets[1:], shapes)]


def dense(w: Array, gain: float) -> dict[str, Array]:
    """Returns ``{"w": w * sqrt(gain / fan_in), "b": zeros [fan_out]}`` for w ~ N(0, 1)."""
    fan_in, fan_out = w.shape
    return {"w": w * jnp.sqrt(gain / fan_in), "b": jnp.zeros((fan_out,))}
