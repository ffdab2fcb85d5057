"""Metz et al. (2020), Figure 4: learned optimizers regularize implicitly toward small norms.

On ``f(x, y) = 2 (x - y)^2`` every point of the diagonal ``x = y`` is a
minimum. Gradient-based methods whose update is symmetric in the two
coordinates (Adam: ``g_x = -g_y``) move perpendicular to the diagonal and stop
at the nearest solution, the projection ``p(z) = ((x + y) / 2) (1, 1)`` of the
start ``z``. The paper's learned optimizer instead drifts along the diagonal
toward the origin, "as if there were an added regularization penalty on the
magnitude of each parameter".

Here: the trained learned optimizers shipped with vograd (`vograd.tasks.pretrained`:
the default ``adaptive`` and the two Metz 2019 ones) and Adam run ``STEPS``
steps from random starts; the statistic of a run is the shrinkage
``r = ||z_T|| / ||p(z_0)||`` (1: the nearest solution, as Adam; < 1: a
smaller-norm solution). Starts are ``p (1, 1) + (d / 2) (1, -1)`` with
``|p|`` uniform in ``[0.5, 2]`` (random sign) and ``d`` uniform in ``[-2, 2]``,
so ``||p(z_0)|| >= 0.7`` and the ratio is well conditioned. Per seed the
ratio is averaged over its starts (in log space); intervals are over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.recipes.reproductions import common
from vograd.recipes.reproductions.base import Reproduction, Size

NAME = "metz2020-implicit-regularization"
LEARNED = ("adaptive", "metz2019-small", "metz2019-mixed")
ADAM_LR = 1e-2
# size -> (inner steps, starts per seed)
SIZES = {"tiny": (50, 2), "full": (1_000, 8)}
# Below this shrinkage (upper CI bound) an optimizer counts as regularizing; Adam must stay
# within +-5% of 1. 0.9 rather than 1: a 1% drift is not what Figure 4 shows.
SHRINK = 0.9


def loss(z: Float[Array, " 2"]) -> Float[Array, ""]:
    """Returns ``f(x, y) = 2 (x - y)^2`` of ``z = (x, y)``."""
    return 2.0 * (z[0] - z[1]) ** 2


def starts(key: PRNGKeyArray, num: int) -> Float[Array, "num 2"]:
    """Returns ``num`` starts ``p (1, 1) + (d / 2)(1, -1)`` (see the module docstring)."""
    u = jax.random.uniform(key, (3, num))
    p = jnp.where(u[0] < 0.5, -1.0, 1.0) * (0.5 + 1.5 * u[1])
    d = 4.0 * u[2] - 2.0
    return jnp.stack([p + d / 2, p - d / 2], axis=-1)


@eqx.filter_jit
def trajectories(optimizer: optax.GradientTransformation, z0: Float[Array, "n 2"],
                 num_steps: int) -> Float[Array, "n steps_plus_1 2"]:
    """Returns the iterates ``z_0 .. z_T`` of ``optimizer`` on `loss` from every start:
    one ``lax.scan`` over steps, vmapped over starts."""
    def one(z):
        def step(carry, _):
            z, state = carry
            updates, state = optimizer.update(jax.grad(loss)(z), state, z)
            z = optax.apply_updates(z, updates)
            return (z, state), z

        _, zs = jax.lax.scan(step, (z, optimizer.init(z)), None, length=num_steps)
        return jnp.concatenate([z[None], zs])

    return jax.vmap(one)(z0)


def shrinkage(path: Float[np.ndarray, "n t 2"]) -> np.ndarray:
    """Returns ``||z_T|| / ||p(z_0)||`` per run ``[n]``, ``p`` the projection on the diagonal."""
    proj = np.abs(path[:, 0].sum(-1)) / math.sqrt(2.0)
    return np.linalg.norm(path[:, -1], axis=-1) / proj


def optimizers() -> dict[str, optax.GradientTransformation]:
    """Returns Adam and every shipped learned optimizer that loads (a missing one is skipped)."""
    from vograd.tasks import pretrained

    out = {"adam": optax.adam(ADAM_LR)}
    for name in LEARNED:
        if name in pretrained.shipped_names():
            out[name] = pretrained.load(name)
    return out


def run(out_dir: Path, size: Size, seeds: int, progress: bool) -> dict:
    """Returns the results dict after writing results.json, report.md and the plot."""
    del progress  # seconds of work: nothing to show
    out_dir = Path(out_dir)
    num_steps, num_starts = SIZES[size]
    z0 = jnp.stack([starts(jax.random.key(3_000_017 + s), num_starts) for s in range(seeds)])
    paths, stats = {}, {}
    for name, opt in optimizers().items():
        arrays = common.stage(out_dir / f"paths_{name}_seeds{seeds}.npz", lambda o=opt: {
            "paths": trajectories(o, z0.reshape(-1, 2), num_steps).reshape(
                seeds, num_starts, num_steps + 1, 2)})
        paths[name] = arrays["paths"]
        ratio = np.stack([shrinkage(p) for p in paths[name]])  # [seeds, starts]
        gap = np.abs(paths[name][..., -1, 0] - paths[name][..., -1, 1]) / math.sqrt(2.0)
        stats[name] = {
            "shrinkage": common.mean_ci(np.exp(np.mean(np.log(ratio), axis=1))),
            "final_norm": common.mean_ci(np.mean(np.linalg.norm(paths[name][..., -1, :], axis=-1),
                                                 axis=1)),
            "nearest_solution_norm": common.mean_ci(np.mean(
                np.abs(paths[name][..., 0, :].sum(-1)) / math.sqrt(2.0), axis=1)),
            "distance_to_diagonal": common.mean_ci(np.mean(gap, axis=1)),
            "per_start_shrinkage": ratio.tolist(),
        }
        s = stats[name]["shrinkage"]
        stats[name]["regularizes"] = bool(s["high"] < SHRINK)
    adam_like_paper = abs(stats["adam"]["shrinkage"]["mean"] - 1.0) < 0.05
    learned = [n for n in stats if n != "adam"]
    regularizing = [n for n in learned if stats[n]["regularizes"]]
    verdict = ("reproduced" if adam_like_paper and len(regularizing) == len(learned)
               else "partly" if adam_like_paper and regularizing else "not reproduced")
    results = {
        "name": NAME, "size": size, "seeds": seeds, "verdict": verdict,
        "inner_steps": num_steps, "starts_per_seed": num_starts, "adam_lr": ADAM_LR,
        "adam_goes_to_nearest_solution": bool(adam_like_paper),
        "regularizing": regularizing, "optimizers": stats,
    }
    common.write_json(out_dir / "results.json", results)
    (out_dir / "report.md").write_text(_report(results))
    _plot(paths, out_dir / "trajectories.png")
    return results


def _report(results: dict) -> str:
    rows = ["| optimizer | shrinkage ‖z_T‖ / ‖p(z_0)‖ [95% CI] | final norm [95% CI] | "
            "nearest-solution norm | distance to diagonal at T | regularizes |",
            "|---|---|---|---|---|---|"]
    for n, s in results["optimizers"].items():
        rows.append(f"| {n} | {common.fmt_ci(s['shrinkage'])} | {common.fmt_ci(s['final_norm'])} "
                    f"| {s['nearest_solution_norm']['mean']:.3g} | "
                    f"{s['distance_to_diagonal']['mean']:.2g} | "
                    f"{'yes' if s['regularizes'] else 'no'} |")
    return (
        f"# {NAME}\n\n**Claim** ({REPRODUCTION.paper}, {REPRODUCTION.figure}): "
        f"{REPRODUCTION.claim}\n\n**Command:** `vograd reproduce {NAME} --size "
        f"{results['size']} --seeds {results['seeds']}`\n\n**Scale:** {REPRODUCTION.scale}\n\n"
        f"{results['inner_steps']} steps from {results['starts_per_seed']} starts per seed; "
        f"Adam's learning rate {results['adam_lr']}. An optimizer regularizes when the upper "
        f"end of its shrinkage interval is below {SHRINK}.\n\n" + "\n".join(rows) +
        f"\n\n![trajectories](trajectories.png)\n\n**Verdict: {results['verdict']}**\n")


def _plot(paths: dict[str, np.ndarray], path: Path) -> Path | None:
    from vograd import plotting

    fig = plotting.new_figure(figsize=(3.6 * len(paths), 3.6), layout="constrained")
    if fig is None:
        return None
    axes = np.atleast_1d(fig.subplots(1, len(paths), squeeze=False)).ravel()
    for ax, (name, p) in zip(axes, paths.items()):
        c = plotting.color("learned" if name != "adam" else name)
        ax.plot([-3, 3], [-3, 3], color="0.6", lw=1, ls="--")  # the solutions
        for run in p[0]:  # the first seed's starts
            ax.plot(run[:, 0], run[:, 1], color=c, lw=1.2)
            ax.plot(*run[0], "o", color="0.3", ms=3)
            ax.plot(*run[-1], "x", color=c, ms=5)
        ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", title=name, xlabel="x", ylabel="y")
    fig.savefig(path, dpi=90)
    return Path(path)


REPRODUCTION = Reproduction(
    name=NAME,
    paper="Metz et al. 2020, Tasks, stability, architecture, and compute: training more "
          "effective learned optimizers",
    figure="Figure 4",
    claim="on f(x, y) = 2 (x - y)^2 Adam's trajectories go to the nearest point of the diagonal "
          "while the learned optimizer's also decay toward the origin, as if there were an "
          "added penalty on the parameters' magnitude (implicit regularization)",
    scale="the paper's problem and plot; the learned optimizers are vograd's shipped ones "
          "(outer-trained here on small MLP tasks, far less compute than Metz et al. 2020's "
          "hierarchical optimizer), not the paper's; 1,000 steps from 8 random starts per "
          "seed, 3 seeds",
    run=run,
)
