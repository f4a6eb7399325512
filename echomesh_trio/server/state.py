"""Who is online and who is in which room: plain state, no I/O.

The peer handle stored in each session is opaque here (the server keeps its connection
object there); this module only answers questions and records changes, and the caller
sends whatever notices follow from them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from echomesh_trio.protocol.events import Member, RoomInfo

P = TypeVar("P")

MAX_ROOM_NAME = 64


def room_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a room name, or None when it can."""
    if not name:
        return "room name is empty"
    if len(name) > MAX_ROOM_NAME:
        return f"room name is longer than {MAX_ROOM_NAME} characters"
    if name != name.strip():
        return "room name starts or ends with white space"
    if any(unicodedata.category(c)[0] == "C" for c in name):
        return "room name contains control characters"
    return None


@dataclass(eq=False, slots=True)
class Session(Generic[P]):
    """One logged-in user on one connection."""

    user_id: int
    username: str
    peer: P
    source_id: int = 0
    rooms: list[str] = field(default_factory=list)  # in join order; last = joined last
    watching_presence: bool = False
    voice_room: str | None = None

    def member(self) -> Member:
        return Member(self.user_id, self.username, self.source_id)


class Registry(Generic[P]):
    """Online sessions and room membership."""

    def __init__(self, room_names: Iterable[str] = ()) -> None:
        self.sessions: dict[int, Session[P]] = {}
        self.rooms: dict[str, dict[int, Session[P]]] = {name: {} for name in room_names}

    # -- sessions
    def current(self, user_id: int) -> Session[P] | None:
        return self.sessions.get(user_id)

    def add_session(self, session: Session[P]) -> Session[P] | None:
        """Make ``session`` (new, in no room) the user's only session; return the one it
        replaces, if any.

        The new session takes the replaced one's place: in each of its rooms (in the same
        order) the member is now the new session, so the other members see no change, and
        it has the same voice room. The replaced session is left in no room.
        """
        old = self.sessions.get(session.user_id)
        if old is not None:
            for room in old.rooms:
                self.rooms[room][session.user_id] = session
            session.rooms, old.rooms = old.rooms, []
            session.voice_room, old.voice_room = old.voice_room, None
        self.sessions[session.user_id] = session
        return old

    def remove_session(self, session: Session[P]) -> list[tuple[str, list[Session[P]]]]:
        """Forget ``session``; return each room it was in with the members who remain."""
        if self.sessions.get(session.user_id) is session:
            del self.sessions[session.user_id]
        left = []
        for room in list(session.rooms):
            self.leave(session, room)
            left.append((room, list(self.rooms.get(room, {}).values())))
        return left

    def online(self) -> list[Session[P]]:
        return list(self.sessions.values())

    def presence_watchers(self) -> list[Session[P]]:
        return [s for s in self.sessions.values() if s.watching_presence]

    # -- rooms
    def room_exists(self, name: str) -> bool:
        return name in self.rooms

    def create_room(self, name: str) -> bool:
        if name in self.rooms:
            return False
        self.rooms[name] = {}
        return True

    def delete_room(self, name: str) -> list[Session[P]]:
        """Forget ``name``; return the sessions that were in it (each has left it)."""
        members = self.rooms.pop(name, {})
        for session in members.values():
            session.rooms.remove(name)
        return list(members.values())

    def join(self, session: Session[P], room: str) -> bool:
        """Add ``session`` to ``room``; False when it was already a member."""
        members = self.rooms[room]
        if session.user_id in members and members[session.user_id] is session:
            return False
        members[session.user_id] = session
        session.rooms.append(room)
        return True

    def leave(self, session: Session[P], room: str) -> bool:
        """Remove ``session`` from ``room``; False when it was not a member."""
        members = self.rooms.get(room)
        if members is None or members.get(session.user_id) is not session:
            return False
        del members[session.user_id]
        session.rooms.remove(room)
        return True

    def members(self, room: str) -> list[Session[P]]:
        return list(self.rooms.get(room, {}).values())

    def is_member(self, session: Session[P], room: str) -> bool:
        return self.rooms.get(room, {}).get(session.user_id) is session

    def listing(self) -> list[RoomInfo]:
        return [RoomInfo(name, len(members)) for name, members in sorted(self.rooms.items())]
