"""Database: room deletion and ownership, client_msg_id reuse, the schema-3 migration, call
records, bans and room owners (real SQLite files)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from echomesh_trio.server.state import Registry, Session
from echomesh_trio.server.store import (
    _SCHEMA_V1,
    _SCHEMA_V2,
    BanRecord,
    CallRecord,
    ClientIdReused,
    Database,
    RoomDeletion,
)


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


def test_version_2_database_is_migrated_to_3_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    v2 = "; ".join(s for s in _SCHEMA_V2.split(";") if s.strip())
    old.executescript(f"BEGIN; {_SCHEMA_V1} {v2}; PRAGMA user_version=2; COMMIT;")
    old.execute(
        "INSERT INTO users (username, password_hash, created_ms, canonical, skeleton)"
        " VALUES ('alice', 'h', 1, 'alice', 'alice')"
    )
    old.execute("INSERT INTO rooms VALUES ('r', 1, 1)")
    old.close()
    db = Database(path)
    assert db._db.execute("PRAGMA user_version").fetchone()[0] == 3
    alice = db.get_user("alice")
    assert alice is not None and db.room_names() == ["r"] and db.is_room_owner("r", 1)
    assert db.call_stats(10) == [] and db.bans(0) == []
    db.close()
    assert Database(path).get_user("alice") == alice  # reopening does not migrate again


def test_call_records_newest_first(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    for i in range(5):
        db.add_call(CallRecord(1, "ann", 2, "ben", 10 * i, None, 10 * i + 5, 0, "no_answer"))
    db.add_call(CallRecord(2, "ben", 1, "ann", 100, 101, 161, 60, "hung_up"))
    stats = db.call_stats(3)
    assert [r.requested_ms for r in stats] == [100, 40, 30] and db.call_count() == 6
    assert stats[0].as_dict()["durationMs"] == 60 and stats[0].as_dict()["answeredMs"] == 101
    assert stats[0].record_id > stats[1].record_id
    assert db.call_stats(0) == [] and db.call_stats(-1) == []


def test_bans_by_user_and_address_expire_and_replace(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    bob = db.create_user("bob", "h", 1)
    db.add_ban(BanRecord(bob.user_id, "bob", None, "spam", "root", 10, 1_000))
    assert (ban := db.active_ban(bob.user_id, "198.51.100.1", 500)) is not None
    assert ban.reason == "spam" and ban.expires_ms == 1_000
    assert db.active_ban(bob.user_id, None, 1_000) is None  # expired
    db.add_ban(BanRecord(bob.user_id, "bob", None, "again", "root", 20, None))  # replaces
    assert [b.reason for b in db.bans(5_000)] == ["again"]
    db.add_ban(BanRecord(None, "", "198.51.100.1", "flood", "root", 30, 2_000))
    found = db.active_ban(None, "198.51.100.1", 1_500)
    assert found is not None and found.reason == "flood"
    longest = db.active_ban(bob.user_id, "198.51.100.1", 1_500)
    assert longest is not None and longest.reason == "again"  # no expiry beats one
    assert db.remove_ban(user_id=bob.user_id) and not db.remove_ban(user_id=bob.user_id)
    assert db.remove_ban(address="198.51.100.1") and db.bans(0) == []
    with pytest.raises(sqlite3.IntegrityError):  # exactly one of user and address
        db.add_ban(BanRecord(None, "", None, "", "root", 1, None))


def test_room_owners_are_the_creator_and_those_added(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    alice, bob = db.create_user("alice", "h", 1), db.create_user("bob", "h", 1)
    db.create_room("r", alice.user_id, 1)
    assert db.is_room_owner("r", alice.user_id) and not db.is_room_owner("r", bob.user_id)
    assert db.add_room_owner("r", bob.user_id, alice.user_id, 2)
    assert not db.add_room_owner("r", bob.user_id, alice.user_id, 3)
    assert db.is_room_owner("r", bob.user_id)
    assert not db.remove_room_owner("r", alice.user_id)  # the creator stays owner
    assert db.remove_room_owner("r", bob.user_id) and not db.is_room_owner("r", bob.user_id)
    db.add_room_owner("r", bob.user_id, alice.user_id, 4)
    db.delete_room("r", alice.user_id)
    db.create_room("r", bob.user_id, 5)  # a new room of the same name: new owners
    assert not db.is_room_owner("r", alice.user_id) and db.is_room_owner("r", bob.user_id)
