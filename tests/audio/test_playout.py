"""Playout: jitter buffer decisions decoded by real libopus, pulled in device-sized blocks."""

from __future__ import annotations

import numpy as np

from echomesh_trio.audio.codec import OpusEncoder
from echomesh_trio.audio.jitter import Decision, Play, Recover
from echomesh_trio.audio.playout import SpeakerPlayout
from echomesh_trio.audio.redundancy import RedundancyPacker
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE

BLOCK = 240


def tone(frames: int) -> list[np.ndarray]:
    t = np.arange(frames * FRAME_SAMPLES) / SAMPLE_RATE
    x = (5000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    return [x[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(frames)]


def test_lost_packet_is_rebuilt_from_the_next_packets_copy() -> None:
    enc, packer = OpusEncoder(), RedundancyPacker(1)
    decisions: list[Decision] = []
    playout = SpeakerPlayout(on_decision=lambda d, pcm, at: decisions.append(d))
    packets = [packer.wrap(enc.encode(f)) for f in tone(30)]
    out = []
    for b in range(30 * 4 + 40):
        now = b * BLOCK / SAMPLE_RATE
        k = b // 4
        # Packet 7 is lost; packet 8 overtakes 7 and arrives with packet 6.
        for j in {6: (6, 8), 7: (), 8: ()}.get(k, (k,)) if b % 4 == 0 and k < 30 else ():
            frame, copies = packets[j]
            playout.push(j, frame, now, redundant=copies)
        block = playout.pull(BLOCK, now)
        assert block.shape == (BLOCK,) and block.dtype == np.int16
        out.append(block)
    played = [d.seq for d in decisions if isinstance(d, Play)]
    assert played == [k for k in range(30) if k != 7]
    assert any(isinstance(d, Recover) and d.seq == 7 for d in decisions)
    assert playout.statistics().redundant_recovered == 1
    assert np.abs(np.concatenate(out)).max() > 1000


def test_idle_speaker_pulls_silence_of_any_size() -> None:
    playout = SpeakerPlayout()
    for n in (1, 240, 960, 1000):
        block = playout.pull(n, 0.0)
        assert block.shape == (n,) and not block.any()
    assert not playout.active
