"""The I/O layer for audio: sound cards (PortAudio), WAV files, tone and null.

Shared by the client, bots and benchmarks; the pure engine in ``echomesh_trio.audio`` never
imports it. Capture devices give 20 ms 48 kHz mono frames (``await dev.receive_frame()``);
playback devices pull 5 ms blocks from a source (``await dev.play(receiver)``). See
``base.py`` for the interface and ``docs/AUDIO.md`` for queues and their bounds.
"""

from __future__ import annotations

from echomesh_trio.devices.base import (
    NO_DEVICE_HINT,
    AudioDeviceError,
    AudioInput,
    AudioOutput,
    AudioSource,
    CaptureStatistics,
    PlaybackStatistics,
)
from echomesh_trio.devices.files import (
    NullInput,
    NullOutput,
    ToneInput,
    WavFileInput,
    WavFileOutput,
)
from echomesh_trio.devices.portaudio import SoundDeviceInput, SoundDeviceOutput, list_devices

__all__ = [
    "NO_DEVICE_HINT",
    "AudioDeviceError",
    "AudioInput",
    "AudioOutput",
    "AudioSource",
    "CaptureStatistics",
    "NullInput",
    "NullOutput",
    "PlaybackStatistics",
    "SoundDeviceInput",
    "SoundDeviceOutput",
    "ToneInput",
    "WavFileInput",
    "WavFileOutput",
    "list_devices",
    "open_input",
    "open_output",
]


def open_input(spec: str) -> AudioInput:
    """``null``, ``tone[:HZ]``, ``file:PATH.wav``, ``default``, a device index or a name.

    Call inside Trio: sound cards hand their blocks to the current Trio run.
    """
    if spec == "null":
        return NullInput()
    if spec == "tone" or spec.startswith("tone:"):
        _, _, hz = spec.partition(":")
        return ToneInput(float(hz) if hz else 440.0)
    if spec.startswith("file:"):
        return WavFileInput(spec[5:])
    return SoundDeviceInput.open(_device_arg(spec))


def open_output(spec: str) -> AudioOutput:
    """``null``, ``file:PATH.wav``, ``default``, a device index or a name (inside Trio)."""
    if spec == "null":
        return NullOutput()
    if spec.startswith("file:"):
        return WavFileOutput(spec[5:])
    return SoundDeviceOutput.open(_device_arg(spec))


def _device_arg(spec: str) -> int | str | None:
    if spec in ("", "default"):
        return None
    return int(spec) if spec.isdigit() else spec
