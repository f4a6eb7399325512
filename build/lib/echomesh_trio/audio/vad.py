"""Energy-based voice activity detection with hangover, and the input level for a meter.

Speech is declared when a frame's energy stands clearly above a noise floor that the detector
tracks itself (fast down, slow up, so speech does not raise it). A hangover of ~200 ms keeps
transmission on through the short gaps between words, as Mumble's voice hold does. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from echomesh_trio.audio.pcm import Pcm
from echomesh_trio.media import FRAME_MS

SILENCE_DBFS = -96.0
DEFAULT_HANGOVER_MS = 200
DEFAULT_MARGIN_DB = 12.0
"""Speech must be this far above the noise floor."""
ABSOLUTE_FLOOR_DBFS = -55.0
"""Anything quieter is never speech, however quiet the room."""


def level_dbfs(pcm: Pcm) -> float:
    """RMS level of a block in dB relative to full scale (-96 for digital silence)."""
    if pcm.size == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(np.square(pcm.astype(np.float64)))))
    return max(SILENCE_DBFS, 20.0 * math.log10(rms / 32768.0)) if rms > 0 else SILENCE_DBFS


def meter(dbfs: float, floor: float = -60.0) -> float:
    """A level in 0..1 for a meter widget: ``floor`` dBFS and below is 0, full scale is 1."""
    return min(1.0, max(0.0, (dbfs - floor) / -floor))


@dataclass(frozen=True, slots=True)
class VadState:
    """Result for one frame."""

    active: bool
    level_dbfs: float
    noise_floor_dbfs: float


class VoiceActivityDetector:
    """Decides per 20 ms frame whether to transmit (voice-activated transmission)."""

    def __init__(
        self,
        *,
        hangover_ms: int = DEFAULT_HANGOVER_MS,
        margin_db: float = DEFAULT_MARGIN_DB,
        threshold_dbfs: float | None = None,
    ) -> None:
        self._hangover = max(0, hangover_ms // FRAME_MS)
        self._margin = margin_db
        self._fixed = threshold_dbfs
        self._noise = -70.0
        self._hold = 0
        self._level = SILENCE_DBFS

    @property
    def level(self) -> float:
        """Level of the last frame, for the input meter (see :func:`meter`)."""
        return self._level

    def process(self, pcm: Pcm) -> VadState:
        level = level_dbfs(pcm)
        self._level = level
        # Noise floor: follow quieter frames at once-ish, louder ones only very slowly.
        if level < self._noise:
            self._noise += 0.5 * (level - self._noise)
        else:
            self._noise += 0.01 * (level - self._noise)
        if self._fixed is not None:
            threshold = self._fixed
        else:
            threshold = max(ABSOLUTE_FLOOR_DBFS, self._noise + self._margin)
        if level >= threshold:
            self._hold = self._hangover + 1
        active = self._hold > 0
        if self._hold:
            self._hold -= 1
        return VadState(active=active, level_dbfs=level, noise_floor_dbfs=self._noise)
