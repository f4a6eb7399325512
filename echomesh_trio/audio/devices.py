"""Audio devices behind one small interface: sound card, WAV file, tone generator, null.

Every device moves whole 20 ms frames of 48 kHz mono int16 and never blocks its caller:

* an :class:`AudioInput` yields captured frames with ``read_nowait()`` (None: nothing yet);
* an :class:`AudioOutput` takes frames with ``write_nowait()``.

Sound cards are driven by PortAudio callbacks that only copy and hand off (FIELD_NOTES
section 1): capture copies ``indata`` into a bounded queue (oldest dropped and counted when
the reader falls behind); playback always fills ``outdata``, with silence on underrun
(counted). Resampling for devices that do not run at 48 kHz happens outside the callback.
File, tone and null devices are paced by a clock the caller passes in, so tests and machines
without a sound card run the same code.
"""

from __future__ import annotations

import collections
import math
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from echomesh_trio.media import CHANNELS, FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE

Pcm = npt.NDArray[np.int16]
Clock = Callable[[], float]

QUEUE_FRAMES = 25
"""Frames buffered between a sound-card callback and the app: 0.5 s, then oldest dropped."""


class AudioDeviceError(RuntimeError):
    """A device could not be opened; the message says what to use instead."""


NO_DEVICE_HINT = (
    "Use a file or null device instead: input 'file:PATH.wav', 'tone[:HZ]' or 'null'; "
    "output 'file:PATH.wav' or 'null'."
)


@dataclass(frozen=True, slots=True)
class DeviceStatistics:
    """``overruns``: captured frames dropped because the reader fell behind;
    ``underruns``: output blocks filled with silence because no frame was ready."""

    frames: int
    overruns: int
    underruns: int


class AudioInput(Protocol):
    def read_nowait(self) -> Pcm | None: ...
    def statistics(self) -> DeviceStatistics: ...
    def close(self) -> None: ...


class AudioOutput(Protocol):
    def write_nowait(self, pcm: Pcm) -> None: ...
    def statistics(self) -> DeviceStatistics: ...
    def close(self) -> None: ...


def _check_frame(pcm: Pcm) -> None:
    if pcm.shape != (FRAME_SAMPLES,) or pcm.dtype != np.int16:
        raise ValueError(f"expected {FRAME_SAMPLES} int16 samples, got {pcm.shape} {pcm.dtype}")


