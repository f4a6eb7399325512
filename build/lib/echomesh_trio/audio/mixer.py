"""Mix any number of speakers into one output block, with per-speaker gain and a soft limiter.

Summing int16 streams can exceed full scale; wrapping would turn a loud moment into a burst of
noise and hard clipping into harsh distortion. The limiter is linear below a knee and bends
smoothly (tanh) towards full scale above it, so the output never clips. Pure, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from echomesh_trio.audio.pcm import Pcm

FULL_SCALE = 32767.0
KNEE = 0.8
"""Below 80 % of full scale the mix is untouched; above, it is compressed smoothly."""

MAX_GAIN = 4.0
"""+12 dB: enough to lift a quiet speaker; more would only amplify their noise."""


def soft_limit(mix: npt.NDArray[np.float32]) -> Pcm:
    """Map float samples (int16 scale) into int16 without wrap-around or hard clipping."""
    knee = KNEE * FULL_SCALE
    room = FULL_SCALE - knee
    mag = np.abs(mix)
    over = mag > knee
    if over.any():
        bent = knee + room * np.tanh((mag[over] - knee) / room)
        mix = mix.copy()
        mix[over] = np.sign(mix[over]) * bent
    return np.clip(np.rint(mix), -32768, 32767).astype(np.int16)


@dataclass(frozen=True, slots=True)
class MixerStatistics:
    blocks: int
    limited_blocks: int
    """Blocks in which the limiter bent at least one sample (a "too loud" indicator)."""


class Mixer:
    """Sums speakers' blocks with a gain per speaker (keyed by anything hashable)."""

    def __init__(self) -> None:
        self._gains: dict[Hashable, float] = {}
        self._blocks = 0
        self._limited = 0

    def set_gain(self, speaker: Hashable, gain: float) -> None:
        """Linear gain, 0 (muted) to ``MAX_GAIN``; non-finite values mean muted."""
        self._gains[speaker] = min(MAX_GAIN, max(0.0, gain)) if math.isfinite(gain) else 0.0

    def gain(self, speaker: Hashable) -> float:
        return self._gains.get(speaker, 1.0)

    def mix(self, blocks: Iterable[tuple[Hashable, Pcm]], samples: int) -> Pcm:
        """Mix ``(speaker, block)`` pairs into ``samples`` samples (shorter blocks are padded)."""
        acc = np.zeros(samples, dtype=np.float32)
        for speaker, block in blocks:
            g = self.gain(speaker)
            if g == 0.0:
                continue
            n = min(samples, block.shape[0])
            acc[:n] += block[:n].astype(np.float32) * g
        self._blocks += 1
        if float(np.max(np.abs(acc), initial=0.0)) > KNEE * FULL_SCALE:
            self._limited += 1
        return soft_limit(acc)

    def statistics(self) -> MixerStatistics:
        return MixerStatistics(blocks=self._blocks, limited_blocks=self._limited)
