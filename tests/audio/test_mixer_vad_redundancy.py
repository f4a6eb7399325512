"""Mixer, voice activity detection and the sender's redundancy history."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from echomesh_trio.audio.mixer import Mixer, soft_limit
from echomesh_trio.audio.redundancy import RedundancyPacker, copies_for_loss
from echomesh_trio.audio.vad import VoiceActivityDetector, level_dbfs, meter
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE


def test_mixer_sums_with_gain_and_mutes() -> None:
    m = Mixer()
    a = np.full(960, 1000, np.int16)
    b = np.full(960, 500, np.int16)
    m.set_gain("b", 2.0)
    assert (m.mix([("a", a), ("b", b)], 960) == 2000).all()
    m.set_gain("a", 0.0)
    assert (m.mix([("a", a)], 960) == 0).all()
    m.set_gain("a", float("nan"))
    assert m.gain("a") == 0.0


@settings(max_examples=100, deadline=None)
@given(st.lists(arrays(np.int16, 64), min_size=1, max_size=8), st.floats(0, 10))
def test_loud_mixes_never_wrap(blocks: list[np.ndarray], gain: float) -> None:
    m = Mixer()
    for i in range(len(blocks)):
        m.set_gain(i, gain)
    out = m.mix(list(enumerate(blocks)), 64)
    exact = sum(b.astype(np.float64) * m.gain(i) for i, b in enumerate(blocks))
    assert out.dtype == np.int16 and out.shape == (64,)
    # same sign as the true sum (no wrap-around), never louder than it
    assert (np.sign(out) * np.sign(np.rint(exact)) >= 0).all()
    assert (np.abs(out.astype(np.float64)) <= np.abs(exact) + 1).all()


def test_soft_limiter_is_monotonic_and_transparent_below_the_knee() -> None:
    x = np.linspace(-200_000, 200_000, 4001, dtype=np.float32)
    y = soft_limit(x)
    assert (np.diff(y.astype(int)) >= 0).all()
    small = np.array([-1000.0, 0.0, 20000.0], dtype=np.float32)
    assert (soft_limit(small) == small.astype(np.int16)).all()


def tone(db: float) -> np.ndarray:
    t = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
    amp = 32768 * 10 ** (db / 20) * np.sqrt(2)
    return (amp * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def test_vad_detects_speech_and_holds_for_200_ms() -> None:
    vad = VoiceActivityDetector()
    quiet = np.zeros(FRAME_SAMPLES, np.int16)
    assert not any(vad.process(quiet).active for _ in range(20))
    assert vad.process(tone(-20)).active
    hold = [vad.process(quiet).active for _ in range(15)]
    assert hold[:10] == [True] * 10 and not any(hold[10:])
    assert level_dbfs(tone(-20)) == pytest.approx(-20, abs=0.5)
    assert meter(-96.0) == 0.0 and meter(0.0) == 1.0


def test_vad_ignores_steady_noise_once_it_has_learned_it() -> None:
    rng = np.random.default_rng(1)
    vad = VoiceActivityDetector()
    noise = [rng.normal(0, 300, FRAME_SAMPLES).astype(np.int16) for _ in range(400)]
    active = [vad.process(n).active for n in noise]
    assert not any(active[200:])


def test_redundancy_packer_keeps_previous_frames_and_dtx_holes() -> None:
    p = RedundancyPacker(2)
    assert p.wrap(b"a") == (b"a", ())
    p.skip()
    assert p.wrap(b"c") == (b"c", (b"", b"a"))
    assert p.wrap(b"d") == (b"d", (b"c", b""))
    assert p.wrap(b"e", copies=1) == (b"e", (b"d",))
    assert p.wrap(b"f", copies=0) == (b"f", ())
    assert RedundancyPacker(0).wrap(b"x") == (b"x", ())
    with pytest.raises(ValueError):
        RedundancyPacker(9)


def test_copies_follow_reported_loss() -> None:
    assert copies_for_loss(0.0) == 0 and copies_for_loss(float("nan")) == 0
    assert copies_for_loss(0.03) == 1
    assert copies_for_loss(0.15) == 3 and copies_for_loss(0.15, max_depth=2) == 2
    assert copies_for_loss(0.06, current=1) == 1  # hysteresis between one and three
    assert copies_for_loss(0.06, current=3) == 3
    assert copies_for_loss(0.04, current=3) == 1
