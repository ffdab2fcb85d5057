"""learned_optimization's side of `vograd.benchmarks.reference.run`: its tasks, estimators, optimizer.

The reference runs through its own code paths: its ``TruncatedES`` /
``TruncatedPES`` (a Python loop over jitted segments of ``steps_per_jit``
steps), its ``MLPLOpt``, its ``Task`` / ``TaskFamily`` interface fed from
host-side iterators. Only the data are ours, so that both libraries train
the same networks on the same images:

- ``quadratic``: vograd's 10-d least-squares family written as a
  learned_optimization ``TaskFamily``: ``||A w - (y + 0.1 eps)||^2`` with
  ``A, y`` sampled per task and ``eps ~ N(0, I)`` drawn from the step key
  its loss receives (its own ``FixedDimQuadraticFamily`` is ``||w - c||^2``,
  without the product and the noise draw);
- ``mlp``: its ``_MLPImageTask`` with one hidden layer of 16 (784-16-10,
  12,730 parameters), batches of 128 Fashion-MNIST images drawn uniformly on the
  host, scaled to [0, 1];
- ``conv``: 3 haiku ``Conv2D(32, 3, stride=2)`` 'SAME' layers with ReLU, mean
  pool, linear head (19,722 parameters, the layout of vograd's ``ConvFamily``),
  batches of 128 from the same 32x32x3 images as vograd's.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from vograd.benchmarks.reference import compat
from vograd.benchmarks.speed.common import Timed

# MLPLOpt's input features (learned_optimization/learned_optimizers/mlp_lopt.py):
# g, w, momenta at these decays, then tanh(t / s - 1) at these timescales: 19 in all.
LOPT_DECAYS = (0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)
LOPT_TIMESCALES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0, 100000.0)

INSTALL_HINT = (
    "learned_optimization is not importable here. `make bench-reference` installs it into "
    ".venv-reference (pins in vograd/benchmarks/reference/requirements.txt) and runs this benchmark there."
)


def modules():
    """Returns learned_optimization's modules used here, as a dict; raises ``RuntimeError``
    with the install command when the library is missing."""
    compat.install()
    try:
        import haiku as hk
        from learned_optimization.learned_optimizers import mlp_lopt
        from learned_optimization.outer_trainers import (
            gradient_learner,
            truncated_es,
            truncated_grad,
            truncated_pes,
            truncation_schedule,
        )
        from learned_optimization.tasks import base as tasks_base
        from learned_optimization.tasks.datasets import base as datasets_base
        from learned_optimization.tasks.fixed import image_mlp
    except ImportError as e:
        raise RuntimeError(f"{INSTALL_HINT} ({e})") from e
    return {
        "hk": hk, "mlp_lopt": mlp_lopt, "gradient_learner": gradient_learner,
        "truncated_es": truncated_es, "truncated_pes": truncated_pes,
        "truncated_grad": truncated_grad,
        "truncation_schedule": truncation_schedule, "tasks_base": tasks_base,
        "datasets_base": datasets_base, "image_mlp": image_mlp,
    }


def _host_datasets(lo, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """Returns a learned_optimization ``Datasets`` whose four splits draw uniform batches
    of ``images`` (uint8 ``[N, H, W, C]``, scaled to [0, 1]) on the host."""
    rng = np.random.default_rng(seed)

    def batches():
        while True:
            idx = rng.integers(0, labels.shape[0], batch_size)
            yield {"image": images[idx].astype(np.float32) / 255.0, "label": labels[idx]}

    abstract = {
        "image": jax.ShapeDtypeStruct((batch_size,) + images.shape[1:], jnp.float32),
        "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32),
    }
    return lo["datasets_base"].Datasets(
        batches(), batches(), batches(), batches(),
        extra_info={"num_classes": int(labels.max()) + 1}, abstract_batch=abstract,
    )


def _conv_task(lo, datasets, channels=(32, 32, 32), stride=2):
    """Returns a learned_optimization ``Task``: the CNN of the module docstring."""
    hk = lo["hk"]
    num_classes = datasets.extra_info["num_classes"]

    def forward(batch):
        x = batch["image"]
        for c in channels:
            x = jax.nn.relu(hk.Conv2D(c, 3, stride=stride)(x))
        logits = hk.Linear(num_classes)(jnp.mean(x, axis=(1, 2)))
        labels = jax.nn.one_hot(batch["label"], num_classes)
        return jnp.mean(lo["tasks_base"].softmax_cross_entropy(logits=logits, labels=labels))

    module = hk.transform(forward)

    class ConvTask(lo["tasks_base"].Task):
        def __init__(self):
            super().__init__()
            self.datasets = datasets

        def init(self, key):
            batch = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), datasets.abstract_batch)
            return module.init(key, batch)

        def loss(self, params, key, data):
            return module.apply(params, key, data)

    return ConvTask()


def _least_squares_family(lo, dim: int = 10, noise_std: float = 0.1):
    """Returns vograd's ``QuadraticFamily(dim, noise_std)`` as a learned_optimization family."""
    tasks_base = lo["tasks_base"]

    class LeastSquaresFamily(tasks_base.TaskFamily):
        def sample(self, key):
            z = jax.random.normal(key, (dim * (dim + 1),))
            return {"A": z[dim:].reshape(dim, dim), "y": z[:dim]}

        def task_fn(self, cfg):
            class LeastSquares(tasks_base.Task):
                def init(self, key):
                    return jax.random.normal(key, (dim,))

                def loss(self, params, key, data):
                    noise = noise_std * jax.random.normal(key, (dim,))
                    return jnp.sum((cfg["A"] @ params - (cfg["y"] + noise)) ** 2)

            return LeastSquares()

    return LeastSquaresFamily()


