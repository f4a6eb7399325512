"""The capture front end: noise suppression (RNNoise) and automatic gain control.

It runs in the sender before the VAD and the encoder (``VoiceSender(front_end=FrontEnd())``),
one 20 ms frame at a time, so the VAD decides on the cleaned signal and Opus spends its bits
on speech rather than on the room.

* **Noise suppression** is RNNoise (xiph, BSD-3), a small recurrent network that works on
  480-sample (10 ms) frames at 48 kHz: each 20 ms frame is two RNNoise frames. It removes
  at most ``MAX_ATTENUATION_DB`` (the input is mixed back in below that). The library
  is the one the ``pyrnnoise`` wheel ships (``librnnoise.so``, RNNoise 0.2); it is loaded
  with ctypes directly, because importing the ``pyrnnoise`` package itself pulls in
  audiolab, PyAV, matplotlib and tqdm, which a voice client does not need. RNNoise delays
  its output by 20 ms and costs ~0.9 ms of CPU per 20 ms frame here.
* **Automatic gain control** brings speech towards ``TARGET_DBFS`` (the active level of
  ITU-T P.56-style material, -26 dBFS): the speech level is tracked only on frames that are
  speech (RNNoise's voice probability, or a level above a tracked noise floor when noise
  suppression is off); the gain moves at most ``GAIN_UP_DB_PER_FRAME`` up and
  ``GAIN_DOWN_DB_PER_FRAME`` down per frame, stays in ``MIN_GAIN_DB``..``MAX_GAIN_DB``, and
  a peak limiter keeps every sample within ``PEAK_LIMIT`` of full scale, so a loud speaker
  is never clipped and a quiet one is raised without pumping up the pauses.

Both halves are switchable at run time (``front_end.noise_suppression = False``). Digital
silence in gives digital silence out; the output is always finite int16. Pure: no I/O, no
clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from echomesh_trio.audio.pcm import Pcm, check_frame
from echomesh_trio.media import FRAME_SAMPLES

RNNOISE_FRAME = 480
"""RNNoise's frame: 10 ms at 48 kHz (it only works at 48 kHz)."""

RNNOISE_DELAY = 2 * RNNOISE_FRAME
"""RNNoise 0.2's output lags its input by 20 ms (measured by cross-correlation on speech:
960 samples; one frame of overlap-add plus one of the network's look-ahead)."""

MAX_ATTENUATION_DB = 14.0
"""Noise suppression removes at most this much: the output is RNNoise's plus the input
(delayed to match) at -14 dB. RNNoise alone mangles speech it finds unfamiliar (wideband
PESQ of clean espeak-ng speech through it 1.2-1.5, of a natural recording 3.3); with this
floor 3.2-3.8 and 4.3, while at 10 dB SNR PESQ stays at or above RNNoise alone on
synthetic speech (1.54-1.59 against 1.36-1.42) and STOI rises (0.84-0.88 against
0.78-0.87). Measured with bench/quality_set.py's speech and room noise."""

TARGET_DBFS = -26.0
"""Active speech level the AGC aims at (what PESQ material and most VoIP clients use)."""

MAX_GAIN_DB = 24.0
"""Most the AGC raises a quiet speaker (a laptop microphone across the room)."""

MIN_GAIN_DB = -12.0
"""Most it lowers a loud one (the limiter handles single peaks)."""

GAIN_UP_DB_PER_FRAME = 0.3
"""15 dB/s: slow enough that breaths and word endings are not pumped up."""

GAIN_DOWN_DB_PER_FRAME = 2.0
"""100 dB/s: a speaker who gets louder is brought down within a syllable."""

PEAK_LIMIT = 0.891
"""-1 dBFS: the limiter keeps every output sample within this fraction of full scale."""

SPEECH_PROBABILITY = 0.5
"""RNNoise voice probability above which a frame counts as speech for the AGC."""

LEVEL_ATTACK = 0.3
LEVEL_RELEASE = 0.05
"""Smoothing of the tracked speech level towards louder and quieter frames."""

NOISE_MARGIN_DB = 10.0
"""Without RNNoise, a frame this far above the tracked floor counts as speech for the AGC."""

_FULL_SCALE = 32768.0
_SILENT_DBFS = -96.0


class NoiseSuppressionUnavailableError(RuntimeError):
    """The RNNoise library cannot be loaded; the message says how to install it."""


def _find_rnnoise() -> str | None:
    # The pyrnnoise wheel's library, found without importing the package (see module doc).
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            for name in ("librnnoise.so", "librnnoise.dylib", "rnnoise.dll"):
                path = Path(folder) / name
                if path.exists():
                    return str(path)
    return ctypes.util.find_library("rnnoise")


