"""Database: room deletion and ownership, client_msg_id reuse (real SQLite files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from echomesh_trio.server.state import Registry, Session
from echomesh_trio.server.store import ClientIdReused, Database, RoomDeletion


def test_only_the_creator_deletes_a_room_and_its_history_goes(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    alice, bob = db.create_user("alice", "h", 1), db.create_user("bob", "h", 1)
    assert db.create_room("r", alice.user_id, 1) and db.room_owner("r") == alice.user_id
    db.add_chat("r", alice.user_id, "alice", "old news", "", 2)
    db.add_chat("keep", bob.user_id, "bob", "elsewhere", "", 2)
    assert db.delete_room("r", bob.user_id) is RoomDeletion.NOT_OWNER
    assert db.delete_room("r", alice.user_id) is RoomDeletion.DELETED
    assert db.delete_room("r", alice.user_id) is RoomDeletion.MISSING
    assert db.room_names() == [] and db.room_owner("r") is None
    assert db.recent_chat("r", 10) == []
    assert [m.content for m in db.recent_chat("keep", 10)] == ["elsewhere"]


def test_registry_forgets_a_deleted_room_and_its_members_leave_it() -> None:
    reg: Registry[str] = Registry(["r", "s"])
    one, two = Session(1, "one", "c1"), Session(2, "two", "c2")
    for s in (one, two):
        reg.add_session(s)
        reg.join(s, "r")
    reg.join(one, "s")
    assert set(reg.delete_room("r")) == {one, two}
    assert not reg.room_exists("r") and one.rooms == ["s"] and two.rooms == []
    assert reg.delete_room("r") == []


def test_direct_client_id_reused_for_another_message(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    alice, bob = db.create_user("alice", "h", 1), db.create_user("bob", "h", 1)
    first, new = db.add_direct(alice, bob, "hi", "d1", 1)
    again, new_again = db.add_direct(alice, bob, "hi", "d1", 2)
    assert new and not new_again and again.message_id == first.message_id
    with pytest.raises(ClientIdReused):
        db.add_direct(alice, bob, "bye", "d1", 3)
    with pytest.raises(ClientIdReused):
        db.add_direct(alice, alice, "hi", "d1", 3)