def family(task: str, lo=None):
    """Returns learned_optimization's task family for ``task`` (see the module docstring)."""
    from vograd.tasks.datasets import load

    lo = lo or modules()
    if task == "quadratic":
        return _least_squares_family(lo)
    if task == "mlp":
        data = load("fashion_mnist", "train")
        datasets = _host_datasets(lo, data.images, data.labels, 128, seed=0)
        inner = lo["image_mlp"]._MLPImageTask(datasets, [16])
    elif task == "conv":
        data = load("imagenet_resized/32x32", "train")
        keep = data.labels < 10  # 10-class problems, as vograd's (k=10)
        datasets = _host_datasets(lo, data.images[keep], data.labels[keep], 128, seed=0)
        inner = _conv_task(lo, datasets)
    else:
        raise KeyError(f"unknown task {task!r}")
    return lo["tasks_base"].single_task_to_family(inner)


def num_params(fam, lo=None) -> int:
    """Returns the parameter count of a task of ``fam``."""
    lo = lo or modules()
    task = fam.task_fn(fam.sample(jax.random.PRNGKey(0)))
    return int(sum(x.size for x in jax.tree_util.tree_leaves(task.init(jax.random.PRNGKey(0)))))


def optimizer(hidden_layers: int, lo=None):
    """Returns ``MLPLOpt`` with ``hidden_layers`` layers of 32 (its default is 2)."""
    lo = lo or modules()
    return lo["mlp_lopt"].MLPLOpt(hidden_layers=hidden_layers, compute_summary=False)


def estimator_timed(name: str, fam, lopt, estimator: str, window: int, pairs: int,
                    horizon: int, lo=None) -> Timed:
    """Returns a `Timed` of one ``compute_gradient_estimate`` of learned_optimization's
    ``TruncatedES`` or ``TruncatedPES`` with ``pairs`` tasks (antithetic pairs) or
    ``TruncatedGrad`` (``"TBPTT"``) with ``2 x pairs`` tasks, one jitted
    segment per window (``steps_per_jit = window``; its default of 10 measured no
    faster) and unstacked antithetic unrolls (its default). Each call continues from the
    state the previous one returned, after two warm-up calls. ``compile_s``: the first
    call, compiles included."""
    lo = lo or modules()
    sched = lo["truncation_schedule"].ConstantTruncationSchedule(horizon)
    if estimator == "ES":
        est = lo["truncated_es"].TruncatedES(fam, lopt, sched, num_tasks=pairs,
                                             unroll_length=window, steps_per_jit=window)
    elif estimator == "PES":
        est = lo["truncated_pes"].TruncatedPES(fam, lopt, sched, num_tasks=pairs,
                                               trunc_length=window, steps_per_jit=window)
    elif estimator == "TBPTT":  # 2 x pairs unperturbed tasks, as vograd's TruncatedBackprop
        est = lo["truncated_grad"].TruncatedGrad(fam, lopt, sched, num_tasks=2 * pairs,
                                                 unroll_length=window, steps_per_jit=window)
    else:
        raise KeyError(f"learned_optimization has no estimator {estimator!r} here")
    gl = lo["gradient_learner"]
    weights = gl.WorkerWeights(theta=lopt.init(jax.random.PRNGKey(0)), theta_model_state=None,
                               outer_state=gl.OuterState(0))
    state = est.init_worker_state(weights, jax.random.PRNGKey(1))

    def estimate(state, key):
        out, _ = est.compute_gradient_estimate(weights, key, state)
        return out.grad, out.unroll_state

    start = time.perf_counter()
    _, state = jax.block_until_ready(estimate(state, jax.random.PRNGKey(2)))
    first = time.perf_counter() - start
    # A second warm-up call: TruncatedGrad compiles again on its second call (the
    # state it returns differs in weak types from the one it was initialised with).
    _, state = jax.block_until_ready(estimate(state, jax.random.PRNGKey(3)))
    t = Timed(name, estimate, (state, jax.random.PRNGKey(4)), first)
    t.advance = lambda args, out: (out[1], jax.random.fold_in(args[1], 1))
    return t


