"""Who is talking, pure: per speaker, speaking from the first packet of a talk spurt and
silent after its end-of-spurt marker or ``SILENT_AFTER_S`` without packets.

It follows packet arrival, not playout, so an indicator lights as soon as the first packet
is in (before the jitter buffer has played it) and does not wait for the buffer to drain.
"""

from __future__ import annotations

from typing import Final

SILENT_AFTER_S: Final = 0.3
"""No packet this long: the speaker stopped (a lost end-of-spurt marker, or a crash). DTX
keeps sending a packet every 400 ms in silence, but a sender never gets there: its gate
closes with a marker first."""


class TalkTracker:
    def __init__(self, silent_after_s: float = SILENT_AFTER_S) -> None:
        self.silent_after_s = silent_after_s
        self._last: dict[int, float] = {}

    @property
    def speaking(self) -> frozenset[int]:
        return frozenset(self._last)

    def packet(self, source_id: int, now: float, *, end_of_spurt: bool) -> bool | None:
        """A packet arrived; returns the new state if it changed (True: started)."""
        was = source_id in self._last
        if end_of_spurt:
            self._last.pop(source_id, None)
            return False if was else None
        self._last[source_id] = now
        return None if was else True

    def tick(self, now: float) -> list[int]:
        """Speakers who went silent by time (call every ~50 ms)."""
        gone = [s for s, t in self._last.items() if now - t >= self.silent_after_s]
        for source_id in gone:
            del self._last[source_id]
        return gone

    def forget(self, source_id: int) -> bool:
        """The speaker left; True if they were speaking."""
        return self._last.pop(source_id, None) is not None
