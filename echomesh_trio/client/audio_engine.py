"""The client's audio: capture to packets, packets to the output device.

It lives as long as the client, across reconnects: the capture task keeps reading the
input device (so a sound card's queue never fills while the connection is down) and hands
each packet to the current ``VoiceLink``, if there is one; the playout task lets the output
device pull mixed blocks from the ``VoiceReceiver`` at the device's own pace (a sound
card's callback, or the Trio clock for file and null devices).

Mute closes the transmit gate (an end-of-spurt packet goes out if we were talking);
deafen stops playback (blocks of silence; packets are not even buffered) and mutes, as
Mumble does; undeafening unmutes again unless mute was set on its own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Final

import numpy as np
import trio

from echomesh_trio.audio.frontend import FrontEnd, NoiseSuppressionUnavailableError
from echomesh_trio.audio.pcm import Pcm
from echomesh_trio.audio.receiver import VoiceReceiver
from echomesh_trio.audio.sender import GateMode, VoicePacket, VoiceSender
from echomesh_trio.audio.vad import VoiceActivityDetector
from echomesh_trio.client.talk import TalkTracker
from echomesh_trio.client.voice_link import VoiceLink
from echomesh_trio.devices.base import AudioInput, AudioOutput
from echomesh_trio.protocol import events as ev
from echomesh_trio.voice.client import VoiceFrame
from echomesh_trio.voice.packet import Flags

log = logging.getLogger("echomesh.client")

TALK_TICK_S: Final = 0.05
LEVEL_EVERY: Final = 5
"""Frames per InputLevel event (10 a second, the loudest of them): enough for a meter."""


@dataclass(slots=True)
class _SpeakerCounters:
    received: int = 0
    late: int = 0
    concealed: int = 0
    recovered: int = 0


class _Playback:
    """The output device's source: the receiver, or silence while deafened."""

    def __init__(self, engine: AudioEngine) -> None:
        self._engine = engine

    def pull(self, samples: int, now: float) -> Pcm:
        engine = self._engine
        block = engine.receiver.pull(samples, now)
        if engine.deafened:
            return np.zeros(samples, dtype=np.int16)
        return block


