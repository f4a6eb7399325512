"""Sliding-window replay protection (RFC 3711, section 3.3.2), pure.

Indices are the 64-bit AEAD nonce counters, which the sender never reuses, so there is no
roll-over to estimate as in SRTP. `check` runs before authentication (cheap rejection);
`accept` only after it, so a forged packet can never move the window. The one window of
EchoMesh: the relay keeps one per member (on its hot path), the client's `Opener` one per
session.
"""

from __future__ import annotations

from typing import Final

from .packet import DropReason

REPLAY_WINDOW_SIZE: Final = 128
"""Packets of reordering tolerated. The server->client counter advances once per packet
sent to that client (4 speakers x 50 pps = 200/s), so 128 is ~640 ms of reordering; twice
what RFC 3711 asks as a minimum."""


class ReplayWindow:
    __slots__ = ("_bits", "_mask", "size", "top")

    def __init__(self, size: int = REPLAY_WINDOW_SIZE) -> None:
        if size < 1:
            raise ValueError("window size must be positive")
        self.size = size
        self._mask = (1 << size) - 1
        self.top = 0  # highest accepted index; 0 = none yet (counters start at 1)
        self._bits = 0  # bit i set: index top - i was accepted

    def check(self, index: int) -> DropReason | None:
        """None if `index` may be new, else why not. Does not change the window."""
        if index > self.top:
            return None
        offset = self.top - index
        if offset >= self.size:
            return DropReason.TOO_OLD
        if (self._bits >> offset) & 1:
            return DropReason.REPLAYED
        return None

    def accept(self, index: int) -> None:
        """Record an authenticated index that `check` allowed."""
        top = self.top
        if index > top:
            shift = index - top
            self._bits = ((self._bits << shift) | 1) & self._mask if shift < self.size else 1
            self.top = index
        else:
            self._bits |= 1 << (top - index)
