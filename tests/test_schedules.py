"""Truncation schedules and window buckets (vograd/schedules.py)."""

import jax
import numpy as np
import pytest

import vograd
from vograd.schedules import clip_to_episode


def test_constant_window_and_clip():
    s = vograd.Constant(100)
    assert [s.window(k) for k in (0, 7, 10**6)] == [100, 100, 100]
    assert s.window(3, None, steps_left=40) == 40
    assert s.window(3, None, steps_left=400) == 100
    assert s.max_window == 100


def test_linear_curriculum_without_jitter_is_the_metz_line():
    s = vograd.LinearCurriculum(start=50, end=10_000, num_steps=5_000, jitter=0.0)
    # base(step) = 50 + 9950 * step / 5000, flat after num_steps.
    assert s.window(0) == 50
    assert s.window(2_500) == 5_025
    assert s.window(5_000) == 10_000
    assert s.window(99_999) == 10_000
    assert s.window(1) == round(50 + 9950 / 5000)  # 51.99 -> 52
    assert s.window(2_500, steps_left=1_234) == 1_234


def test_linear_curriculum_jitter_range_and_uniformity():
    s = vograd.LinearCurriculum(start=1_000, end=1_000, num_steps=10, jitter=0.2)
    keys = jax.random.split(jax.random.key(0), 500)
    w = np.array([s.window(5, k) for k in keys])
    # u ~ U(0.8, 1.2) times 1000, rounded: every value in [800, 1200].
    assert w.min() >= 800 and w.max() <= 1_200
    # 500 uniform draws reach within 12 of both ends (miss prob (1-12/400)^500 ~ 2e-7).
    assert w.min() <= 812 and w.max() >= 1_188
    # Mean 1000, sd 400/sqrt(12)=115.5 per draw: within 4 standard errors (4*5.2).
    assert abs(w.mean() - 1_000) < 4 * 115.5 / np.sqrt(500)
    # Reproducible: the jitter comes only from the key.
    assert s.window(5, keys[3]) == w[3]
    assert s.max_window == 1_200


def test_linear_curriculum_clips_to_steps_left_after_jitter():
    s = vograd.LinearCurriculum()  # Metz 2019 defaults
    assert (s.start, s.end, s.num_steps, s.jitter) == (50, 10_000, 5_000, 0.2)
    keys = jax.random.split(jax.random.key(1), 200)
    w = [s.window(4_000, k, steps_left=300) for k in keys]
    # base(4000) = 8010 >> 300: every jittered draw is clipped to exactly 300.
    assert set(w) == {300}


@pytest.mark.parametrize(
    "window, chunk, expected",
    [(1, None, 1), (2, None, 2), (3, None, 4), (50, None, 64), (64, None, 64),
     (65, None, 128), (10_000, None, 16_384), (12_000, None, 16_384),
     (50, 16, 64), (10, 16, 16), (17, 16, 32), (100, 10, 160), (10_000, 100, 12_800)],
)
def test_bucket_rounds_up_to_chunk_times_power_of_two(window, chunk, expected):
    b = vograd.bucket(window, chunk=chunk)
    assert b == expected
    assert b >= window and b % (chunk or 1) == 0


def test_bucket_is_capped_at_the_horizon_when_the_window_fits():
    assert vograd.bucket(9_000, maximum=10_000) == 10_000  # not 16384
    assert vograd.bucket(3_000, maximum=10_000) == 4_096  # cap not needed
    # With a chunk the cap is the largest multiple of the chunk <= maximum.
    assert vograd.bucket(900, chunk=64, maximum=1_000) == 960
    # A window longer than the cap keeps its bucket (the estimator then refuses it).
    assert vograd.bucket(999, chunk=64, maximum=1_000) == 1_024


def test_bucket_minimum_merges_short_windows_into_one_size():
    assert [vograd.bucket(w, minimum=32) for w in (1, 5, 17, 32)] == [32, 32, 32, 32]
    assert vograd.bucket(33, minimum=32) == 64  # longer windows still grow
    assert vograd.bucket(3, chunk=8, minimum=20) == 32  # a multiple of the chunk
    assert vograd.bucket(5, minimum=300, maximum=200) == 200  # the cap still applies
    with pytest.raises(ValueError, match="minimum"):
        vograd.bucket(5, minimum=0)


def test_curriculum_compiles_only_a_few_buckets():
    s = vograd.LinearCurriculum()  # 50 -> 10,000 over 5,000 steps, jitter 0.2
    keys = jax.random.split(jax.random.key(2), 5_000)
    sizes = {vograd.bucket(s.window(i, keys[i])) for i in range(0, 5_000, 20)}
    # Windows 40..12,000 lie in the powers of two 64..16384 (9 sizes; 32 only
    # for draws below 33, impossible here since 50 * 0.8 = 40).
    assert sizes <= {64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}
    assert len(sizes) == 9


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: vograd.Constant(0), "window must be an int >= 1"),
        (lambda: vograd.Constant(2.5), "window must be an int >= 1"),
        (lambda: vograd.LinearCurriculum(start=0), "start must be an int >= 1"),
        (lambda: vograd.LinearCurriculum(num_steps=0), "num_steps must be an int >= 1"),
        (lambda: vograd.LinearCurriculum(jitter=1.0), r"jitter must be in \[0, 1\)"),
        (lambda: vograd.LinearCurriculum(jitter=-0.1), r"jitter must be in \[0, 1\)"),
        (lambda: vograd.LinearCurriculum().window(-1, jax.random.key(0)), "step must be"),
        (lambda: vograd.LinearCurriculum().window(3), "needs a PRNG key"),
        (lambda: vograd.bucket(0), "window must be an int >= 1"),
        (lambda: vograd.bucket(10, chunk=0), "chunk must be an int >= 1"),
        (lambda: clip_to_episode(10, 0), "steps_left must be >= 1"),
    ],
)
def test_invalid_schedule_arguments_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
