"""Writes estimators_base.npz: reference values of the estimators, computed at
commit ae6d8c3 (before the estimator base refactor) on x86-64 CPU, float32.

Kept as the record of how the file was made; tests/test_merge.py checks that the
current code reproduces every value bit for bit."""
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import vograd
from vograd.tasks.toys import LinearQuadratic
from vograd.estimators.reduce import merged_estimate

LQ = LinearQuadratic.random(jax.random.key(0), horizon=8, noise=0.2)
TH = jnp.array([0.3, -0.5, 0.2])
out = {}
ests = {
    "merged": vograd.Merged(num_pairs=6, sigma=0.5, window=4),
    "merged_total": vograd.Merged(num_pairs=6, sigma=0.5, window=4, weighting="total"),
    "merged_full": vograd.Merged(num_pairs=6, sigma=0.5),
    "es": vograd.EvolutionStrategies(num_pairs=6, sigma=0.5, window=4),
    "rp": vograd.Reparameterization(num_pairs=6, sigma=0.5, window=4, burn_in=2),
    "tbptt": vograd.TruncatedBackprop(num_particles=6, window=4),
    "pes": vograd.PersistentES(num_pairs=6, sigma=0.5, window=3),
    "full_es": vograd.FullES(num_pairs=6, sigma=0.5),
}
for name, est in ests.items():
    f = eqx.filter_jit(est.estimate)
    state = est.init(LQ, TH, jax.random.key(1))
    for k in range(3):
        g, state, d = f(LQ, TH, state, jax.random.key(10 + k))
        out[f"{name}/{k}/grad"] = np.asarray(g)
        out[f"{name}/{k}/loss"] = np.asarray(d.loss)
        for c, v in d.variance.items():
            out[f"{name}/{k}/variance/{c}"] = np.asarray(v)
        for c, v in d.weight.items():
            out[f"{name}/{k}/weight/{c}"] = np.asarray(v)
        if state is not None:
            for i, x in enumerate(jax.tree.leaves(state)):
                out[f"{name}/{k}/state/{i}"] = np.asarray(x) if not jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else np.asarray(jax.random.key_data(x))
# The reduction alone, from fixed per-sample inputs.
rng = np.random.default_rng(0)
rp = rng.normal(size=(7, 3)).astype(np.float32); es = (3 * rng.normal(size=(7, 3))).astype(np.float32)
keep = np.array([1, 1, 0, 1, 1, 1, 1], bool); loss = rng.normal(size=7).astype(np.float32)
out["reduce/rp"], out["reduce/es"], out["reduce/keep"], out["reduce/loss"] = rp, es, keep, loss
S = vograd.estimators.Samples({"rp": jnp.asarray(rp), "es": jnp.asarray(es)}, jnp.asarray(loss), jnp.asarray(keep))
for w in ("per_element", "total"):
    g, d = merged_estimate(S, w)
    out[f"reduce/{w}/grad"] = np.asarray(g)
    out[f"reduce/{w}/weight_rp"] = np.asarray(d.weight["rp"])
np.savez(Path(__file__).with_name("estimators_base.npz"), **out)

