"""The device layer's small interface, shared by sound cards, WAV files, tone and null.

Capture: ``await dev.receive_frame()`` (or ``async for frame in dev``) gives 20 ms frames of
48 kHz mono int16. Playback: ``await dev.play(source)`` runs until cancelled, pulling blocks
of ``dev.block_samples`` (5 ms) from ``source.pull(samples, now)``, where ``now`` is the Trio
time at which the block's first sample is heard; ``VoiceReceiver`` is such a source. Both
count what went wrong in a frozen ``statistics()`` object. Time is Trio's clock, so tests run
on ``trio.testing.MockClock``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import trio

from echomesh_trio.audio.pcm import Pcm
from echomesh_trio.media import SAMPLE_RATE

CAPTURE_QUEUE_S = 0.5
"""Captured audio buffered for a reader that falls behind; beyond it the oldest device
blocks are dropped (and counted): stale speech is worth less than the speech after it."""

PLAYBACK_BLOCK_MS = 5
"""Block a playback device pulls: the delay resolution of the playout (docs/AUDIO.md)."""

PLAYBACK_BLOCK_SAMPLES = SAMPLE_RATE * PLAYBACK_BLOCK_MS // 1000  # 240

PLAYBACK_AHEAD_BLOCKS = 2
"""Blocks a sound card's output ring holds ahead of its callback (10 ms): the margin for the
Trio thread to answer a callback before the next one finds the ring empty."""


class AudioDeviceError(RuntimeError):
    """A device could not be opened; the message says what to use instead."""


NO_DEVICE_HINT = (
    "Use a file or null device instead: input 'file:PATH.wav', 'tone[:HZ]' or 'null'; "
    "output 'file:PATH.wav' or 'null'."
)


@dataclass(frozen=True, slots=True)
class CaptureStatistics:
    """``frames``: 20 ms frames handed to the reader; ``dropped_blocks``: device blocks
    dropped, oldest first, because the reader fell ``CAPTURE_QUEUE_S`` behind;
    ``input_overflows``: callbacks whose PortAudio status said the device lost input."""

    frames: int
    dropped_blocks: int = 0
    input_overflows: int = 0


@dataclass(frozen=True, slots=True)
class PlaybackStatistics:
    """``blocks``: device blocks played; ``underruns``: blocks filled (partly) with silence
    because nothing was ready; ``output_underflows``: callbacks whose PortAudio status said
    the device ran dry before them."""

    blocks: int
    underruns: int = 0
    output_underflows: int = 0


class AudioSource(Protocol):
    """What a playback device pulls from (``VoiceReceiver``, ``SpeakerPlayout``)."""

    def pull(self, samples: int, now: float) -> Pcm: ...


class AudioInput(Protocol):
    async def receive_frame(self) -> Pcm: ...
    def __aiter__(self) -> AsyncIterator[Pcm]: ...
    def statistics(self) -> CaptureStatistics: ...
    def close(self) -> None: ...


class AudioOutput(Protocol):
    block_samples: int

    async def play(self, source: AudioSource) -> None: ...
    def statistics(self) -> PlaybackStatistics: ...
    def close(self) -> None: ...


class CaptureDevice:
    """Base of the capture devices: iterating gives frames until the device is closed."""

    async def receive_frame(self) -> Pcm:
        raise NotImplementedError

    def __aiter__(self) -> CaptureDevice:
        return self

    async def __anext__(self) -> Pcm:
        try:
            return await self.receive_frame()
        except trio.ClosedResourceError:
            raise StopAsyncIteration from None


def fit_block(pcm: Pcm, samples: int) -> tuple[Pcm, bool]:
    """``pcm`` cut or zero-padded to ``samples``; True if it had to be padded."""
    n = pcm.shape[0]
    if n == samples:
        return pcm, False
    if n > samples:
        return pcm[:samples], False
    out = np.zeros(samples, dtype=np.int16)
    out[:n] = pcm
    return out, True