class _Paced:
    """Releases one frame per 20 ms of the caller's clock, starting at the first read."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._start: float | None = None
        self._released = 0

    def due(self) -> bool:
        now = self._clock()
        if self._start is None:
            self._start = now
        if (now - self._start) * 1000.0 + 1e-9 >= self._released * FRAME_MS:
            self._released += 1
            return True
        return False


class ToneInput:
    """A sine tone (default 440 Hz, -20 dBFS), for testing without a microphone."""

    def __init__(self, clock: Clock, frequency: float = 440.0, amplitude: float = 3277.0) -> None:
        self._pace = _Paced(clock)
        self._phase = 0.0
        self._step = 2.0 * math.pi * frequency / SAMPLE_RATE
        self._amplitude = amplitude
        self._frames = 0

    def read_nowait(self) -> Pcm | None:
        if not self._pace.due():
            return None
        phases = self._phase + self._step * np.arange(FRAME_SAMPLES)
        self._phase = float((phases[-1] + self._step) % (2.0 * math.pi))
        self._frames += 1
        return np.rint(self._amplitude * np.sin(phases)).astype(np.int16)

    def statistics(self) -> DeviceStatistics:
        return DeviceStatistics(self._frames, 0, 0)

    def close(self) -> None:
        pass


class NullInput:
    """Digital silence at the frame rate."""

    def __init__(self, clock: Clock) -> None:
        self._pace = _Paced(clock)
        self._frames = 0

    def read_nowait(self) -> Pcm | None:
        if not self._pace.due():
            return None
        self._frames += 1
        return np.zeros(FRAME_SAMPLES, dtype=np.int16)

    def statistics(self) -> DeviceStatistics:
        return DeviceStatistics(self._frames, 0, 0)

    def close(self) -> None:
        pass


class NullOutput:
    """Discards frames (and counts them)."""

    def __init__(self) -> None:
        self._frames = 0

    def write_nowait(self, pcm: Pcm) -> None:
        _check_frame(pcm)
        self._frames += 1

    def statistics(self) -> DeviceStatistics:
        return DeviceStatistics(self._frames, 0, 0)

    def close(self) -> None:
        pass


def _resample(x: npt.NDArray[np.float32], rate_from: int, rate_to: int) -> npt.NDArray[np.float32]:
    from scipy.signal import resample_poly

    g = math.gcd(rate_from, rate_to)
    return np.asarray(resample_poly(x, rate_to // g, rate_from // g), dtype=np.float32)


class WavFileInput:
    """Plays a 16-bit WAV file as the microphone, one frame per 20 ms of the clock.

    Any rate and channel count is converted to 48 kHz mono. After the end: silence, or the
    file again if ``loop``.
    """

    def __init__(self, path: str | Path, clock: Clock, *, loop: bool = False) -> None:
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
        if rate != SAMPLE_RATE:
            data = _resample(data, rate, SAMPLE_RATE)
        pad = (-len(data)) % FRAME_SAMPLES
        self._data = np.clip(
            np.rint(np.concatenate([data, np.zeros(pad, np.float32)])), -32768, 32767
        ).astype(np.int16)
        self._pos = 0
        self._loop = loop
        self._pace = _Paced(clock)
        self._frames = 0

    @property
    def finished(self) -> bool:
        return not self._loop and self._pos >= len(self._data)

    def read_nowait(self) -> Pcm | None:
        if not self._pace.due():
            return None
        self._frames += 1
        if self._pos >= len(self._data):
            if not self._loop or not len(self._data):
                return np.zeros(FRAME_SAMPLES, dtype=np.int16)
            self._pos = 0
        frame = self._data[self._pos : self._pos + FRAME_SAMPLES]
        self._pos += FRAME_SAMPLES
        return frame.copy()

    def statistics(self) -> DeviceStatistics:
        return DeviceStatistics(self._frames, 0, 0)

    def close(self) -> None:
        pass


class WavFileOutput:
    """Records what would be played into a 48 kHz mono 16-bit WAV file."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._file = open(path, "wb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise AudioDeviceError(f"cannot write WAV file {path}: {exc}") from exc
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115 (closed by close())
        self._wav.setnchannels(CHANNELS)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._frames = 0
        self._closed = False

    def write_nowait(self, pcm: Pcm) -> None:
        _check_frame(pcm)
        self._wav.writeframes(pcm.astype("<i2").tobytes())
        self._frames += 1

    def statistics(self) -> DeviceStatistics:
        return DeviceStatistics(self._frames, 0, 0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wav.close()
            self._file.close()


# -- sound cards -------------------------------------------------------------------------


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # PortAudio itself is missing
        raise AudioDeviceError(
            f"PortAudio is not available ({exc}); install libportaudio2. " + NO_DEVICE_HINT
        ) from exc
    return sounddevice


def list_devices() -> list[dict[str, Any]]:
    """Sound devices PortAudio knows (empty on a machine without a sound card)."""
    return [dict(d) for d in _sounddevice().query_devices()]


def _resolve(sd: Any, device: int | str | None, kind: str) -> tuple[int | None, int]:
    """(PortAudio device index or None for default, its native sample rate)."""
    try:
        info = sd.query_devices(device, kind)
    except (ValueError, sd.PortAudioError) as exc:
        which = "default" if device is None else repr(device)
        raise AudioDeviceError(
            f"no usable sound {kind} device ({which}): {exc}. " + NO_DEVICE_HINT
        ) from exc
    return info["index"], int(info["default_samplerate"])


class SoundDeviceInput:
    """Microphone through PortAudio; the callback only copies into a bounded deque."""

    def __init__(self, device: int | str | None = None) -> None:
        sd = _sounddevice()
        index, rate = _resolve(sd, device, "input")
        self._rate = rate if rate > 0 else SAMPLE_RATE
        # deque.append and popleft are atomic in CPython: no lock in the callback.
        self._queue: collections.deque[npt.NDArray[np.int16]] = collections.deque(
            maxlen=QUEUE_FRAMES * 4
        )
        self._carry = np.zeros(0, dtype=np.float32)
        self._frames = 0
        self._overruns = 0
        block = self._rate * FRAME_MS // 1000
        try:
            self._stream = sd.InputStream(
                device=index,
                samplerate=self._rate,
                channels=1,
                dtype="int16",
                blocksize=block,
                callback=self._callback,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot open input device: {exc}. " + NO_DEVICE_HINT) from exc

    def _callback(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        if len(self._queue) == self._queue.maxlen:
            self._overruns += 1
        self._queue.append(indata[:, 0].copy())

    def read_nowait(self) -> Pcm | None:
        while self._carry.shape[0] < FRAME_SAMPLES and self._queue:
            block = self._queue.popleft().astype(np.float32)
            if self._rate != SAMPLE_RATE:
                block = _resample(block, self._rate, SAMPLE_RATE)
            self._carry = np.concatenate([self._carry, block])
        if self._carry.shape[0] < FRAME_SAMPLES:
            return None
        frame, self._carry = self._carry[:FRAME_SAMPLES], self._carry[FRAME_SAMPLES:]
        self._frames += 1
        return np.clip(np.rint(frame), -32768, 32767).astype(np.int16)

    def statistics(self) -> DeviceStatistics:
        return DeviceStatistics(self._frames, self._overruns, 0)

    def close(self) -> None:
        self._stream.close()


class SoundDeviceOutput:
    """Speaker through PortAudio; the callback copies queued blocks and pads with silence."""

    def __init__(self, device: int | str | None = None) -> None:
        sd = _sounddevice()
        index, rate = _resolve(sd, device, "output")
        self._rate = rate if rate > 0 else SAMPLE_RATE
        self._block = self._rate * FRAME_MS // 1000
        self._queue: collections.deque[npt.NDArray[np.int16]] = collections.deque(
            maxlen=QUEUE_FRAMES
        )
        self._frames = 0
        self._dropped = 0
        self._underruns = 0
        try:
            self._stream = sd.OutputStream(
                device=index,
                samplerate=self._rate,
                channels=1,
                dtype="int16",
                blocksize=self._block,
                callback=self._callback,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot open output device: {exc}. " + NO_DEVICE_HINT) from exc

    def write_nowait(self, pcm: Pcm) -> None:
        """Queue one frame; if 0.5 s is already queued the oldest is dropped (and counted)."""
        _check_frame(pcm)
        block = pcm
        if self._rate != SAMPLE_RATE:
            res = _resample(pcm.astype(np.float32), SAMPLE_RATE, self._rate)
            block = np.clip(np.rint(res), -32768, 32767).astype(np.int16)
        if len(self._queue) == self._queue.maxlen:
            self._dropped += 1
        self._queue.append(block)
        self._frames += 1

    def _callback(self, outdata: Any, frames: int, time: Any, status: Any) -> None:
        try:
            block = self._queue.popleft()
        except IndexError:
            block = None
        n = 0 if block is None else min(frames, block.shape[0])
        if block is not None:
            outdata[:n, 0] = block[:n]
        if n < frames:
            outdata[n:, 0] = 0
            self._underruns += 1

    def statistics(self) -> DeviceStatistics:
        return DeviceStatistics(self._frames, self._dropped, self._underruns)

    def close(self) -> None:
        self._stream.close()


def open_input(spec: str, clock: Clock) -> AudioInput:
    """``null``, ``tone[:HZ]``, ``file:PATH.wav``, ``default``, a device index or a name."""
    if spec == "null":
        return NullInput(clock)
    if spec == "tone" or spec.startswith("tone:"):
        _, _, hz = spec.partition(":")
        return ToneInput(clock, float(hz) if hz else 440.0)
    if spec.startswith("file:"):
        return WavFileInput(spec[5:], clock)
    return SoundDeviceInput(_device_arg(spec))


def open_output(spec: str) -> AudioOutput:
    """``null``, ``file:PATH.wav``, ``default``, a device index or a name."""
    if spec == "null":
        return NullOutput()
    if spec.startswith("file:"):
        return WavFileOutput(spec[5:])
    return SoundDeviceOutput(_device_arg(spec))


def _device_arg(spec: str) -> int | str | None:
    if spec in ("", "default"):
        return None
    return int(spec) if spec.isdigit() else spec
