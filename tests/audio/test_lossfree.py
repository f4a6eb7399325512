"""Regression: a loss-free, jitter-free stream through the jitter buffer is never concealed.

On such a path the playout must be exactly the sender's frames decoded in order: nothing
concealed, recovered, stretched or dropped, and each frame bit-identical to a plain decode
of the packets (the naive receiver's output), whatever the constant transit delay, the
device block size, the phase of arrivals against the device clock or the sequence numbers.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from echomesh_trio.audio.codec import OpusDecoder
from echomesh_trio.audio.jitter import Conceal, Decision, Play, Recover, Silence
from echomesh_trio.audio.playout import SpeakerPlayout
from echomesh_trio.audio.sender import SEQ_MOD, GateMode, VoicePacket, VoiceSender
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE

F = FRAME_SAMPLES / SAMPLE_RATE


def talk(seconds: float) -> np.ndarray:
    """Vowel-like syllables for 1.2 s, then 0.6 s of silence (so the encoder reaches DTX
    and the stream has pauses), repeated."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voiced = sum(np.sin(2 * np.pi * 140 * h * t + h) / h for h in range(1, 10))
    envelope = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) * ((t % 1.8) < 1.2)
    return (4000 * voiced * envelope).astype(np.int16)


@cache
def packets() -> tuple[list[tuple[int, VoicePacket]], dict[int, np.ndarray]]:
    """(frame index, packet) of every packet sent, and each one's plain in-order decode."""
    sender = VoiceSender(mode=GateMode.CONTINUOUS)
    signal = talk(4.0)
    sent = []
    for k in range(len(signal) // FRAME_SAMPLES):
        p = sender.process(signal[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES])
        if p is not None:
            sent.append((k, p))
    # The speaker stops (mute): the end-of-spurt packet tells the receiver so. (Without it
    # the stream would end on one of libopus's 400 ms DTX refresh frames, which any receiver
    # must take for a stall, wait out and conceal.)
    sender.gate.muted = True
    end = sender.process(np.zeros(FRAME_SAMPLES, np.int16))
    if end is not None:
        sent.append((len(signal) // FRAME_SAMPLES, end))
    decoder = OpusDecoder()
    plain = {k: decoder.decode(p.frame).copy() for k, p in sent}
    return sent, plain


def test_the_stream_has_pauses() -> None:
    sent, _ = packets()
    assert 80 < len(sent) < 190  # of 200 frames: DTX left some out
    assert sum(p.dtx for _, p in sent) >= 3


@settings(max_examples=20, deadline=None)
@given(
    transit=st.floats(0.0, 0.3),
    block=st.sampled_from([120, 240, 480, 960]),
    phase=st.floats(0.0, 0.02),
    first=st.integers(0, SEQ_MOD - 1),
)
def test_loss_free_jitter_free_stream_is_never_concealed(
    transit: float, block: int, phase: float, first: int
) -> None:
    sent, plain = packets()
    seq0 = sent[0][1].sequence
    played: dict[int, np.ndarray] = {}
    decisions: list[Decision] = []

    def hook(d: Decision, pcm: np.ndarray, at: float) -> None:
        decisions.append(d)
        if isinstance(d, Play):
            played[(d.seq - first) % SEQ_MOD] = pcm.copy()

    playout = SpeakerPlayout(on_decision=hook)
    i = 0
    step = block / SAMPLE_RATE
    last_frame = sent[-1][0]
    for b in range(int(((last_frame + 1) * F + transit + 1.0) / step)):
        now = phase + b * step
        while i < len(sent) and (sent[i][0] + 1) * F + transit <= now:
            k, p = sent[i]
            seq = (p.sequence - seq0 + first) % SEQ_MOD
            playout.push(seq, p.frame, now, redundant=p.redundant, end_of_spurt=p.end_of_spurt)
            i += 1
        playout.pull(block, now)
    s = playout.statistics().jitter
    assert (s.concealed, s.recovered, s.stretched, s.late, s.dropped) == (0, 0, 0, 0, 0)
    assert not any(isinstance(d, Conceal | Recover) for d in decisions)
    assert isinstance(decisions[-1], Silence)
    assert sorted(played) == [k for k, _ in sent]
    for k, pcm in played.items():
        assert np.array_equal(pcm, plain[k]), k