_rnnoise: Any = None


def load_rnnoise() -> Any:
    """Load librnnoise once; raise :class:`NoiseSuppressionUnavailableError` if it is missing."""
    global _rnnoise
    if _rnnoise is None:
        path = _find_rnnoise()
        if path is None:
            raise NoiseSuppressionUnavailableError(
                "Noise suppression needs RNNoise: install the client dependencies "
                "(`pip install pyrnnoise --no-deps`, or `make setup`), or turn it off "
                "(FrontEnd(noise_suppression=False))."
            )
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise NoiseSuppressionUnavailableError(f"cannot load {path}: {exc}") from exc
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.restype = None
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        lib.rnnoise_process_frame.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_float),
            ctypes.POINTER(ctypes.c_float),
        ]
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        if lib.rnnoise_get_frame_size() != RNNOISE_FRAME:
            raise NoiseSuppressionUnavailableError(f"{path}: unexpected RNNoise frame size")
        _rnnoise = lib
    return _rnnoise


class NoiseSuppressor:
    """RNNoise on 20 ms frames (two 10 ms RNNoise frames each); output lags by 20 ms."""

    def __init__(self) -> None:
        self._lib = load_rnnoise()
        self._state: int | None = self._lib.rnnoise_create(None)
        if not self._state:
            raise NoiseSuppressionUnavailableError("rnnoise_create failed")
        self._in = np.zeros(RNNOISE_FRAME, dtype=np.float32)
        self._out = np.zeros(RNNOISE_FRAME, dtype=np.float32)
        self._in_ptr = self._in.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self.resets = 0
        """Times the network's state went non-finite and was rebuilt (never seen with int16
        input; a guard, because one NaN would otherwise silence the stream for good)."""

    def process(self, samples: np.ndarray) -> tuple[np.ndarray, float]:
        """Denoise a multiple of 480 samples (float32 in int16 scale); return the denoised
        samples and the highest voice probability among its RNNoise frames."""
        out = np.empty(samples.shape[0], dtype=np.float32)
        probability = 0.0
        for start in range(0, samples.shape[0], RNNOISE_FRAME):
            self._in[:] = samples[start : start + RNNOISE_FRAME]
            p = float(self._lib.rnnoise_process_frame(self._state, self._out_ptr, self._in_ptr))
            if not (math.isfinite(p) and np.isfinite(self._out).all()):
                self._reset()
                self._out[:] = 0.0
                p = 0.0
            out[start : start + RNNOISE_FRAME] = self._out
            probability = max(probability, p)
        return out, probability

    def _reset(self) -> None:
        self.resets += 1
        self.close()
        self._state = self._lib.rnnoise_create(None)

    def close(self) -> None:
        if self._state:
            self._lib.rnnoise_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass


def _dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return _SILENT_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    return max(_SILENT_DBFS, 20.0 * math.log10(rms / _FULL_SCALE)) if rms > 0 else _SILENT_DBFS


class GainControl:
    """Speech-level AGC with slew-limited gain and a peak limiter (see the module doc)."""

    def __init__(
        self,
        *,
        target_dbfs: float = TARGET_DBFS,
        max_gain_db: float = MAX_GAIN_DB,
        min_gain_db: float = MIN_GAIN_DB,
    ) -> None:
        if not min_gain_db <= 0.0 <= max_gain_db:
            raise ValueError("need min_gain_db <= 0 <= max_gain_db")
        self._target = target_dbfs
        self._max = max_gain_db
        self._min = min_gain_db
        self._gain_db = 0.0
        self._applied = 1.0  # linear gain at the end of the last frame (ramps start here)
        self._speech_level: float | None = None
        self._noise = -70.0

    @property
    def gain_db(self) -> float:
        """The gain the AGC aims at now (before the limiter)."""
        return self._gain_db

    def is_speech(self, level: float) -> bool:
        """Energy rule used when no voice probability is given: far above the noise floor."""
        if level < self._noise:
            self._noise += 0.5 * (level - self._noise)
        else:
            self._noise += 0.01 * (level - self._noise)
        return level > max(-60.0, self._noise + NOISE_MARGIN_DB)

    def process(self, samples: np.ndarray, speech: bool | None = None) -> np.ndarray:
        """Apply the gain to one frame (float32 in int16 scale); ``speech`` None: decide by
        level. The result stays within ``PEAK_LIMIT`` of full scale."""
        level = _dbfs(samples)
        if speech is None:
            speech = self.is_speech(level)
        if speech and level > _SILENT_DBFS:
            if self._speech_level is None:
                self._speech_level = level
            else:
                alpha = LEVEL_ATTACK if level > self._speech_level else LEVEL_RELEASE
                self._speech_level += alpha * (level - self._speech_level)
            wanted = min(self._max, max(self._min, self._target - self._speech_level))
            step = wanted - self._gain_db
            step = min(GAIN_UP_DB_PER_FRAME, max(-GAIN_DOWN_DB_PER_FRAME, step))
            self._gain_db += step
        gain = 10.0 ** (self._gain_db / 20.0)
        limit = PEAK_LIMIT * _FULL_SCALE
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        if peak * gain > limit:
            gain = limit / peak  # this frame only: the limiter, not the AGC's aim
        ramp = np.linspace(self._applied, gain, samples.shape[0], dtype=np.float32)
        self._applied = gain
        return np.clip(samples * ramp, -limit, limit)


