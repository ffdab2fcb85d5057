"""The canonical-kernel-gradient convolution: same numbers as lax, canonical HLO in loops."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vograd.tasks.problems.conv_canonical import conv2d_same
from vograd.tasks.problems.conv_unrolled import conv2d_unrolled

_DN = ("NHWC", "HWIO", "NHWC")


def _lax(x, w, stride):
    return lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=_DN)


def _meta_loss(conv, w, x, stride):
    """Loss after two SGD steps on the kernel: needs second-order derivatives."""

    def loss(w):
        return jnp.sum(jnp.tanh(conv(x, w, stride)) ** 2)

    for _ in range(2):
        w = w - 1e-2 * jax.grad(loss)(w)
    return loss(w)


@pytest.mark.parametrize(
    "size,kernel,stride,cin,cout",
    [(7, 3, 2, 2, 4), (8, 3, 2, 3, 5), (12, 3, 1, 2, 3), (9, 5, 3, 2, 2), (5, 1, 2, 2, 2),
     (6, 2, 4, 1, 2)],
)
def test_values_and_gradients_of_every_order_match_lax(size, kernel, stride, cin, cout):
    rng = np.random.default_rng(size * 100 + kernel * 10 + stride)
    x = jnp.asarray(rng.normal(size=(3, size, size, cin)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, cin, cout)), jnp.float32)

    @jax.jit
    def both(x, w):
        out = []
        for conv in (_lax, conv2d_same):
            value, grads = jax.value_and_grad(
                lambda x, w, conv=conv: jnp.sum(jnp.tanh(conv(x, w, stride)) ** 2), (0, 1)
            )(x, w)
            meta = jax.grad(lambda w, conv=conv: _meta_loss(conv, w, x, stride))(w)
            out.append((value, grads, meta))
        return out

    (v_ref, g_ref, m_ref), (v, g, m) = both(x, w)
    # The same products summed in a possibly different order: float32 rounding only.
    np.testing.assert_allclose(v, v_ref, rtol=1e-5)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b))))
    np.testing.assert_allclose(m, m_ref, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(m_ref))))


def _rolled_training(conv):
    """Returns a function running 3 SGD steps on a kernel in a rolled scan."""
    x = jnp.ones((4, 8, 8, 3))

    def train(w):
        def body(w, _):
            g = jax.grad(lambda w: jnp.sum(jnp.tanh(conv(x, w, 2))))(w)
            return w - 1e-3 * g, None

        return lax.scan(body, w, None, length=3)[0]

    return train


def _conv_labels(fn) -> set[str]:
    hlo = jax.jit(fn).lower(jnp.ones((3, 3, 3, 5))).compile().as_text()
    return set(re.findall(r"convolution\(.*?dim_labels=(\S+?),", hlo))


@pytest.mark.parametrize("conv", [conv2d_same, conv2d_unrolled], ids=["lax", "unrolled"])
def test_rolled_scan_has_only_canonical_convolutions(conv):
    # XLA:CPU runs b01f_01io->b01f convolutions with its fast kernel; inside a while
    # loop, plain lax's kernel gradient stays f01b_i01o->01bf (a naive loop nest).
    assert _conv_labels(_rolled_training(conv)) == {"b01f_01io->b01f"}


def test_plain_lax_leaves_a_non_canonical_convolution_in_the_loop():
    # The check above can fail: this is the case conv2d_same exists for.
    assert _conv_labels(_rolled_training(_lax)) - {"b01f_01io->b01f"}
