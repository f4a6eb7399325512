"""Messages sent but not yet acknowledged, pure: what makes chat exactly-once.

Every chat and direct message gets a ``client_msg_id`` when the application sends it and
stays here until the server's acknowledgement (our own copy of the stored message) comes
back. When the connection drops, every message sent on it and not acknowledged goes back
to the queue and is sent again, in the original order, on the next connection with the
same id: the server stores a message once per (user, client_msg_id) and answers a resend
with the stored copy, so exactly one copy exists whatever was lost on the way. A message
sent while offline simply waits in the queue. The queue is bounded (``OutboxFull``).

Messages go out one at a time, each after the previous one's answer, so the conversation
keeps its order; a rate-limit answer holds back the whole queue until the server's retry
time; any other refusal is final.
"""

from __future__ import annotations

import enum
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from echomesh_trio.protocol import events as ev

DEFAULT_CAPACITY: Final = 1_000
"""Unacknowledged messages a client holds (at 10 messages/s, the server's default chat
rate, 100 s of typing while offline)."""

Message = ev.SendChat | ev.SendDirect


class OutboxFull(Exception):
    def __init__(self, capacity: int) -> None:
        super().__init__(
            f"{capacity} messages are waiting to be sent; wait until the connection is back"
        )


class State(enum.Enum):
    QUEUED = "queued"
    SENT = "sent"


@dataclass(slots=True)
class Pending:
    message: Message
    state: State = State.QUEUED
    generation: int = 0
    """The connection it was last sent on (see ``Outbox.connected``)."""
    request_id: int = 0

    @property
    def client_msg_id(self) -> str:
        return self.message.client_msg_id


def new_client_msg_id() -> str:
    return uuid.uuid4().hex


class Outbox:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self.generation = 0
        """Counts connections; 0 until the first."""
        self.online = False
        self.hold_until = 0.0
        self.resent = 0

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, client_msg_id: str) -> bool:
        return client_msg_id in self._pending

    def pending(self) -> list[Pending]:
        return list(self._pending.values())

    def add(self, message: Message) -> Pending:
        """Queue a message (with a fresh client_msg_id if it has none)."""
        if len(self._pending) >= self.capacity:
            raise OutboxFull(self.capacity)
        if not message.client_msg_id:
            message = _with_id(message, new_client_msg_id())
        if message.client_msg_id in self._pending:
            raise ValueError(f"client_msg_id {message.client_msg_id!r} is already pending")
        pending = Pending(message)
        self._pending[message.client_msg_id] = pending
        return pending

    # ---------------------------------------------------------------- connection
    def connected(self) -> int:
        """A new connection is logged in; returns its generation."""
        self.generation += 1
        self.online = True
        return self.generation

    def disconnected(self) -> None:
        """The connection is gone: whatever was sent on it and not acknowledged is queued
        again, in its original order."""
        self.online = False
        for pending in self._pending.values():
            if pending.state is State.SENT:
                pending.state = State.QUEUED
                pending.request_id = 0
                self.resent += 1

    # ---------------------------------------------------------------- sending
    def next_to_send(self, now: float) -> Pending | None:
        """The oldest message, if it may be sent now: online, not held back, and nothing
        in flight (one at a time keeps the order even when the server refuses one for its
        rate; the server's chat budget, 10/s, is far below one per round trip)."""
        if not self.online or now < self.hold_until:
            return None
        for pending in self._pending.values():
            return pending if pending.state is State.QUEUED else None
        return None

    def sent(self, client_msg_id: str, request_id: int) -> None:
        pending = self._pending.get(client_msg_id)
        if pending is not None and self.online:
            pending.state = State.SENT
            pending.generation = self.generation
            pending.request_id = request_id

    # ---------------------------------------------------------------- answers
    def acknowledged(self, client_msg_id: str) -> Pending | None:
        """The server stored it; returns the message the first time (None for an ack of
        something no longer pending, such as the answer to a resend already answered)."""
        return self._pending.pop(client_msg_id, None)

    def by_request(self, request_id: int) -> Pending | None:
        """The message sent on this connection with ``request_id``."""
        if not request_id:
            return None
        for pending in self._pending.values():
            if (
                pending.state is State.SENT
                and pending.request_id == request_id
                and pending.generation == self.generation
            ):
                return pending
        return None

    def refused(self, client_msg_id: str) -> Pending | None:
        """The server refused it for good: it leaves the queue."""
        return self._pending.pop(client_msg_id, None)

    def rate_limited(self, client_msg_id: str, until: float) -> None:
        """Send it again, and nothing after it before, ``until``."""
        pending = self._pending.get(client_msg_id)
        if pending is not None:
            pending.state = State.QUEUED
            pending.request_id = 0
        self.hold_until = max(self.hold_until, until)


def _with_id(message: Message, client_msg_id: str) -> Message:
    if isinstance(message, ev.SendChat):
        return ev.SendChat(message.room_id, message.content, client_msg_id)
    return ev.SendDirect(message.content, message.to_user_id, message.to_username, client_msg_id)
