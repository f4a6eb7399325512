"""Speech sources and objective scores for the voice-quality benchmark."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from echomesh_trio.media import SAMPLE_RATE

# Harvard sentences (IEEE 1969), the usual material for speech-quality tests.
SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
]

ACTIVE_RMS = 0.05 * 32767
"""About -26 dBov active speech level, the level ITU-T P.862 material is scaled to."""


def read_wav(path: Path) -> np.ndarray:
    """Read a 16-bit WAV file as mono float64 at ``SAMPLE_RATE``."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE:
        g = np.gcd(rate, SAMPLE_RATE)
        data = resample_poly(data, SAMPLE_RATE // g, rate // g)
    return data


def normalise(signal: np.ndarray) -> np.ndarray:
    """Scale to the active speech level, returned as int16."""
    active = np.abs(signal) > 0.01 * max(1.0, float(np.max(np.abs(signal))))
    rms = float(np.sqrt(np.mean(signal[active] ** 2))) if active.any() else 1.0
    scaled = signal * (ACTIVE_RMS / max(rms, 1e-9))
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def to_16k(signal: np.ndarray) -> np.ndarray:
    return resample_poly(signal.astype(np.float64), 1, 3)


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, chunk_s: float = 10.0) -> float:
    """Wideband PESQ (P.862.2) averaged over chunks (PESQ is made for 8-20 s signals)."""
    from pesq import pesq

    ref, deg = to_16k(reference), to_16k(degraded)
    # Equal chunks near chunk_s long (one for a short utterance).
    chunks = max(1, round(len(ref) / (chunk_s * 16_000)))
    edges = np.linspace(0, len(ref), chunks + 1).astype(int)
    scores = []
    for start, end in itertools.pairwise(edges):
        r, d = ref[start:end], deg[start:end]
        try:
            scores.append(float(pesq(16_000, r, d, "wb")))
        except Exception:  # a chunk without speech ("No utterances detected")
            continue
    return float(np.mean(scores)) if scores else float("nan")


def stoi(reference: np.ndarray, degraded: np.ndarray) -> float:
    from pystoi import stoi as _stoi

    return float(_stoi(to_16k(reference), to_16k(degraded), 16_000, extended=False))