def update_timed(name: str, lopt, params, grads) -> Timed:
    """Returns a `Timed` of one jitted update of ``lopt`` (learned_optimization's
    ``Optimizer.update``, which also applies it) on ``params``."""
    theta = lopt.init(jax.random.PRNGKey(0))
    opt = lopt.opt_fn(theta)
    update = jax.jit(lambda state, g: opt.update(state, g, loss=jnp.asarray(0.0)))
    state = opt.init(params)
    start = time.perf_counter()
    jax.block_until_ready(update(state, grads))
    return Timed(name, update, (state, grads), time.perf_counter() - start)


def same_function_check(lo=None) -> dict:
    """Returns the largest difference between one update of ``MLPLOpt(hidden_layers=1)``
    and of vograd's ``MLPOptimizer`` configured like it (its 6 decays and 11 timescales,
    one hidden layer of 32), with MLPLOpt's weights copied over, on the image MLP's
    parameters and a random gradient: evidence that the timed pair computes the same thing.
    Raises ``RuntimeError`` when they differ by more than float32 rounding."""
    from vograd.tasks.optimizers import MLPOptimizer, MLPTheta

    lo = lo or modules()
    lopt = optimizer(1, lo)
    theta = lopt.init(jax.random.PRNGKey(0))
    layers = sorted(theta)  # 'mlp/~/linear_0', 'mlp/~/linear_1'
    mapped = MLPTheta(w1=theta[layers[0]]["w"], b1=theta[layers[0]]["b"],
                      w2=theta[layers[1]]["w"], b2=theta[layers[1]]["b"])
    ours = MLPOptimizer(decays=LOPT_DECAYS, taus=LOPT_TIMESCALES, hidden=32)
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    params = {"w": jax.random.normal(k1, (784, 16)) * 0.05, "b": jnp.zeros((16,))}
    grads = jax.tree.map(lambda p: jax.random.normal(k2, p.shape) * 0.01, params)
    opt = lopt.opt_fn(theta)
    ref_new = opt.get_params(opt.update(opt.init(params), grads, loss=jnp.asarray(0.0)))
    updates, _ = ours.update(mapped, grads, ours.init(mapped, params), params)
    our_new = jax.tree.map(lambda p, u: p + u, params, updates)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree_util.tree_leaves(ref_new), jax.tree_util.tree_leaves(our_new)))
    step = max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree_util.tree_leaves(ref_new), jax.tree_util.tree_leaves(params)))
    if diff > 1e-6 * max(step, 1e-12) + 1e-7:
        raise RuntimeError(
            f"vograd's matched MLPOptimizer and MLPLOpt 1x32 disagree by {diff:.2e} on steps of "
            f"{step:.2e}: the like-for-like rows would not compare the same optimizer"
        )
    return {"max_abs_diff": diff, "max_abs_step": step, "features": ours.num_features,
            "hidden": ours.hidden}


__all__ = ["LOPT_DECAYS", "LOPT_TIMESCALES", "INSTALL_HINT", "estimator_timed", "family",
           "modules", "num_params", "optimizer", "same_function_check", "update_timed"]
