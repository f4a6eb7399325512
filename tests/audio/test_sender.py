"""The sender pipeline with real libopus: gate modes, DTX, end of spurt, redundancy, FEC."""

from __future__ import annotations

import numpy as np
import pytest

from echomesh_trio.audio.jitter import JitterBuffer, Play, Silence
from echomesh_trio.audio.redundancy import MAX_DEPTH
from echomesh_trio.audio.sender import (
    SEQ_MOD,
    GateMode,
    TransmitGate,
    VoicePacket,
    VoiceSender,
)
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE
from echomesh_trio.voice.packet import MAX_REDUNDANT_FRAMES, Flags, encode_voice_payload

SILENCE = np.zeros(FRAME_SAMPLES, np.int16)


def speech(frames: int, seed: int = 0) -> list[np.ndarray]:
    """A loud, voice-like signal (harmonics of 150 Hz with a little noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames * FRAME_SAMPLES) / SAMPLE_RATE
    x = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 8))
    x = 6000 * x + rng.normal(0, 300, t.shape)
    pcm = np.clip(x, -32768, 32767).astype(np.int16)
    return [pcm[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(frames)]


def run(sender: VoiceSender, frames: list[np.ndarray]) -> list[VoicePacket | None]:
    return [sender.process(f) for f in frames]


def test_gate_modes_and_mute() -> None:
    gate = TransmitGate(GateMode.CONTINUOUS)
    assert gate.is_open(False) and gate.is_open(True)
    gate.mode = GateMode.PUSH_TO_TALK
    assert not gate.is_open(True)
    gate.talk_held = True
    assert gate.is_open(False)
    gate.mode = GateMode.VOICE_ACTIVATION
    assert gate.is_open(True) and not gate.is_open(False)
    gate.muted = True
    for mode in GateMode:
        gate.mode = mode
        assert not gate.is_open(True)


def test_continuous_sends_speech_and_one_dtx_frame_per_pause() -> None:
    sender = VoiceSender(mode=GateMode.CONTINUOUS)
    out = run(sender, speech(20) + [SILENCE] * 30 + speech(10))
    assert all(p is not None for p in out[:20]) and all(p is not None for p in out[-10:])
    # libopus encodes ~10 frames of real silence, then 1-2 byte DTX frames (with a refresh
    # every 400 ms): the first DTX frame of each run is sent, the rest are not.
    last_sent: VoicePacket | None = None
    for p in out:
        if p is None:
            assert last_sent is not None and last_sent.dtx
        else:
            assert not (p.dtx and last_sent is not None and last_sent.dtx)
            assert not p.end_of_spurt
            last_sent = p
    stats = sender.statistics()
    assert stats.frames == 60 and stats.frames == stats.sent + stats.dtx_skipped + stats.gated
    assert stats.dtx_skipped >= 15 and stats.gated == 0


def test_sequence_counts_every_frame_and_timestamp_follows_it() -> None:
    sender = VoiceSender(mode=GateMode.PUSH_TO_TALK, first_sequence=SEQ_MOD - 2)
    sender.gate.talk_held = True
    out = run(sender, speech(2))
    sender.gate.talk_held = False
    out += run(sender, speech(3))
    sender.gate.talk_held = True
    out += run(sender, speech(2))
    seqs = [None if p is None else p.sequence for p in out]
    assert seqs == [SEQ_MOD - 2, SEQ_MOD - 1, 0, None, None, 3, 4]
    for p in out:
        if p is not None:
            assert p.timestamp == p.sequence * FRAME_SAMPLES % SEQ_MOD
    assert sender.next_sequence == 5


def test_push_to_talk_release_sends_one_end_of_spurt_packet_of_silence() -> None:
    sender = VoiceSender(mode=GateMode.PUSH_TO_TALK)
    assert run(sender, speech(5)) == [None] * 5  # key not held: nothing leaves
    sender.gate.talk_held = True
    spurt = run(sender, speech(10, seed=1))
    assert all(p is not None and not p.end_of_spurt for p in spurt)
    sender.gate.talk_held = False
    after = run(sender, speech(5, seed=2))
    last = after[0]
    assert last is not None and last.end_of_spurt and last.flags & Flags.END_OF_SPURT
    assert after[1:] == [None] * 4
    # The marker encodes silence, not what the microphone picked up after release.
    assert len(last.frame) < min(len(p.frame) for p in spurt if p is not None)
    stats = sender.statistics()
    assert (stats.sent, stats.spurts_ended, stats.gated) == (11, 1, 9)


def test_mute_closes_the_gate_with_an_end_of_spurt_marker() -> None:
    sender = VoiceSender(mode=GateMode.CONTINUOUS)
    run(sender, speech(5))
    sender.gate.muted = True
    out = run(sender, speech(5))
    assert out[0] is not None and out[0].end_of_spurt and out[1:] == [None] * 4
    sender.gate.muted = False
    assert all(p is not None for p in run(sender, speech(3)))


def test_voice_activation_holds_200_ms_then_marks_the_end() -> None:
    sender = VoiceSender(mode=GateMode.VOICE_ACTIVATION)
    assert run(sender, [SILENCE] * 25) == [None] * 25  # below the VAD's threshold
    talk = run(sender, speech(10))
    assert all(p is not None and not p.end_of_spurt for p in talk)
    tail = run(sender, [SILENCE] * 20)
    # Hold: 10 more frames (200 ms) are sent (libopus has not reached DTX yet), then the
    # gate closes and the next frame is the end-of-spurt marker.
    assert all(p is not None and not p.end_of_spurt for p in tail[:10])
    marker = tail[10]
    assert marker is not None and marker.end_of_spurt
    assert tail[11:] == [None] * 9
    state = sender.vad_state
    assert state is not None and not state.active


def test_voice_activation_gates_quiet_noise_after_speech() -> None:
    sender = VoiceSender(mode=GateMode.VOICE_ACTIVATION)
    run(sender, [SILENCE] * 25)
    quiet = [(f // 400).astype(np.int16) for f in speech(30, seed=3)]  # ~-68 dBFS
    out = run(sender, speech(10) + quiet)
    sent = [i for i, p in enumerate(out) if p is not None]
    assert sent == list(range(21))  # speech, 10 held frames, the marker
    marker = out[20]
    assert marker is not None and marker.end_of_spurt
    assert sender.statistics().gated == 25 + 19


def test_receiver_goes_idle_at_the_end_of_spurt_marker() -> None:
    sender = VoiceSender(mode=GateMode.PUSH_TO_TALK)
    sender.gate.talk_held = True
    frames = speech(12)
    jb = JitterBuffer()
    decisions = []
    for i, f in enumerate(frames):
        sender.gate.talk_held = i < 8
        p = sender.process(f)
        now = i * 0.02
        if p is not None:
            jb.push(p.sequence, p.frame, now, end_of_spurt=p.end_of_spurt)
        decisions.append(jb.pop(now + 0.005))
    assert [type(d) for d in decisions[:9]] == [Play] * 9  # 8 frames and the marker
    assert all(isinstance(d, Silence) for d in decisions[9:])  # no concealment after it
    assert jb.statistics().concealed == 0


def test_redundancy_and_expected_loss_follow_the_reported_loss() -> None:
    sender = VoiceSender(mode=GateMode.CONTINUOUS)
    frames = speech(12)
    first = run(sender, frames[:3])
    assert all(p is not None and p.redundant == () for p in first)
    assert sender.statistics().expected_loss_percent == 0
    sender.set_reported_loss(0.004)  # clean link: neither copies nor FEC
    assert sender.statistics().copies == 0
    assert sender.statistics().expected_loss_percent == 0
    sender.set_reported_loss(0.03)  # one copy, FEC sized for no loss
    p, previous = sender.process(frames[3]), first[2]
    assert p is not None and previous is not None and p.redundant == (previous.frame,)
    assert p.flags == Flags.REDUNDANT
    assert sender.statistics().expected_loss_percent == 0
    sender.set_reported_loss(0.2)  # heavy loss: the deepest redundancy the datagram carries
    p = sender.process(frames[4])
    assert p is not None and len(p.redundant) == MAX_REDUNDANT_FRAMES
    flags, payload = encode_voice_payload(p.frame, p.redundant)
    assert flags == p.flags and len(payload) > len(p.frame)


def test_without_redundancy_the_loss_sets_in_band_fec() -> None:
    sender = VoiceSender(mode=GateMode.CONTINUOUS, max_redundancy=0)
    sender.set_reported_loss(0.05)
    stats = sender.statistics()
    assert stats.copies == 0 and stats.expected_loss_percent == 8  # 1.5 x 5 %, rounded up
    sender.set_reported_loss(float("nan"))
    assert sender.statistics().expected_loss_percent == 0
    p = sender.process(speech(1)[0])
    assert p is not None and p.redundant == ()


def test_skipped_frames_leave_empty_copies() -> None:
    sender = VoiceSender(mode=GateMode.PUSH_TO_TALK, max_redundancy=MAX_DEPTH)
    sender.set_reported_loss(0.2)
    sender.gate.talk_held = True
    a = sender.process(speech(1)[0])
    sender.gate.talk_held = False
    marker = sender.process(SILENCE)
    assert sender.process(SILENCE) is None
    sender.gate.talk_held = True
    b = sender.process(speech(1, seed=5)[0])
    assert a is not None and marker is not None and b is not None
    assert b.redundant == (b"", marker.frame, a.frame)


def test_wrong_frame_shape_is_our_bug() -> None:
    with pytest.raises(ValueError):
        VoiceSender().process(np.zeros(480, np.int16))
