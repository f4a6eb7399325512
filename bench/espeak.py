"""espeak-ng speech synthesis for the benchmarks, through the library itself (ctypes).

The library and its data for ~100 languages come from the ``espeakng-loader`` wheel (a dev
dependency), so the benchmark needs no Debian package; when the wheel is missing, the
``espeak-ng`` program is used if it is on PATH.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE, ESPEAK_PITCH, ESPEAK_RANGE = 1, 3, 4
ESPEAK_CHARS_UTF8 = 1
POS_CHARACTER = 1

_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class SpeechUnavailableError(RuntimeError):
    """Neither the espeakng-loader wheel nor the espeak-ng program is available."""


@dataclass(frozen=True, slots=True)
class Voice:
    """An espeak-ng voice (``language+variant``), pitch 0-99 and rate in words per minute."""

    name: str
    pitch: int = 50
    rate: int = 160


class _Library:
    """The process-wide espeak-ng engine (its API is global state)."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.rate = int(self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, 0))
        if self.rate <= 0:
            raise SpeechUnavailableError("espeak_Initialize failed")
        self._chunks: list[np.ndarray] = []

        def on_audio(wav: Any, n: int, _events: Any) -> int:
            if n > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _CALLBACK(on_audio)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]

    def speak(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise SpeechUnavailableError(f"espeak-ng has no voice {voice.name!r}")
        self.lib.espeak_SetParameter(ESPEAK_RATE, voice.rate, 0)
        self.lib.espeak_SetParameter(ESPEAK_PITCH, voice.pitch, 0)
        self._chunks = []
        data = text.encode()
        self.lib.espeak_Synth(
            data, len(data) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None
        )
        self.lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        return pcm, self.rate


_library: _Library | None = None


def speak(text: str, voice: Voice) -> tuple[np.ndarray, int]:
    """``text`` spoken by ``voice``: (int16 samples, sample rate)."""
    global _library
    try:
        if _library is None:
            _library = _Library()
        return _library.speak(text, voice)
    except ImportError:
        pass
    if shutil.which("espeak-ng") is None:
        raise SpeechUnavailableError(
            "no espeak-ng: install the dev dependencies (`make setup`, espeakng-loader) "
            "or Debian's espeak-ng, or use --wav"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                voice.name,
                "-p",
                str(voice.pitch),
                "-s",
                str(voice.rate),
                "-w",
                str(path),
                text,
            ],
            check=True,
            capture_output=True,
        )
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()
    return pcm, rate
