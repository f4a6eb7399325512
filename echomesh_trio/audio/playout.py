"""One speaker's playout: jitter buffer decisions turned into PCM by the Opus decoder.

The output device pulls blocks of any size (5 ms is typical); the playout asks the jitter
buffer for a decision only when it has run out of decoded samples. While the speaker is idle
or a late packet is awaited it produces just enough filler for the block, so a talk spurt
starts (and a wait ends) on a block boundary rather than a 20 ms one: that is how the delay
gets finer than a frame without time-stretching speech. Pure: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from echomesh_trio.audio.codec import OpusDecoder
from echomesh_trio.audio.jitter import (
    Conceal,
    Decision,
    JitterBuffer,
    JitterStatistics,
    Packet,
    Play,
    PushResult,
    Recover,
    Silence,
)
from echomesh_trio.audio.pcm import Pcm
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE

DecisionHook = Callable[[Decision, Pcm, float], None]
"""Called with each decision, its PCM and the time its first sample reaches the device."""


@dataclass(frozen=True, slots=True)
class PlayoutStatistics:
    """Jitter-buffer counters plus what the decoder side saw."""

    jitter: JitterStatistics
    redundant_recovered: int
    fec_recovered: int


class SpeakerPlayout:
    """Jitter buffer + decoder for one speaker; the mixer pulls PCM from it."""

    def __init__(
        self,
        jitter: JitterBuffer | None = None,
        decoder: OpusDecoder | None = None,
        *,
        on_decision: DecisionHook | None = None,
    ) -> None:
        self._jitter = jitter if jitter is not None else JitterBuffer()
        self._decoder = decoder if decoder is not None else OpusDecoder()
        self._on_decision = on_decision
        self._pending: list[Pcm] = []
        self._queued = 0
        self._redundant = 0
        self._fec = 0
        self._active = False
        self._wait_state: bytes | None = None  # decoder state saved when a wait began

    @property
    def jitter(self) -> JitterBuffer:
        return self._jitter

    @property
    def active(self) -> bool:
        """True while the speaker is talking (for a "who speaks" indicator)."""
        return self._active

    def push(
        self,
        seq: int,
        frame: bytes,
        now: float,
        *,
        redundant: Sequence[bytes] = (),
        end_of_spurt: bool = False,
    ) -> PushResult:
        """Hand one untrusted voice packet to the buffer (see :meth:`JitterBuffer.push`)."""
        return self._jitter.push(seq, frame, now, redundant=redundant, end_of_spurt=end_of_spurt)

    def pull(self, samples: int, now: float) -> Pcm:
        """Return exactly ``samples`` samples for the device block that starts at ``now``."""
        while self._queued < samples:
            decision = self._jitter.pop(now)
            pcm = self._render(decision, samples - self._queued)
            if self._on_decision is not None:
                self._on_decision(decision, pcm, now + self._queued / SAMPLE_RATE)
            self._pending.append(pcm)
            self._queued += pcm.shape[0]
        out = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        result = out[:samples]
        rest = out[samples:]
        self._pending = [rest] if rest.shape[0] else []
        self._queued = rest.shape[0]
        return result

    def _render(self, decision: Decision, needed: int) -> Pcm:
        if isinstance(decision, Conceal) and decision.seq is None:
            # A wait: filler from PLC, but the decoder goes back to where it was when the
            # wait began, so the awaited frame decodes exactly as if it had been on time.
            if self._wait_state is None:
                self._wait_state = self._decoder.save_state()
            return self._decoder.conceal(min(needed, FRAME_SAMPLES))
        if self._wait_state is not None and not isinstance(decision, Conceal):
            # The wait is over. The join is not cross-faded: fading from the filler's
            # continuation into the frame cost 0.15-0.2 PESQ per join (2.5 ms fade) and
            # still 0.05 at 0.5 ms, because PLC's pitch drifts out of phase with the frame.
            self._decoder.restore_state(self._wait_state)
        self._wait_state = None  # (after a frame given up on, PLC just goes on)
        return self._render_frame(decision, needed)

    def _render_frame(self, decision: Decision, needed: int) -> Pcm:
        if isinstance(decision, Play):
            self._active = True
            return self._decode_primary(decision.packet)
        if isinstance(decision, Recover):
            return self._recover(decision)
        if isinstance(decision, Conceal):
            if decision.seq is None:
                return self._decoder.conceal(min(needed, FRAME_SAMPLES))
            return self._decoder.conceal()
        assert isinstance(decision, Silence)
        self._active = False
        return np.zeros(max(1, needed), dtype=np.int16)

    def _decode_primary(self, packet: Packet) -> Pcm:
        return self._decoder.decode(packet.frame)

    def _recover(self, decision: Recover) -> Pcm:
        distance = (decision.source_seq - decision.seq) % self._jitter.modulus
        copies = decision.packet.redundant
        if 1 <= distance <= len(copies) and copies[distance - 1]:
            self._redundant += 1
            return self._decoder.decode(copies[distance - 1])
        if distance == 1:
            self._fec += 1
            return self._decoder.recover(decision.packet.frame)
        return self._decoder.conceal()

    def statistics(self) -> PlayoutStatistics:
        return PlayoutStatistics(
            jitter=self._jitter.statistics(),
            redundant_recovered=self._redundant,
            fec_recovered=self._fec,
        )
