"""The client's event queue, pure: bounded, ordered, coalescing state updates.

Two kinds of events go through it. State updates (input level, link statistics, talk and
transmit state, typing; ``events.coalesce_key``) replace an unread update with the same key
in place, so a reader that falls behind sees the newest state at the position of the first
unread one, and their number in the queue is bounded by the number of keys. Everything else
(chat, direct messages, membership, errors, connection state) is delivered, each one, in
order; ``full`` tells the producer to wait (the Trio adapter in ``core.py`` then stops
reading the connection, which pushes back on the server) instead of dropping anything.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Generic, TypeVar

from echomesh_trio.client.events import ClientEvent, coalesce_key

DEFAULT_CAPACITY: Final = 10_000
"""Events that must each be delivered, held for a reader that falls behind."""

T = TypeVar("T")


class _Slot(Generic[T]):
    __slots__ = ("event", "key")

    def __init__(self, event: T, key: object | None) -> None:
        self.event = event
        self.key = key


class EventQueue:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._slots: deque[_Slot[ClientEvent]] = deque()
        self._by_key: dict[object, _Slot[ClientEvent]] = {}
        self._must_deliver = 0
        self.coalesced = 0
        """State updates replaced by a newer one before they were read."""

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def full(self) -> bool:
        """No room for another event that must be delivered."""
        return self._must_deliver >= self.capacity

    def put(self, event: ClientEvent) -> None:
        """Queue ``event``. A state update is always accepted; call only when not ``full``
        for the others (past capacity they are still kept: nothing is ever dropped)."""
        key = coalesce_key(event)
        if key is not None:
            slot = self._by_key.get(key)
            if slot is not None:
                slot.event = event
                self.coalesced += 1
                return
            slot = _Slot(event, key)
            self._by_key[key] = slot
        else:
            slot = _Slot(event, None)
            self._must_deliver += 1
        self._slots.append(slot)

    def get(self) -> ClientEvent | None:
        """The oldest event, or None when empty."""
        if not self._slots:
            return None
        slot = self._slots.popleft()
        if slot.key is not None:
            del self._by_key[slot.key]
        else:
            self._must_deliver -= 1
        return slot.event