class AudioEngine:
    def __init__(
        self,
        audio_input: AudioInput,
        audio_output: AudioOutput,
        *,
        mode: GateMode,
        noise_suppression: bool = True,
        gain_control: bool = True,
        on_talk: Callable[[int, bool], None],
        on_transmit: Callable[[bool], None],
        on_level: Callable[[float, bool], None],
    ) -> None:
        self.input = audio_input
        self.output = audio_output
        self.sender = VoiceSender(mode=mode, front_end=FrontEnd(noise_suppression=False, agc=False))
        self.front_end_problem = ""
        """Why noise suppression is off although asked for (RNNoise cannot be loaded)."""
        self.set_gain_control(gain_control)
        self.set_noise_suppression(noise_suppression)
        self.receiver = VoiceReceiver()
        self.talk = TalkTracker()
        self.link: VoiceLink | None = None
        self.muted = False
        self.deafened = False
        self._self_muted = False
        self._on_talk = on_talk
        self._on_transmit = on_transmit
        self._on_level = on_level
        self._transmitting = False
        self._level_frames = 0
        self._level_max = -math.inf
        self._level_voice = False
        self._reported: dict[int, _SpeakerCounters] = {}

    # ---------------------------------------------------------------- settings
    def set_mode(self, mode: GateMode) -> None:
        self.sender.gate.mode = mode

    def ptt(self, down: bool) -> None:
        self.sender.gate.talk_held = down

    def set_muted(self, muted: bool) -> None:
        self._self_muted = muted
        self._apply_mute()

    def set_deafened(self, deafened: bool) -> None:
        self.deafened = deafened
        if deafened:
            for source_id in list(self.receiver.statistics().speakers):
                self.receiver.remove(source_id)
        self._apply_mute()

    def _apply_mute(self) -> None:
        self.muted = self._self_muted or self.deafened
        self.sender.gate.muted = self.muted

    def set_gain(self, source_id: Hashable, gain: float) -> None:
        self.receiver.mixer.set_gain(source_id, gain)

    def set_noise_suppression(self, on: bool) -> bool:
        """RNNoise before the VAD and the encoder (20 ms more delay). Returns whether it is
        on: without the library it stays off, and ``front_end_problem`` says why."""
        front_end = self.sender.front_end
        assert front_end is not None
        try:
            front_end.noise_suppression = on
        except NoiseSuppressionUnavailableError as exc:
            self.front_end_problem = str(exc)
            log.warning("noise suppression is off: %s", exc)
            return False
        return front_end.noise_suppression

    def set_gain_control(self, on: bool) -> None:
        front_end = self.sender.front_end
        assert front_end is not None
        front_end.agc = on

    def set_vad_threshold(self, dbfs: float | None) -> None:
        """A fixed voice-activation threshold in dBFS, or None to follow the noise floor."""
        self.sender.vad = VoiceActivityDetector(threshold_dbfs=dbfs)

    def set_reported_loss(self, loss: float) -> None:
        self.sender.set_reported_loss(loss)

    # ---------------------------------------------------------------- tasks
    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._capture)
            nursery.start_soon(self.output.play, _Playback(self))
            nursery.start_soon(self._talk_ticks)

    async def _capture(self) -> None:
        try:
            async for pcm in self.input:
                self._frame(pcm)
        except trio.ClosedResourceError:
            pass

    def _frame(self, pcm: Pcm) -> None:
        packet = self.sender.process(pcm)
        state = self.sender.vad_state
        voice = state is not None and state.active
        if state is not None:
            self._level_max = max(self._level_max, state.level_dbfs)
            self._level_voice |= voice
            self._level_frames += 1
            if self._level_frames >= LEVEL_EVERY:
                self._on_level(self._level_max, self._level_voice)
                self._level_frames, self._level_max, self._level_voice = 0, -math.inf, False
        if packet is not None:
            self._send(packet)
        transmitting = self.sender.gate.is_open(voice)
        if transmitting != self._transmitting:
            self._transmitting = transmitting
            self._on_transmit(transmitting)

    @property
    def transmitting(self) -> bool:
        return self._transmitting

    def _send(self, packet: VoicePacket) -> None:
        link = self.link
        if link is not None:
            link.send_voice(packet)

    def frame_received(self, frame: VoiceFrame) -> None:
        """A voice frame from the link (called on the Trio thread, never blocks)."""
        now = trio.current_time()
        end = bool(frame.flags & Flags.END_OF_SPURT)
        change = self.talk.packet(frame.source_id, now, end_of_spurt=end)
        if change is not None:
            self._on_talk(frame.source_id, change)
        if self.deafened:
            return
        self.receiver.push(
            frame.source_id, frame.sequence, frame.frame, now,
            redundant=frame.redundant, end_of_spurt=end,
        )  # fmt: skip

    def speaker_left(self, source_id: int) -> None:
        if self.talk.forget(source_id):
            self._on_talk(source_id, False)
        self.receiver.remove(source_id)
        self._reported.pop(source_id, None)

    async def _talk_ticks(self) -> None:
        while True:
            await trio.sleep(TALK_TICK_S)
            for source_id in self.talk.tick(trio.current_time()):
                self._on_talk(source_id, False)

    # ---------------------------------------------------------------- statistics
    def loss_report(self) -> ev.ReportVoiceLoss | None:
        """Per speaker heard since the last report: expected (received + lost), lost
        (concealed frames that were not late, and frames recovered from a later packet)
        and late packets."""
        entries = []
        for source_id, stats in self.receiver.statistics().speakers.items():
            if not isinstance(source_id, int):
                continue
            jitter = stats.jitter
            before = self._reported.setdefault(source_id, _SpeakerCounters())
            genuine = jitter.received - jitter.duplicates - jitter.dropped
            received = genuine - before.received
            late = jitter.late - before.late
            concealed = jitter.concealed - before.concealed
            recovered = jitter.recovered - before.recovered
            before.received, before.late = genuine, jitter.late
            before.concealed, before.recovered = jitter.concealed, jitter.recovered
            # The network's loss: what redundancy and FEC recovered did not arrive either.
            lost = max(0, concealed - late) + max(0, recovered)
            expected = received + lost
            if expected > 0:
                late = min(max(0, late), received)
                entries.append(ev.SpeakerLoss(source_id, expected, lost, late))
        return ev.ReportVoiceLoss(tuple(entries[:64])) if entries else None
