"""``JointSystem``: several unrolled systems stepped in lockstep under one theta."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.system import State, Theta, UnrolledSystem
from vograd.train import check_theta


class JointSystem(UnrolledSystem):
    """Runs one episode of every member system at once; the loss is their weighted mean.

    With members ``S_1 .. S_m`` and weights ``w_i`` (normalised to sum to 1),
    a step from state ``(s_1, .., s_m)`` with key ``k`` steps member ``i`` with
    ``fold_in(k, i)`` and returns ``sum_i w_i loss_i``. The outer objective of
    a window is therefore ``L(theta) = sum_i w_i L_i(theta)``, and every
    estimator's gradient of it is the weighted mean of the members' gradients,
    each estimated from the same perturbations: this is how one learned
    optimizer is outer-trained on several task families at once. A sample
    costs the sum of the members' costs. A non-finite loss in any member makes
    the joint loss non-finite, so estimators drop the whole sample.

    Members must share the structure of ``theta`` (``init_theta`` is the first
    member's) and the ``horizon``: an episode of the joint system ends, and all
    members restart, together. Members may differ in everything else (their
    states have different pytrees and shapes).
    """

    systems: tuple[UnrolledSystem, ...]
    weights: tuple[float, ...] = eqx.field(static=True)
    horizon: int = eqx.field(static=True)

    def __init__(self, systems: Sequence[UnrolledSystem], weights: Sequence[float] | None = None):
        systems = tuple(systems)
        if not systems or not all(isinstance(s, UnrolledSystem) for s in systems):
            raise TypeError("JointSystem: systems must be a non-empty sequence of UnrolledSystem")
        weights = (1.0,) * len(systems) if weights is None else tuple(float(w) for w in weights)
        if len(weights) != len(systems) or min(weights) <= 0:
            raise ValueError(
                f"JointSystem: need one positive weight per system, got {weights} for "
                f"{len(systems)} systems"
            )
        horizons = {int(s.horizon) for s in systems}
        if len(horizons) != 1:
            raise ValueError(f"JointSystem: members must share one horizon, got {sorted(horizons)}")
        key = jax.random.key(0)
        expected = jax.eval_shape(systems[0].init_theta, key)
        for i, system in enumerate(systems[1:], start=1):
            try:
                check_theta(jax.eval_shape(system.init_theta, key), expected)
            except ValueError as e:
                raise ValueError(
                    f"JointSystem: member {i} ({type(system).__name__}) has outer parameters "
                    f"of another structure or shape than member 0 ({e})"
                ) from None
        total = sum(weights)
        self.systems = systems
        self.weights = tuple(w / total for w in weights)
        self.horizon = horizons.pop()

    def init_theta(self, key: PRNGKeyArray) -> Theta:
        """Returns the first member's initial outer parameters."""
        return self.systems[0].init_theta(key)

    def init(self, theta: Theta, key: PRNGKeyArray) -> tuple[State, ...]:
        """Returns a fresh episode of every member; member ``i`` uses ``fold_in(key, i)``."""
        return tuple(s.init(theta, jax.random.fold_in(key, i)) for i, s in enumerate(self.systems))

    def step(
        self, theta: Theta, state: tuple[State, ...], key: PRNGKeyArray
    ) -> tuple[tuple[State, ...], Float[Array, ""]]:
        """Returns every member's next state and ``sum_i w_i loss_i``."""
        states, loss = [], jnp.zeros(())
        for i, (system, s, w) in enumerate(zip(self.systems, state, self.weights)):
            s, member_loss = system.step(theta, s, jax.random.fold_in(key, i))
            states.append(s)
            loss = loss + w * member_loss
        return tuple(states), loss


__all__ = ["JointSystem"]
