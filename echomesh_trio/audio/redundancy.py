"""Sender side of frame redundancy, in the spirit of RFC 2198.

Each packet repeats the previous ``depth`` Opus frames, so a burst of that many lost packets
is rebuilt at full quality from the next one (in-band FEC only rebuilds one frame, at lower
quality). The wire format belongs to echomesh_trio/voice/packet.py; this only keeps history.
"""

from __future__ import annotations

from collections import deque

MAX_DEPTH = 3


class RedundancyPacker:
    """Remembers the last ``depth`` frames sent, to attach them to the next packet."""

    def __init__(self, depth: int = 1) -> None:
        if not 0 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be 0..{MAX_DEPTH}")
        self._history: deque[bytes] = deque(maxlen=depth)

    def wrap(self, frame: bytes) -> tuple[bytes, tuple[bytes, ...]]:
        """(frame, copies of frames n-1, n-2, ...) for a frame that is sent."""
        copies = tuple(self._history)
        if self._history.maxlen:
            self._history.appendleft(frame)
        return frame, copies

    def skip(self) -> None:
        """A frame was not sent (DTX): later packets carry an empty copy in its place."""
        if self._history.maxlen:
            self._history.appendleft(b"")
