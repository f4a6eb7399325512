"""Length-prefixed framing for the control channel (sans-IO).

Every frame is a 4-byte big-endian length followed by that many bytes of one serialized
``EchoMsg``. The decoder is fed whatever the transport delivered and yields whole frame
bodies; it never touches a socket, a clock or Trio.
"""

from __future__ import annotations

import struct

from echomesh_trio.protocol.errors import FrameTooLarge

MAX_FRAME_SIZE = 64 * 1024
"""Largest frame body accepted or produced.

A chat message is at most 5,000 characters (up to 20 KB of UTF-8) and a history batch is
sent as one frame per message window, so 64 KiB leaves room while bounding what one peer
can make us buffer before we have parsed anything.
"""

_LENGTH = struct.Struct(">I")
LENGTH_PREFIX_SIZE = _LENGTH.size


def encode_frame(body: bytes) -> bytes:
    """Prefix ``body`` with its length. Refusing to build an oversize frame is a local bug."""
    if len(body) > MAX_FRAME_SIZE:
        raise ValueError(f"frame body of {len(body)} bytes exceeds {MAX_FRAME_SIZE}")
    return _LENGTH.pack(len(body)) + body


class FrameDecoder:
    """Turns a byte stream into frame bodies, checking the size as soon as a prefix is read."""

    __slots__ = ("_buffer", "_max_size", "_need")

    def __init__(self, max_size: int = MAX_FRAME_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size
        self._need: int | None = None  # body length of the frame being read, once known

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add received bytes; return every frame body completed by them, in order.

        Raises FrameTooLarge the moment a length prefix over the limit is seen, before any
        of that frame's body is buffered. After an error the decoder must not be fed again.
        """
        self._buffer += data
        frames: list[bytes] = []
        buffer = self._buffer
        start = 0
        while True:
            if self._need is None:
                if len(buffer) - start < LENGTH_PREFIX_SIZE:
                    break
                (length,) = _LENGTH.unpack_from(buffer, start)
                if length > self._max_size:
                    raise FrameTooLarge(length, self._max_size)
                self._need = length
                start += LENGTH_PREFIX_SIZE
            if len(buffer) - start < self._need:
                break
            end = start + self._need
            frames.append(bytes(buffer[start:end]))
            start = end
            self._need = None
        if start:
            del buffer[:start]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole frame."""
        return len(self._buffer)
