"""vograd.interop.torch: a learned optimizer as a torch.optim.Optimizer follows the JAX
optimizer's trajectory on a small MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

torch = pytest.importorskip("torch")

import vograd.tasks.pretrained  # noqa: E402
from vograd.interop.torch import TorchOptimizer  # noqa: E402

SIZES = (12, 16, 3)  # inputs, hidden units, classes
STEPS = 100


def _init(seed=0):
    rng = np.random.default_rng(seed)
    (i, h, o) = SIZES
    # torch.nn.Linear's layout: weight [out, in], bias [out].
    return [rng.normal(0, i ** -0.5, (h, i)).astype(np.float32), np.zeros(h, np.float32),
            rng.normal(0, h ** -0.5, (o, h)).astype(np.float32), np.zeros(o, np.float32)]


def _batches(seed=1):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (SIZES[2], SIZES[0]))
    for _ in range(STEPS):
        y = rng.integers(0, SIZES[2], 32)
        yield (centers[y] + rng.normal(0, 1, (32, SIZES[0]))).astype(np.float32), y


def _jax_loss(params, x, y):
    w1, b1, w2, b2 = params
    logits = jnp.tanh(x @ w1.T + b1) @ w2.T + b2
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def _jax_run(opt):
    params = [jnp.asarray(p) for p in _init()]
    state = opt.init(params)

    @jax.jit
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(_jax_loss)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    trajectory, losses = [], []
    for x, y in _batches():
        params, state, loss = step(params, state, x, y)
        trajectory.append([np.asarray(p) for p in params])
        losses.append(loss.item())
    return trajectory, losses


def _torch_model():
    model = torch.nn.Sequential(torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.Tanh(),
                                torch.nn.Linear(SIZES[1], SIZES[2]))
    with torch.no_grad():
        for p, value in zip(model.parameters(), _init()):
            p.copy_(torch.from_numpy(value))
    return model


def _torch_steps(model, opt, batches):
    trajectory, losses = [], []
    for x, y in batches:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        trajectory.append([p.detach().numpy().copy() for p in model.parameters()])
        losses.append(loss.item())
    return trajectory, losses


@pytest.fixture(scope="module")
def jax_reference():
    return _jax_run(vograd.tasks.pretrained.load("metz2019-small"))


def test_trajectory_matches_the_jax_optimizer_over_100_steps(jax_reference):
    ref, ref_losses = jax_reference
    model = _torch_model()
    opt = TorchOptimizer.pretrained(model.parameters(), "metz2019-small")
    got, losses = _torch_steps(model, opt, _batches())
    assert len(got) == len(ref) == STEPS
    worst = max(float(np.max(np.abs(a - b))) for g, r in zip(got, ref) for a, b in zip(g, r))
    # The two frameworks' float32 gradients differ in the last bits (summation order);
    # the learned optimizer carries those differences along. Measured here: 3.9e-07 for
    # parameters up to 1.45 in size; 1e-5 is ~60x float32's epsilon at that scale.
    assert worst < 1e-5, worst
    # Losses: measured relative differences up to 9.5e-6 (a late loss of ~0.1 is a
    # difference of two larger float32 log-sum-exps).
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    # and it learns: the loss falls (measured 0.57 -> 0.13 mean over the first and last 10).
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_state_dict_resumes_the_same_trajectory(jax_reference):
    ref, _ = jax_reference
    model = _torch_model()
    opt = TorchOptimizer.pretrained(model.parameters(), "metz2019-small")
    batches = list(_batches())
    _torch_steps(model, opt, batches[:50])
    saved = opt.state_dict()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    model2 = _torch_model()
    model2.load_state_dict(weights)
    opt2 = TorchOptimizer.pretrained(model2.parameters(), "metz2019-small")
    opt2.load_state_dict(saved)
    got, _ = _torch_steps(model2, opt2, batches[50:])
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(got[-1], ref[-1]))
    assert worst < 1e-5, worst  # same tolerance as the uninterrupted run
    other = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))  # 4 tensors too
    fresh = TorchOptimizer.pretrained(other.parameters(), "metz2019-small")
    fresh.step()  # no grads yet: a zero gradient, parameters unchanged
    with pytest.raises(ValueError, match="does not match"):
        fresh.load_state_dict(saved)


def test_parameters_without_gradient_stay_put():
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = TorchOptimizer.pretrained([used, unused], "metz2019-small")
    (used ** 2).sum().backward()
    opt.step()
    assert torch.equal(unused.detach(), torch.ones(2)) and unused.grad is None
    assert float(used.detach().max()) < 1.0  # moved against the gradient 2 * used
