"""Several speakers through real Opus, mixed; bounded number of speakers."""

from __future__ import annotations

import numpy as np

from echomesh_trio.audio.codec import OpusEncoder
from echomesh_trio.audio.jitter import PushResult
from echomesh_trio.audio.receiver import VoiceReceiver
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE

BLOCK = 240


def tone_frames(hz: float, frames: int) -> list[np.ndarray]:
    t = np.arange(frames * FRAME_SAMPLES) / SAMPLE_RATE
    x = (4000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    return [x[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(frames)]


def amplitude(x: np.ndarray, hz: float) -> float:
    """Amplitude of the ``hz`` component (Hann-windowed, so block edges do not leak)."""
    t = np.arange(len(x)) / SAMPLE_RATE
    w = np.hanning(len(x))
    return float(abs(np.sum(x * w * np.exp(-2j * np.pi * hz * t))) * 2 / np.sum(w))


def test_two_speakers_are_mixed_and_a_muted_one_is_not_heard() -> None:
    rx = VoiceReceiver()
    encoders = {"a": OpusEncoder(), "b": OpusEncoder()}
    frames = {"a": tone_frames(300, 25), "b": tone_frames(700, 25)}
    loud, muted = [], []
    for b in range(25 * 4 + 20):
        now = b * BLOCK / SAMPLE_RATE
        if b % 4 == 0 and b // 4 < 25:
            for who, enc in encoders.items():
                rx.push(who, b // 4, enc.encode(frames[who][b // 4]), now)
        if b == 60:
            assert rx.talking() == {"a", "b"}
            rx.mixer.set_gain("b", 0.0)
        (loud if b < 60 else muted).append(rx.pull(BLOCK, now))
    before, after = np.concatenate(loud[20:60]), np.concatenate(muted[4:36])
    assert amplitude(before, 300) > 1000 and amplitude(before, 700) > 1000
    assert amplitude(after, 300) > 1000
    assert amplitude(after, 700) < amplitude(before, 700) / 30
    s = rx.statistics()
    assert set(s.speakers) == {"a", "b"} and s.speakers["a"].jitter.played == 25


def test_speakers_are_bounded_and_forgotten_when_silent() -> None:
    rx = VoiceReceiver(max_speakers=3, forget_after_s=1.0)
    enc = OpusEncoder()
    pkt = enc.encode(tone_frames(300, 1)[0])
    for who in range(5):
        result = rx.push(who, 0, pkt, 0.0)
        assert result is (PushResult.BUFFERED if who < 3 else PushResult.DROPPED)
    assert rx.statistics().refused == 2
    now = 0.0
    while now < 2.0:
        rx.pull(BLOCK, now)
        now += BLOCK / SAMPLE_RATE
    s = rx.statistics()
    assert s.forgotten == 3 and not s.speakers
    assert rx.push(9, 0, pkt, now) is PushResult.BUFFERED
