"""Sample-rate conversion for devices that do not run at 48 kHz, and a sample FIFO.

Streams use ``soxr.ResampleStream``, which keeps its filter state across blocks, so block
joins are seamless. Quality "LQ": measured here at 44.1 <-> 48 kHz it is flat to 15 kHz
(-3.5 dB at 18 kHz) with over 110 dB SNR on tones, and with 5 ms blocks it holds back at
most 0.5 ms (44.1 -> 48) or 10 ms (48 -> 44.1); "HQ" holds back up to 21 ms in both
directions, because soxr works in larger internal blocks. A whole file is converted at once,
in "HQ".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from echomesh_trio.audio.pcm import Pcm

STREAM_QUALITY = "LQ"
FILE_QUALITY = "HQ"


def to_int16(x: npt.NDArray[np.floating]) -> Pcm:
    """Round and saturate float samples on the int16 scale."""
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def resample_whole(x: npt.NDArray[np.float32], rate_from: int, rate_to: int) -> Pcm:
    """Convert a whole recording (float samples on the int16 scale) to int16 at ``rate_to``."""
    if rate_from == rate_to:
        return to_int16(x)
    return to_int16(soxr.resample(x, rate_from, rate_to, quality=FILE_QUALITY))


class StreamResampler:
    """int16 mono blocks at ``rate_in`` in, int16 at ``rate_out`` out, state kept between
    blocks; the output of one call may be shorter or longer than the input's share, never
    lost. Identity when the rates are equal."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in = rate_in
        self.rate_out = rate_out
        self._stream = (
            None
            if rate_in == rate_out
            else soxr.ResampleStream(rate_in, rate_out, 1, dtype="int16", quality=STREAM_QUALITY)
        )

    def process(self, pcm: Pcm) -> Pcm:
        if self._stream is None:
            return pcm
        return np.asarray(self._stream.resample_chunk(pcm), dtype=np.int16)


class SampleFifo:
    """Samples in, blocks of a fixed size out."""

    def __init__(self) -> None:
        self._parts: list[Pcm] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, pcm: Pcm) -> None:
        if pcm.shape[0]:
            self._parts.append(pcm)
            self._size += pcm.shape[0]

    def pop(self, samples: int) -> Pcm | None:
        """The next ``samples`` samples, or None while fewer are buffered."""
        if self._size < samples:
            return None
        data = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        block, rest = data[:samples], data[samples:]
        self._parts = [rest] if rest.shape[0] else []
        self._size = rest.shape[0]
        return block

    def clear(self) -> None:
        self._parts = []
        self._size = 0
