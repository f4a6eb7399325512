"""Choosing audio devices for the TUI: sound cards when there are any, WAV files, tone and
null otherwise; a machine without a sound card runs on null devices, and says so once."""

from __future__ import annotations

from typing import Any, Final

from echomesh_trio import devices
from echomesh_trio.devices.base import AudioDeviceError, AudioInput, AudioOutput


def spec_of(text: str) -> str:
    """``--input``/``--output`` also take a bare WAV path (``file:`` is optional)."""
    if text.lower().endswith(".wav") and not text.startswith("file:"):
        return "file:" + text
    return text


DISCARD_BLOCK_SAMPLES: Final = 960
"""A null output pulls 20 ms blocks instead of a sound card's 5 ms: nobody hears it, and
each wake-up costs more in guest mode (a round trip through the asyncio loop)."""


def is_microphone(spec: str) -> bool:
    """A sound card, not a tone, a file or null: the capture front end (noise suppression,
    gain control) is for it only."""
    spec = spec_of(spec)
    return not (spec in ("null", "tone") or spec.startswith(("tone:", "file:")))


def open_output(spec: str) -> AudioOutput:
    if spec == "null":
        return devices.NullOutput(DISCARD_BLOCK_SAMPLES)
    return devices.open_output(spec_of(spec))


def open_devices(input_spec: str, output_spec: str) -> tuple[AudioInput, AudioOutput, str]:
    """Open both devices (inside Trio); a device that cannot open becomes null, and the
    returned note says why ("" when both opened as asked)."""
    notes = []
    audio_in: AudioInput
    audio_out: AudioOutput
    try:
        audio_in = devices.open_input(spec_of(input_spec))
    except (AudioDeviceError, OSError, ValueError) as exc:
        notes.append(f"input {input_spec!r}: {exc}")
        audio_in = devices.NullInput()
    try:
        audio_out = open_output(output_spec)
    except (AudioDeviceError, OSError, ValueError) as exc:
        notes.append(f"output {output_spec!r}: {exc}")
        audio_out = devices.NullOutput(DISCARD_BLOCK_SAMPLES)
    if not notes:
        return audio_in, audio_out, ""
    if all("no usable sound" in n or "PortAudio" in n for n in notes):
        return (
            audio_in,
            audio_out,
            (
                "No sound card here: running with null devices (silence in, nothing out). "
                "Use --input tone:440 or --input FILE.wav to send something."
            ),
        )
    return audio_in, audio_out, "; ".join(notes) + " - using null instead."


def list_sound_devices() -> tuple[list[dict[str, Any]], str]:
    try:
        found = devices.list_devices()
    except OSError as exc:  # no PortAudio library
        return [], f"no sound devices: {exc}"
    return found, "" if found else "no sound card found: tone, WAV files and null only"
