"""Devices without a sound card: WAV files, a tone and null, paced by the Trio clock.

Inputs release one 20 ms frame per 20 ms of Trio time from the first ``receive_frame``; an
output pulls one block per block time from its source while ``play`` runs. Because the
pacing is Trio's clock, the same code runs in real time for a bot or a machine without a
sound card, and instantly under ``trio.testing.MockClock`` in tests.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import trio

from echomesh_trio.audio.pcm import Pcm
from echomesh_trio.devices.base import (
    PLAYBACK_BLOCK_SAMPLES,
    AudioDeviceError,
    AudioSource,
    CaptureDevice,
    CaptureStatistics,
    PlaybackStatistics,
    fit_block,
)
from echomesh_trio.devices.resample import resample_whole
from echomesh_trio.media import CHANNELS, FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE


class PacedInput(CaptureDevice):
    """A capture device whose frames are made on demand, one per 20 ms of Trio time."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._frames = 0
        self._closed = False

    async def receive_frame(self) -> Pcm:
        """The next frame, at its due time (the first at once). Closed: ClosedResourceError."""
        if self._closed:
            raise trio.ClosedResourceError("the capture device is closed")
        if self._start is None:
            self._start = trio.current_time()
        await trio.sleep_until(self._start + self._frames * FRAME_MS / 1000)
        if self._closed:
            raise trio.ClosedResourceError("the capture device is closed")
        self._frames += 1
        return self._next_frame()

    def _next_frame(self) -> Pcm:
        raise NotImplementedError

    def statistics(self) -> CaptureStatistics:
        return CaptureStatistics(frames=self._frames)

    def close(self) -> None:
        self._closed = True


class ToneInput(PacedInput):
    """A sine tone (default 440 Hz, -20 dBFS), for testing without a microphone."""

    def __init__(self, frequency: float = 440.0, amplitude: float = 3277.0) -> None:
        super().__init__()
        self._phase = 0.0
        self._step = 2.0 * math.pi * frequency / SAMPLE_RATE
        self._amplitude = amplitude

    def _next_frame(self) -> Pcm:
        phases = self._phase + self._step * np.arange(FRAME_SAMPLES)
        self._phase = float((phases[-1] + self._step) % (2.0 * math.pi))
        return np.rint(self._amplitude * np.sin(phases)).astype(np.int16)


class NullInput(PacedInput):
    """Digital silence at the frame rate."""

    def _next_frame(self) -> Pcm:
        return np.zeros(FRAME_SAMPLES, dtype=np.int16)


class WavFileInput(PacedInput):
    """Plays a 16-bit WAV file as the microphone.

    Any rate and channel count is converted to 48 kHz mono when the file is opened. After
    the end: silence, or the file again if ``loop``.
    """

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        super().__init__()
        try:
            with wave.open(str(path), "rb") as w:
                if w.getsampwidth() != 2:
                    raise AudioDeviceError(f"{path}: only 16-bit PCM WAV files are supported")
                rate, channels = w.getframerate(), w.getnchannels()
                raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        except (OSError, wave.Error, EOFError) as exc:
            raise AudioDeviceError(f"cannot read WAV file {path}: {exc}") from exc
        data = raw.astype(np.float32)
        if channels > 1:
            data = data.reshape(-1, channels).mean(axis=1)
        pcm = resample_whole(data, rate, SAMPLE_RATE)
        pad = (-len(pcm)) % FRAME_SAMPLES
        self._data = np.concatenate([pcm, np.zeros(pad, np.int16)])
        self._pos = 0
        self._loop = loop

    @property
    def finished(self) -> bool:
        return not self._loop and self._pos >= len(self._data)

    def _next_frame(self) -> Pcm:
        if self._pos >= len(self._data):
            if not self._loop or not len(self._data):
                return np.zeros(FRAME_SAMPLES, dtype=np.int16)
            self._pos = 0
        frame = self._data[self._pos : self._pos + FRAME_SAMPLES]
        self._pos += FRAME_SAMPLES
        return frame.copy()


class PacedOutput:
    """A playback device that pulls one block per block time of Trio time."""

    def __init__(self, block_samples: int = PLAYBACK_BLOCK_SAMPLES) -> None:
        self.block_samples = block_samples
        self._blocks = 0
        self._underruns = 0

    async def play(self, source: AudioSource) -> None:
        """Pull and write blocks until cancelled; block ``i`` is pulled at its start time."""
        start = trio.current_time()
        first = self._blocks
        while True:
            due = start + (self._blocks - first) * self.block_samples / SAMPLE_RATE
            await trio.sleep_until(due)
            block, short = fit_block(source.pull(self.block_samples, due), self.block_samples)
            self._underruns += short
            self._write(block)
            self._blocks += 1

    def _write(self, block: Pcm) -> None:
        pass

    def statistics(self) -> PlaybackStatistics:
        return PlaybackStatistics(blocks=self._blocks, underruns=self._underruns)

    def close(self) -> None:
        pass


class NullOutput(PacedOutput):
    """Discards what it pulls (and counts the blocks)."""


class WavFileOutput(PacedOutput):
    """Records what would be played into a 48 kHz mono 16-bit WAV file."""

    def __init__(self, path: str | Path, block_samples: int = PLAYBACK_BLOCK_SAMPLES) -> None:
        super().__init__(block_samples)
        try:
            self._file = open(path, "wb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise AudioDeviceError(f"cannot write WAV file {path}: {exc}") from exc
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115 (closed by close())
        self._wav.setnchannels(CHANNELS)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._closed = False

    def _write(self, block: Pcm) -> None:
        self._wav.writeframes(block.astype("<i2").tobytes())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wav.close()
            self._file.close()
