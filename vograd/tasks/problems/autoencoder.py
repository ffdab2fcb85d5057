"""``ImageAutoencoderFamily``: MLP autoencoders of images, trained on squared error."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.tasks.problems.base import Split, TaskFamily
from vograd.tasks.problems.image_family import ImageBatch, ImageTask, dense, normal_arrays
from vograd.tasks.problems.mlp import ACTIVATIONS, ImageMLPFamily


class ImageAutoencoderFamily(TaskFamily):
    """``x -> act(... x W_0 ...) -> x_hat``, loss ``mean (x_hat - x)^2`` over pixels.

    Images, tasks (classes, tint) and batches come from an `ImageMLPFamily`
    over the same arguments (its classifier head is unused); labels are ignored.
    Params: ``{"linear_i": {"w", "b"}, "decoder": {"w": [h_last, H*W*C], "b"}}``.
    A regression loss with a bottleneck: a problem type the classifiers are not.
    """

    images: ImageMLPFamily
    hidden: tuple[int, ...] = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(self, dataset="fashion_mnist", classes="all", *, hidden: Sequence[int] = (32,),
                 activation: str = "relu", batch_size: int = 128, downsample: int = 2, **kwargs):
        self.images = ImageMLPFamily(dataset, classes, hidden=(1,), batch_size=batch_size,
                                     downsample=downsample, **kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be >= 1 and at least one layer, got {hidden}")
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation

    def sample(self, key: PRNGKeyArray) -> ImageTask:
        """Returns an image task (class subset and tint) of the underlying family."""
        return self.images.sample(key)

    def init_params(self, task: ImageTask, key: PRNGKeyArray) -> dict:
        """Returns fresh encoder and decoder parameters."""
        del task
        h, w, c = self.images.data.image_shape
        widths = (h * w * c, *self.hidden, h * w * c)
        weights = normal_arrays(key, list(zip(widths[:-1], widths[1:])))
        params = {f"linear_{i}": dense(weights[i], gain=1.0) for i in range(len(self.hidden))}
        params["decoder"] = dense(weights[-1], gain=1.0)
        return params

    def batch(self, task: ImageTask, key: PRNGKeyArray, split: Split) -> ImageBatch:
        """Returns a batch of the underlying image family."""
        return self.images.batch(task, key, split)

    def loss(self, params: dict, task: ImageTask, batch: ImageBatch) -> Float[Array, ""]:
        """Returns the mean squared reconstruction error per pixel."""
        del task
        act = ACTIVATIONS[self.activation]
        x = batch.images.reshape(batch.images.shape[0], -1)
        z = x
        for i in range(len(self.hidden)):
            z = act(z @ params[f"linear_{i}"]["w"] + params[f"linear_{i}"]["b"])
        x_hat = z @ params["decoder"]["w"] + params["decoder"]["b"]
        return jnp.mean(jnp.square(x_hat - x))


__all__ = ["ImageAutoencoderFamily"]
