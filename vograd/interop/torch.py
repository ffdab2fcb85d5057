"""A trained learned optimizer (any optax transformation) as a ``torch.optim.Optimizer``.

    import torch
    from vograd.interop.torch import TorchOptimizer

    model = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = TorchOptimizer.pretrained(model.parameters(), "metz2019-small")
    for x, y in batches:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

Each ``step`` hands the parameters and their ``.grad`` (one list, in
``param_groups`` order) to the transformation's jitted ``update`` in JAX and
adds the returned updates to the parameters in place: the optimizer's
arithmetic is exactly vograd's (same compiled function), so a PyTorch run and
a JAX run from the same weights and gradients follow the same trajectory up
to float32 rounding. The tensors cross between the frameworks through numpy
(two host copies per step); CUDA tensors are copied to the host and back.

Learned optimizers see all parameters at once (their features can span
tensors), so per-group options (``lr`` and the like) do not exist here. A
parameter whose ``.grad`` is None is passed a zero gradient and left
unchanged. Needs the ``torch`` extra (``pip install "vograd[torch]"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch


def _to_jax(t: torch.Tensor) -> jax.Array:
    return jnp.asarray(t.detach().cpu().numpy())


class TorchOptimizer(torch.optim.Optimizer):
    """``torch.optim.Optimizer`` running an ``optax.GradientTransformation`` (a vograd
    learned optimizer's ``as_optax(theta)``) over ``params``.

    ``state_dict()`` carries the transformation's state (``"vograd_state"``:
    its leaves as tensors), so a checkpoint resumes the same trajectory.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict],
                 transformation: optax.GradientTransformation):
        super().__init__(params, defaults={})
        self.transformation = transformation
        self._init = jax.jit(transformation.init)
        self._update = jax.jit(transformation.update)
        self._opt_state: Any = None

    @classmethod
    def pretrained(cls, params, name: str) -> TorchOptimizer:
        """Returns the shipped (or exported) learned optimizer ``name`` over ``params``."""
        import vograd.tasks.pretrained

        return cls(params, vograd.tasks.pretrained.load(name))

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        """Applies one update; returns ``closure()``'s loss if a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        if not params:
            return loss
        for p in params:
            if not p.dtype.is_floating_point:
                raise TypeError(f"TorchOptimizer needs floating-point parameters, got {p.dtype}")
        jparams = [_to_jax(p) for p in params]
        jgrads = [jnp.zeros_like(q) if p.grad is None else _to_jax(p.grad)
                  for p, q in zip(params, jparams)]
        if self._opt_state is None:
            self._opt_state = self._init(jparams)
        updates, self._opt_state = self._update(jgrads, self._opt_state, jparams)
        for p, u in zip(params, updates):
            if p.grad is not None:
                p.add_(torch.from_numpy(np.array(u)).to(device=p.device, dtype=p.dtype))
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Returns torch's state dict plus the transformation's state leaves."""
        sd = super().state_dict()
        sd["vograd_state"] = (None if self._opt_state is None else
                              [torch.from_numpy(np.array(x)) for x in jax.tree.leaves(self._opt_state)])
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a `state_dict`; the transformation's state gets its structure from
        ``init`` on the current parameters (a mismatch is a ValueError)."""
        state_dict = dict(state_dict)
        leaves = state_dict.pop("vograd_state", None)
        super().load_state_dict(state_dict)
        if leaves is None:
            self._opt_state = None
            return
        template = jax.eval_shape(self.transformation.init, [_to_jax(p) for p in self._params()])
        want = jax.tree.leaves(template)
        if len(leaves) != len(want) or any(tuple(a.shape) != b.shape for a, b in zip(leaves, want)):
            raise ValueError("vograd_state does not match this optimizer's state for these "
                             "parameters (another optimizer, or other parameter shapes)")
        self._opt_state = jax.tree.unflatten(
            jax.tree.structure(template),
            [jnp.asarray(a.numpy(), dtype=b.dtype) for a, b in zip(leaves, want)])


__all__ = ["TorchOptimizer"]
