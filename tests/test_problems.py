"""Tests of the inner-problem task families (vograd/tasks/problems/)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vograd.tasks.problems import QuadraticFamily


@jax.jit
def _quadratic_at_optimum(family, key):
    key_task, key_batch = jax.random.split(key)
    task = family.sample(key_task)
    w_star = family.optimum(task)
    batch = family.batch(task, key_batch, "train")
    return family.loss(w_star, task, batch), jax.grad(family.loss)(w_star, task, batch)


def test_quadratic_closed_form_optimum_has_zero_loss_and_gradient():
    loss, grad = _quadratic_at_optimum(QuadraticFamily(dim=10), jax.random.key(0))
    # A is square Gaussian and almost surely invertible: the optimum has zero loss
    # (float32 lstsq on a condition number ~1e2 leaves ~1e-8 relative residual).
    assert float(loss) < 1e-6
    assert float(jnp.max(jnp.abs(grad))) < 1e-3


@jax.jit
def _quadratic_population(family, key):
    keys = jax.random.split(key, 256)
    tasks = jax.vmap(family.sample)(keys)
    params = jax.vmap(family.init_params)(tasks, keys)
    batches = jax.vmap(lambda t, k: family.batch(t, k, "train"))(tasks, jax.random.split(key, 256))
    return tasks, jax.vmap(family.loss)(params, tasks, batches)


def test_quadratic_vmapped_population_matches_expected_loss():
    family = QuadraticFamily(dim=10, noise_std=0.1)
    tasks, losses = _quadratic_population(family, jax.random.key(0))
    losses = np.asarray(losses)
    assert losses.shape == (256,) and np.all(np.isfinite(losses))
    assert float(jnp.abs(tasks.A[0] - tasks.A[1]).max()) > 0.1  # tasks differ
    # E||A w - y - noise||^2 = d (d + 1 + noise_std^2) = 110.1 for A, w, y standard normal;
    # the 256-task mean lies within 4 standard errors of it.
    standard_error = losses.std() / np.sqrt(losses.size)
    assert abs(losses.mean() - 110.1) < 4 * standard_error, (losses.mean(), standard_error)


def test_quadratic_rejects_bad_split():
    family = QuadraticFamily()
    task = family.sample(jax.random.key(0))
    with pytest.raises(ValueError, match="split"):
        family.batch(task, jax.random.key(0), "validation")


# ---------------------------------------------------------------- image families

import optax  # noqa: E402

from vograd.tasks.datasets import Dataset  # noqa: E402
from vograd.tasks.problems import (  # noqa: E402
    Conv6Family,
    ConvFamily,
    ImageMLPFamily,
    build_class_data,
    conv2d,
    split_classes,
)


def _coded_dataset(split: str, per_class: int, offset: int) -> Dataset:
    """Returns 8x8 images whose pixels encode (class, example number): pixel = 10*class + n."""
    labels = np.repeat(np.arange(10, dtype=np.int32), per_class)
    rank = np.tile(np.arange(per_class), 10)
    values = (10 * labels + rank + offset).astype(np.uint8)
    images = np.broadcast_to(values[:, None, None, None], (10 * per_class, 8, 8, 1)).copy()
    return Dataset("coded", split, images, labels, 10, "synthetic, pixel = 10*class + rank")


def test_split_classes_disjoint_and_deterministic():
    for num_classes, num_test in ((10, 4), (1000, 300)):
        pools = split_classes(num_classes)
        assert len(pools.test) == num_test and len(pools.train) == num_classes - num_test
        assert not set(pools.train) & set(pools.test)
        assert sorted(pools.train + pools.test) == list(range(num_classes))
        assert split_classes(num_classes) == pools
    with pytest.raises(ValueError, match="num_test"):
        split_classes(10, 10)


def test_batches_come_from_the_task_classes_and_the_right_split():
    # 6 train examples per class: the last ceil(6/6) = 1 is "valid"; the test set is offset by 6.
    train, test = _coded_dataset("train", 6, 0), _coded_dataset("test", 3, 6)
    classes = (1, 4, 7, 9)
    family = ImageMLPFamily(
        build_class_data(train, test, classes), k=(2, 3), batch_size=256, tint_range=(1.0, 1.0)
    )

    @jax.jit
    def draw(family, key):
        task = family.sample(key)
        keys = jax.random.split(key, 3)
        return task, [family.batch(task, k, s) for k, s in zip(keys, ("train", "valid", "test"))]

    for seed in range(5):
        task, batches = draw(family, jax.random.key(seed))
        for batch, ranks in zip(batches, (range(5), [5], [6, 7, 8])):
            assert batch.images.shape == (256, 8, 8, 1)
            labels = np.asarray(batch.labels)
            assert labels.min() >= 0 and labels.max() < int(task.num_active)
            pixels = np.round(np.asarray(batch.images[:, 0, 0, 0]) * 255).astype(int)
            cls = np.array(classes)[np.asarray(task.classes)[labels]]
            assert set(pixels - 10 * cls) <= set(ranks)


def test_mlp_family_batches_are_reproducible_and_tasks_differ():
    family = ImageMLPFamily("fashion_mnist", "train")
    assert family.data.classes == split_classes(10).train

    @jax.jit
    def draw(family, key):
        tasks = jax.vmap(family.sample)(jax.random.split(key, 8))
        task = jax.tree.map(lambda x: x[0], tasks)
        keys = [jax.random.key(1), jax.random.key(1), jax.random.key(2)]
        return tasks, [family.batch(task, k, "train") for k in keys]

    tasks, (b1, b2, b3) = draw(family, jax.random.key(0))
    np.testing.assert_array_equal(b1.images, b2.images)
    np.testing.assert_array_equal(b1.labels, b2.labels)
    assert not np.array_equal(b1.images, b3.images)
    signatures = {(tuple(c), float(t[0])) for c, t in zip(np.asarray(tasks.classes), tasks.tint)}
    assert len(signatures) == 8
    assert set(np.asarray(tasks.num_active)) <= {2, 3, 4, 5}
    test_family = ImageMLPFamily(family.data.name, "test")
    assert not set(test_family.data.classes) & set(family.data.classes)


@pytest.fixture(scope="module")
def subset_families():
    """Small-data families (the shipped Fashion-MNIST subset, MNIST digits), batch 32."""
    return {
        "mlp": ImageMLPFamily("fashion_mnist", sources=["subset"], batch_size=32),
        "conv": ConvFamily("cifar10", sources=["subset"], batch_size=32),
        "conv6": Conv6Family(batch_size=32),
    }


@jax.jit
def _population(family, key):
    """Returns sampled tasks, fresh params, train batches, losses, accuracies for 4 tasks."""
    keys = jax.random.split(key, 4)
    tasks = jax.vmap(family.sample)(keys)
    params = jax.vmap(family.init_params)(tasks, keys)
    batches = jax.vmap(lambda t, k: family.batch(t, k, "train"))(tasks, keys)
    losses = jax.vmap(family.loss)(params, tasks, batches)
    return tasks, losses, jax.vmap(family.accuracy)(params, tasks, batches)


@pytest.mark.parametrize("name", ["mlp", "conv", "conv6"])
def test_fresh_init_loss_is_log_k_and_population_vmaps(subset_families, name):
    family = subset_families[name]
    tasks, losses, accuracy = _population(family, jax.random.key(1))
    excess = np.asarray(losses) - np.log(np.asarray(tasks.num_active))
    # Small random logits cost about s^2/2 above log k. Measured over 64 tasks: mean excess
    # 0.01, largest 0.11 (MLP); 16 tasks: largest 0.09 (conv), 0.05 (conv6). 0.25 is > 2x that.
    assert np.all(np.abs(excess) < 0.25), excess
    assert accuracy.shape == (4,) and np.all((accuracy >= 0) & (accuracy <= 1))
    assert len({tuple(np.asarray(c)) for c in tasks.classes}) > 1  # tasks differ


def test_conv_family_has_about_20k_params_and_impls_agree(subset_families):
    family = ConvFamily(subset_families["conv"].data, k=10 - 4 - 1)  # shares the data
    params = jax.eval_shape(family.init_params, None, jax.random.key(0))
    # Metz et al. 2019: ~20k parameters: 3*(9*c_in*32+32) + 32*k + k, c_in = 3, 32, 32.
    assert sum(x.size for x in jax.tree.leaves(params)) == 19_557 == 19_722 - 33 * 5
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(4, 9, 9, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 8)).astype(np.float32)
    both = jax.jit(
        lambda x, w: [conv2d(x, w, s, impl) for s in (1, 2) for impl in ("im2col", "lax")]
    )
    im2col_1, lax_1, im2col_2, lax_2 = both(x, w)
    assert lax_1.shape == (4, 9, 9, 8) and lax_2.shape == (4, 5, 5, 8)
    # float32 sums of 27 products of O(1) terms: agreement to 1e-4 absolute.
    np.testing.assert_allclose(im2col_1, lax_1, atol=1e-4)
    np.testing.assert_allclose(im2col_2, lax_2, atol=1e-4)


def test_mlp_trains_on_real_fashion_mnist():
    family = ImageMLPFamily("fashion_mnist", "train", k=5)
    optimizer = optax.adam(3e-3)

    @jax.jit  # the family is an argument, so its images are not baked into the program
    def train(family, key):
        key_task, key_init, key_train = jax.random.split(key, 3)
        task = family.sample(key_task)
        params = family.init_params(task, key_init)

        def step(carry, key):
            params, opt_state = carry
            batch = family.batch(task, key, "train")
            grads = jax.grad(family.loss)(params, task, batch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        keys = jax.random.split(key_train, 300)
        (trained, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), keys)
        valid = family.batch(task, jax.random.key(6), "valid")
        test = family.batch(task, jax.random.key(7), "test")
        return (
            family.loss(params, task, valid),
            family.loss(trained, task, valid),
            family.accuracy(trained, task, test),
        )

    before, after, accuracy = (float(x) for x in train(family, jax.random.key(3)))
    # 5 of {T-shirt, Trouser, Dress, Sandal, Bag, Ankle boot} are easy to tell apart: a
    # 2x32 MLP gets ~95% after 300 Adam steps; assert a 3x lower loss and 85% accuracy.
    assert before > 1.3 and after < before / 3, (before, after)
    assert accuracy > 0.85


def test_image_family_argument_errors():
    with pytest.raises(ValueError, match="k_min"):
        ImageMLPFamily("fashion_mnist", "test", k=5)  # the test pool has 4 classes
    with pytest.raises(ValueError, match="classes"):
        ImageMLPFamily("fashion_mnist", "some")
    with pytest.raises(ValueError, match="stride"):
        ConvFamily(channels=(32, 32), strides=(2,))
    family = ImageMLPFamily("fashion_mnist", batch_size=4)
    with pytest.raises(ValueError, match="split"):
        family.batch(family.sample(jax.random.key(0)), jax.random.key(0), "validation")


def test_unrolled_conv_matches_lax_under_vmap_and_second_order_gradients():
    from vograd.tasks.problems.conv_unrolled import conv2d_unrolled

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 2, 7, 7, 2)), jnp.float32)  # 3 tasks, 2 examples
    w = [
        jnp.asarray(rng.normal(size=(3, 3, 3, 2, 4)), jnp.float32),
        jnp.asarray(rng.normal(size=(3, 3, 3, 4, 4)), jnp.float32),
    ]

    def meta_loss(lr, conv):
        """Loss after 2 vmapped SGD steps on per-task kernels: needs 2nd-order derivatives."""

        def loss(w, x):
            h = conv(jax.nn.relu(conv(x, w[0], 2)), w[1], 1)
            return jnp.sum(jnp.tanh(h) ** 2)

        params = w
        for _ in range(2):
            grads = jax.vmap(jax.grad(loss))(params, x)
            params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
        return jax.vmap(loss)(params, x).sum()

    @jax.jit
    def both(lr):
        lax_conv = functools.partial(conv2d, impl="lax")
        return [jax.value_and_grad(meta_loss)(lr, conv) for conv in (lax_conv, conv2d_unrolled)]

    (value_lax, grad_lax), (value_unrolled, grad_unrolled) = both(1e-3)
    # Same convolutions in a different order of batching: float32 rounding only.
    np.testing.assert_allclose(value_unrolled, value_lax, rtol=1e-5)
    np.testing.assert_allclose(grad_unrolled, grad_lax, rtol=1e-4)