@dataclass(frozen=True, slots=True)
class FrontEndStatistics:
    """Counters of one front end; ``speech_probability`` is RNNoise's for the last frame."""

    frames: int
    noise_suppression: bool
    agc: bool
    gain_db: float
    speech_probability: float
    resets: int


class FrontEnd:
    """Noise suppression then gain control, on 20 ms int16 frames at 48 kHz."""

    def __init__(
        self,
        *,
        noise_suppression: bool = True,
        agc: bool = True,
        gain_control: GainControl | None = None,
        max_attenuation_db: float = MAX_ATTENUATION_DB,
    ) -> None:
        if not max_attenuation_db > 0:
            raise ValueError("max_attenuation_db must be positive")
        self._floor = 10.0 ** (-max_attenuation_db / 20.0)
        self._delayed = np.zeros(RNNOISE_DELAY, dtype=np.float32)  # input, to match RNNoise
        self._suppressor: NoiseSuppressor | None = None
        self._noise_suppression = False
        self.noise_suppression = noise_suppression
        self.agc = agc
        """Whether gain control runs (switchable at any time)."""
        self.gain = gain_control if gain_control is not None else GainControl()
        self._frames = 0
        self._probability = 0.0
        self._resets = 0

    @property
    def noise_suppression(self) -> bool:
        """Whether RNNoise runs. Turning it on loads RNNoise (and may raise
        :class:`NoiseSuppressionUnavailableError`); its state starts fresh."""
        return self._noise_suppression

    @noise_suppression.setter
    def noise_suppression(self, on: bool) -> None:
        if on and self._suppressor is None:
            self._suppressor = NoiseSuppressor()
            self._delayed[:] = 0.0
        elif not on and self._suppressor is not None:
            self._resets += self._suppressor.resets
            self._suppressor.close()
            self._suppressor = None
        self._noise_suppression = bool(on)

    @property
    def delay_samples(self) -> int:
        """How far the output lags the input (RNNoise's 20 ms when it runs)."""
        return RNNOISE_DELAY if self._suppressor is not None else 0

    @property
    def speech_probability(self) -> float:
        """RNNoise's voice probability for the last frame (0 when it is off)."""
        return self._probability

    def process(self, pcm: Pcm) -> Pcm:
        """Clean one captured 20 ms frame; returns a new int16 frame of the same size."""
        check_frame(pcm)
        self._frames += 1
        samples = pcm.astype(np.float32)
        speech: bool | None = None
        if self._suppressor is not None:
            denoised, self._probability = self._suppressor.process(samples)
            # The input, delayed as RNNoise delays its output, mixed in at the floor.
            line = np.concatenate([self._delayed, samples])
            self._delayed = line[-RNNOISE_DELAY:]
            samples = (1.0 - self._floor) * denoised + self._floor * line[: samples.shape[0]]
            speech = self._probability >= SPEECH_PROBABILITY
        else:
            self._probability = 0.0
        if self.agc:
            samples = self.gain.process(samples, speech)
        out = np.clip(np.rint(samples), -32768, 32767).astype(np.int16)
        assert out.shape[0] == FRAME_SAMPLES
        return out

    def statistics(self) -> FrontEndStatistics:
        resets = self._resets + (self._suppressor.resets if self._suppressor else 0)
        return FrontEndStatistics(
            frames=self._frames,
            noise_suppression=self._noise_suppression,
            agc=self.agc,
            gain_db=self.gain.gain_db,
            speech_probability=self._probability,
            resets=resets,
        )
