"""Voice payload format: the current Opus frame plus copies of the frames before it.

In the spirit of RFC 2198, each packet may repeat up to ``MAX_REDUNDANT`` previous frames so
that a burst of that many lost packets is rebuilt at full quality from the next packet.
Layout (all payloads use it; zero copies costs one byte)::

    byte 0      : number of copies k (0..3); the other bits must be zero (format version 0)
    2k bytes    : big-endian lengths of the copies, frame n-1 first (0 = no copy, e.g. DTX)
    copies      : frame n-1, ..., frame n-k
    the rest    : the primary Opus frame n (at least one byte)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

MAX_REDUNDANT = 3
MAX_OPUS_FRAME = 1275
"""RFC 6716: the largest Opus frame."""


class RedundancyError(ValueError):
    """A voice payload does not follow the format (the sender's fault)."""


def pack(primary: bytes, redundant: Sequence[bytes] = ()) -> bytes:
    """Build a payload: ``primary`` is frame n, ``redundant[i]`` is frame n-1-i."""
    if not primary or len(primary) > MAX_OPUS_FRAME:
        raise ValueError("primary frame must be 1..1275 bytes")
    if len(redundant) > MAX_REDUNDANT:
        raise ValueError(f"at most {MAX_REDUNDANT} redundant frames")
    header = bytearray([len(redundant)])
    for block in redundant:
        if len(block) > MAX_OPUS_FRAME:
            raise ValueError("redundant frame too long")
        header += len(block).to_bytes(2, "big")
    return bytes(header) + b"".join(redundant) + primary


def parse_untrusted(data: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """Split a received payload into (primary, copies); raise :class:`RedundancyError`."""
    if not data:
        raise RedundancyError("empty payload")
    count = data[0]
    if count > MAX_REDUNDANT:
        raise RedundancyError(f"bad header byte {count:#x}")
    pos = 1 + 2 * count
    if len(data) <= pos:
        raise RedundancyError("truncated header")
    lengths = [int.from_bytes(data[1 + 2 * i : 3 + 2 * i], "big") for i in range(count)]
    copies = []
    for length in lengths:
        if length > MAX_OPUS_FRAME or pos + length >= len(data):
            raise RedundancyError("copy length exceeds the payload")
        copies.append(data[pos : pos + length])
        pos += length
    primary = data[pos:]
    if len(primary) > MAX_OPUS_FRAME:
        raise RedundancyError("primary frame too long")
    return primary, tuple(copies)


class RedundancyPacker:
    """Sender side: wraps each new frame with copies of the previous ``depth`` frames."""

    def __init__(self, depth: int = 0) -> None:
        if not 0 <= depth <= MAX_REDUNDANT:
            raise ValueError(f"depth must be 0..{MAX_REDUNDANT}")
        self._history: deque[bytes] = deque(maxlen=depth) if depth else deque(maxlen=0)

    def wrap(self, primary: bytes) -> bytes:
        """Payload for a frame that is sent; remember it for the next packets."""
        payload = pack(primary, list(self._history))
        if self._history.maxlen:
            self._history.appendleft(primary)
        return payload

    def skip(self) -> None:
        """A frame was not sent (DTX): the next packets carry an empty copy for it."""
        if self._history.maxlen:
            self._history.appendleft(b"")
