"""The PCM type every audio module passes around, and the check of one 20 ms frame."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from echomesh_trio.media import FRAME_SAMPLES

Pcm = npt.NDArray[np.int16]
"""Mono 16-bit PCM at ``media.SAMPLE_RATE``: one frame (``FRAME_SAMPLES``) or a device block."""


def check_frame(pcm: Pcm) -> None:
    """Raise ValueError unless ``pcm`` is exactly one frame of int16 samples (a caller's bug)."""
    if pcm.shape != (FRAME_SAMPLES,) or pcm.dtype != np.int16:
        raise ValueError(f"expected {FRAME_SAMPLES} int16 samples, got {pcm.shape} {pcm.dtype}")
