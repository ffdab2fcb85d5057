"""``TabularMLPFamily``: MLP classifiers of scikit-learn's bundled tabular datasets.

Real data that ships inside scikit-learn's wheel (no download): ``"wine"``
(178 wines, 13 chemical measurements, 3 cultivars) and ``"breast_cancer"``
(569 tumours, 30 features, 2 classes). A modality none of the image families
has: few, heterogeneous, standardised features.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from vograd.tasks.problems.base import Split, TaskFamily
from vograd.tasks.problems.image_family import dense, normal_arrays
from vograd.tasks.problems.mlp import ACTIVATIONS

DATASETS = ("wine", "breast_cancer")


class TabularTask(eqx.Module):
    """One task: a per-task feature sign flip ``[D]`` in {-1, 1} (the data are fixed)."""

    flip: Float[Array, " d"]


class TabularBatch(eqx.Module):
    """Standardised features float32 ``[B, D]`` and labels int32 ``[B]``."""

    x: Float[Array, "b d"]
    y: Int[Array, " b"]


def _load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name not in DATASETS:
        raise KeyError(f"unknown tabular dataset {name!r}; known: {', '.join(DATASETS)}")
    try:
        from sklearn import datasets
    except ImportError as e:  # the 'digits' extra
        raise ImportError("tabular datasets need scikit-learn: pip install 'vograd[digits]'") from e
    bunch = getattr(datasets, f"load_{name}")()
    return np.asarray(bunch.data, np.float32), np.asarray(bunch.target, np.int32)


class TabularMLPFamily(TaskFamily):
    """MLP classifiers on a fixed tabular dataset; tasks differ by a feature sign flip.

    The examples are shuffled once (fixed seed 0) and split 80/20 into train and
    test (``"valid"`` batches come from the test part too); features are
    standardised with the train part's mean and standard deviation. Params:
    ``{"linear_i": {"w", "b"}, "head": {"w", "b"}}``, LeCun-normal weights.
    """

    train_x: Float[Array, "n d"]
    train_y: Int[Array, " n"]
    test_x: Float[Array, "m d"]
    test_y: Int[Array, " m"]
    num_classes: int = eqx.field(static=True)
    hidden: tuple[int, ...] = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(self, dataset: str = "wine", *, hidden: Sequence[int] = (64, 64),
                 batch_size: int = 32, activation: str = "relu"):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
        if batch_size < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"batch_size and hidden widths must be >= 1: {batch_size}, {hidden}")
        x, y = _load(dataset)
        order = np.random.default_rng(0).permutation(len(y))
        x, y = x[order], y[order]
        n = int(0.8 * len(y))
        mean, std = x[:n].mean(0), x[:n].std(0) + 1e-6
        x = (x - mean) / std
        self.train_x, self.train_y = jnp.asarray(x[:n]), jnp.asarray(y[:n])
        self.test_x, self.test_y = jnp.asarray(x[n:]), jnp.asarray(y[n:])
        self.num_classes = int(y.max()) + 1
        self.hidden = tuple(int(h) for h in hidden)
        self.batch_size = int(batch_size)
        self.activation = activation

    def sample(self, key: PRNGKeyArray) -> TabularTask:
        """Returns a task: each feature's sign flipped with probability 1/2."""
        return TabularTask(flip=jnp.where(jax.random.bernoulli(key, 0.5, (self.train_x.shape[1],)), -1.0, 1.0))

    def init_params(self, task: TabularTask, key: PRNGKeyArray) -> dict:
        """Returns fresh MLP parameters."""
        del task
        widths = (self.train_x.shape[1], *self.hidden, self.num_classes)
        weights = normal_arrays(key, list(zip(widths[:-1], widths[1:])))
        params = {f"linear_{i}": dense(weights[i], gain=1.0) for i in range(len(self.hidden))}
        params["head"] = dense(weights[-1], gain=1.0)
        return params

    def batch(self, task: TabularTask, key: PRNGKeyArray, split: Split) -> TabularBatch:
        """Returns ``batch_size`` examples drawn uniformly with replacement from ``split``."""
        x, y = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        idx = jax.random.randint(key, (self.batch_size,), 0, y.shape[0])
        return TabularBatch(x=x[idx] * task.flip, y=y[idx])

    def logits(self, params: dict, x: Float[Array, "b d"]) -> Float[Array, "b k"]:
        """Returns ``head(act(... act(x W_0 + b_0)))``, ``[B, num_classes]``."""
        act = ACTIVATIONS[self.activation]
        for i in range(len(self.hidden)):
            x = act(x @ params[f"linear_{i}"]["w"] + params[f"linear_{i}"]["b"])
        return x @ params["head"]["w"] + params["head"]["b"]

    def loss(self, params: dict, task: TabularTask, batch: TabularBatch) -> Float[Array, ""]:
        """Returns the mean softmax cross-entropy."""
        log_probs = jax.nn.log_softmax(self.logits(params, batch.x), axis=-1)
        return -jnp.mean(jnp.take_along_axis(log_probs, batch.y[:, None], axis=-1))


__all__ = ["DATASETS", "TabularBatch", "TabularMLPFamily", "TabularTask"]
