"""Opus wrapper against the real libopus."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echomesh_trio.audio import codec
from echomesh_trio.audio.codec import (
    OpusDecoder,
    OpusEncoder,
    OpusUnavailableError,
    expected_loss_percent,
    is_dtx,
)
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE


def speechlike(frames: int) -> np.ndarray:
    t = np.arange(frames * FRAME_SAMPLES) / SAMPLE_RATE
    x = 6000 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    x += 2000 * np.sin(2 * np.pi * 1100 * t)
    return x.astype(np.int16)


def frames_of(x: np.ndarray) -> list[np.ndarray]:
    return [x[i : i + FRAME_SAMPLES] for i in range(0, len(x), FRAME_SAMPLES)]


def test_round_trip_keeps_the_signal() -> None:
    enc, dec = OpusEncoder(), OpusDecoder()
    x = speechlike(50)
    out = np.concatenate([dec.decode(enc.encode(f)) for f in frames_of(x)])
    la = enc.lookahead
    assert la == 312
    a, b = x[4800:-la].astype(float), out[4800 + la :].astype(float)
    corr = np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b))
    assert corr > 0.7  # a speech codec keeps the waveform roughly, not exactly
    assert 0.5 < np.std(b) / np.std(a) < 2.0
    assert dec.statistics().decoded == 50


def test_silence_becomes_dtx() -> None:
    enc = OpusEncoder()
    sizes = [len(enc.encode(np.zeros(FRAME_SAMPLES, np.int16))) for _ in range(30)]
    assert is_dtx(bytes(sizes[-1]))
    assert enc.statistics().dtx_frames > 10


def test_fec_recovery_and_concealment_give_full_frames() -> None:
    enc, dec = OpusEncoder(), OpusDecoder()
    enc.set_reported_loss(0.1)
    assert enc.statistics().expected_loss_percent > 0
    packets = [enc.encode(f) for f in frames_of(speechlike(10))]
    for p in packets[:5]:
        dec.decode(p)
    recovered = dec.recover(packets[6])  # packet 5 lost
    assert recovered.shape == (FRAME_SAMPLES,) and np.abs(recovered).max() > 0
    assert dec.conceal().shape == (FRAME_SAMPLES,)
    assert dec.conceal(240).shape == (240,)  # a sub-frame stretch
    s = dec.statistics()
    assert (s.fec_recovered, s.concealed) == (1, 2)


def test_expected_loss_follows_reports() -> None:
    assert expected_loss_percent(0.0) == 0  # FEC costs quality on a clean link
    assert expected_loss_percent(0.001) == 0
    assert 5 <= expected_loss_percent(0.05) <= 10
    assert expected_loss_percent(0.9) == codec.MAX_EXPECTED_LOSS
    assert expected_loss_percent(float("nan")) == 0


def test_wrong_frame_shape_is_our_bug() -> None:
    with pytest.raises(ValueError):
        OpusEncoder().encode(np.zeros(100, np.int16))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=1500))
def test_any_packet_decodes_or_conceals(packet: bytes) -> None:
    dec = OpusDecoder()
    assert dec.decode(packet).shape == (FRAME_SAMPLES,)
    assert dec.recover(packet).shape == (FRAME_SAMPLES,)


def test_missing_libopus_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_opuslib", None)
    monkeypatch.setitem(sys.modules, "opuslib", None)  # import now fails, as without libopus
    with pytest.raises(OpusUnavailableError, match="libopus0"):
        OpusEncoder()


def test_saved_state_makes_decoding_repeatable() -> None:
    t = np.arange(FRAME_SAMPLES * 12) / SAMPLE_RATE
    x = (6000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    enc, dec = OpusEncoder(), OpusDecoder()
    packets = [enc.encode(x[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]) for k in range(12)]
    for p in packets[:6]:
        dec.decode(p)
    state = dec.save_state()
    first = [dec.decode(p).copy() for p in packets[6:]]
    dec.restore_state(state)
    dec.conceal(240)  # a wait's filler in between changes nothing once restored
    dec.conceal(480)
    dec.restore_state(state)
    assert all(np.array_equal(a, dec.decode(p)) for a, p in zip(first, packets[6:], strict=True))
    with pytest.raises(ValueError):
        dec.restore_state(state[:-1])
