"""``ImageMLPFamily``: a multi-layer perceptron on flattened images."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.tasks.problems.class_data import ClassData
from vograd.tasks.problems.image_family import (
    ImageClassificationFamily,
    ImageTask,
    as_class_data,
    check_range,
    dense,
    normal_arrays,
    resolve_k,
)


ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu, "sigmoid": jax.nn.sigmoid}


class ImageMLPFamily(ImageClassificationFamily):
    """MLP classifiers (ReLU by default) of k-class image problems (default: 2 hidden layers of 32, batch 128).

    Params: ``{"linear_0": {"w": [H*W*C, h0], "b": [h0]}, ..., "head": {"w": [h_last, k_max],
    "b": [k_max]}}``; weights start ``N(0, 1 / fan_in)`` (LeCun; He's ``2 / fan_in`` on
    the non-centred pixels made initial losses up to 0.45 nats above ``log k``), biases at zero.

    Args:
        dataset: a dataset name for ``vograd.tasks.datasets.load``, a ``(train, test)`` pair of
            ``Dataset``, or a ``ClassData`` (shared with another family; ``classes`` ignored).
        classes: the class pool: ``"train"`` / ``"test"`` (``split_classes``), ``"all"``,
            or explicit class ids.
        k: classes per task, an int or a ``(k_min, k_max)`` range; default ``resolve_k``.
        hidden: widths of the hidden layers.
        batch_size: examples per batch.
        tint_range: per-channel input scale, uniform in ``[low, high]`` per task.
        valid_fraction, num_test_classes, data_dir, sources: passed to ``load_class_data``.
        downsample: average-pool the images by this factor first (e.g. 2: Fashion-MNIST
            at 14x14, a 4x smaller first layer).
        activation: the hidden units' nonlinearity, a key of `ACTIVATIONS`.
    """

    data: ClassData
    k_range: tuple[int, int] = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    tint_range: tuple[float, float] = eqx.field(static=True)
    hidden: tuple[int, ...] = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        dataset="fashion_mnist",
        classes="train",
        *,
        k: int | tuple[int, int] | None = None,
        hidden: Sequence[int] = (32, 32),
        batch_size: int = 128,
        tint_range: tuple[float, float] = (0.5, 1.0),
        valid_fraction: float = 1 / 6,
        num_test_classes: int | None = None,
        data_dir: str | None = None,
        sources: Sequence[str] | None = None,
        downsample: int = 1,
        activation: str = "relu",
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
        self.activation = activation
        self.data = as_class_data(
            dataset,
            classes,
            num_test_classes=num_test_classes,
            valid_fraction=valid_fraction,
            data_dir=data_dir,
            sources=sources,
            downsample=downsample,
        )
        self.k_range = resolve_k(k, self.data.pool_size)
        if batch_size < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"batch_size and hidden widths must be >= 1: {batch_size}, {hidden}")
        self.batch_size = int(batch_size)
        self.tint_range = check_range("tint_range", tint_range)
        self.hidden = tuple(int(h) for h in hidden)

    def init_params(self, task: ImageTask, key: PRNGKeyArray) -> dict:
        """Returns fresh MLP parameters (shapes in the class docstring)."""
        del task
        h, w, c = self.data.image_shape
        widths = (h * w * c, *self.hidden, self.k_max)
        weights = normal_arrays(key, list(zip(widths[:-1], widths[1:])))
        params = {f"linear_{i}": dense(weights[i], gain=1.0) for i in range(len(self.hidden))}
        params["head"] = dense(weights[-1], gain=1.0)
        return params

    def logits(self, params: dict, images: Float[Array, "b h w c"]) -> Float[Array, "b k"]:
        """Returns ``head(act(... act(x W_0 + b_0)))`` of the flattened ``x``: ``[B, k_max]``."""
        act = ACTIVATIONS[self.activation]
        x = images.reshape(images.shape[0], -1)
        for i in range(len(self.hidden)):
            layer = params[f"linear_{i}"]
            x = act(x @ layer["w"] + layer["b"])
        return x @ params["head"]["w"] + params["head"]["b"]
