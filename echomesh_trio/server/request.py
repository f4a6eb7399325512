"""One request being handled: who sent it, its ``request_id``, and how to answer it.

Every handler in ``server/features/`` takes the service and a ``Request``; replies go
through ``reply``/``fail`` so that each one carries the request's ``request_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from echomesh_trio.protocol import events as ev
from echomesh_trio.server.connection import Connection
from echomesh_trio.server.state import Session

R = TypeVar("R", covariant=True)
T = TypeVar("T")

QUOTE_LIMIT = 40
"""Characters of a peer-supplied name quoted back in an error message. A request may be
almost 64 KiB; quoting it whole could push the reply over the frame limit."""


def quoted(text: str) -> str:
    """``text`` for an error message: repr-quoted, at most QUOTE_LIMIT characters of it."""
    if len(text) <= QUOTE_LIMIT:
        return repr(text)
    return repr(text[:QUOTE_LIMIT]) + f"… ({len(text)} characters)"


# Error messages used by more than one handler; each quotes the peer's input with quoted().
def not_in_room(room: str) -> str:
    return f"you are not in room {quoted(room)}"


def no_such_room(room: str) -> str:
    return f"no room named {quoted(room)}"


CLIENT_ID_REUSED = "client_msg_id reused for a different message"


def chunks(items: Iterable[T], size: int) -> list[tuple[T, ...]]:
    """``items`` in tuples of at most ``size``; always at least one (maybe empty) tuple."""
    seq = tuple(items)
    return [seq[i : i + size] for i in range(0, len(seq), size)] or [()]


@dataclass(frozen=True, slots=True)
class Request(Generic[R]):
    """A request from a logged-in session."""

    conn: Connection
    session: Session[Connection]
    request_id: int
    event: R

    def reply(self, notice: ev.ServerNotice) -> None:
        self.conn.send_nowait(notice, self.request_id)

    def fail(self, code: ev.ErrorCode, message: str, retry_after_s: float = 0.0) -> None:
        self.conn.send_nowait(ev.ErrorReply(code, message, retry_after_s), self.request_id)

    def reply_in_parts(
        self,
        items: Iterable[T],
        per_frame: int,
        make: Callable[[tuple[T, ...], bool], ev.ServerNotice],
    ) -> None:
        """Send a list that may not fit one frame: ``make(part, more)`` for each part, all
        with this request's id, ``more`` true on every part but the last."""
        parts = chunks(items, per_frame)
        for i, part in enumerate(parts, 1):
            self.reply(make(part, i < len(parts)))


MEMBERS_PER_FRAME = 256
"""Members per RoomSnapshot or PresenceSnapshot frame: a member encodes to at most ~160
bytes (a 32-character name of 4-byte characters), so 256 stay far below MAX_FRAME_SIZE."""

ROOMS_PER_FRAME = 128
"""Rooms per RoomListing frame: a room name is at most 64 characters (~270 bytes)."""
