"""The README's code runs as written and reaches the answers it states."""

import jax.numpy as jnp
import optax

from doc_blocks import ROOT, blocks, run_page

README = ROOT / "README.md"


def test_readme_blocks_run_and_the_example_learns_the_decay(tmp_path, monkeypatch):
    assert "class Decay" in blocks(README)[0].code
    namespace = run_page(README, tmp_path, monkeypatch)
    # Fixed point s* = 1 / (1 - theta) = 2 at theta = 0.5; the seeded run ends at 0.498.
    # Tolerance 0.02: the window losses are noisy (sigma 0.1 per step) and theta keeps
    # moving by Adam steps of ~1e-2 around the optimum.
    assert abs(float(namespace["result"].theta) - 0.5) < 0.02
    # The pretrained snippet gives an optax transformation that updates finitely.
    opt = namespace["opt"]
    assert isinstance(opt, optax.GradientTransformation)
    params = {"w": jnp.ones((3, 2))}
    updates, _ = opt.update({"w": jnp.full((3, 2), 0.5)}, opt.init(params), params)
    assert updates["w"].shape == (3, 2) and bool(jnp.all(jnp.isfinite(updates["w"])))
