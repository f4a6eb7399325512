"""Usernames: canonical form, look-alikes, shape rules, and the schema-2 migration."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echomesh_trio.server.names import canonical, skeleton, username_problem
from echomesh_trio.server.store import _SCHEMA_V1, Database, NameLooksTaken, UserExists

REFUSED_BESIDE_ALICE = [
    "Alice",
    "\u0430lice",  # Cyrillic a
    "\uff41\uff4c\uff49\uff43\uff45",  # full width
    "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e",  # mathematical bold
    "al\u0131ce",  # dotless i
]


@pytest.mark.parametrize("name", REFUSED_BESIDE_ALICE)
def test_lookalikes_of_alice_are_refused(tmp_path: Path, name: str) -> None:
    db = Database(tmp_path / "db.sqlite3")
    db.create_user("alice", "h", 1)
    conflict = db.name_conflict(name) if username_problem(name) is None else None
    assert username_problem(name) is not None or conflict is not None, name
    if username_problem(name) is None:
        with pytest.raises((UserExists, NameLooksTaken)):
            db.create_user(name, "h", 2)


@pytest.mark.parametrize(
    ("first", "second"), [("Émile", "émile"), ("\uff21\uff24\uff2d\uff29\uff2e", "admin")]
)
def test_case_and_width_variants_are_the_same_user(tmp_path: Path, first: str, second: str) -> None:
    db = Database(tmp_path / "db.sqlite3")
    user = db.create_user(first, "h", 1)
    with pytest.raises(UserExists):
        db.create_user(second, "h", 2)
    assert db.get_user(second) == user  # logs in to the same account


@pytest.mark.parametrize("name", ["Łukasz", "李明", "Δημήτρης", "山田たろう", "bob_01.x-y"])
def test_names_in_other_scripts_are_accepted(tmp_path: Path, name: str) -> None:
    db = Database(tmp_path / "db.sqlite3")
    db.create_user("alice", "h", 1)
    assert username_problem(name) is None
    assert db.create_user(name, "h", 2).username == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("x" * 33, "longer"),
        ("a\x07b", "control"),
        ("a\u200db", "invisible"),
        ("a\u0378", "unassigned"),
        ("a b", "only letters"),
        ("\u0301a", "combining"),
        ("\u0430bc" + "def", "mixes scripts"),
        ("a\ue000", "private-use"),
    ],
)
def test_refused_names_say_why(name: str, reason: str) -> None:
    problem = username_problem(name)
    assert problem is not None and reason in problem


@given(st.text(max_size=40))
def test_canonical_is_idempotent(text: str) -> None:
    assert canonical(canonical(text)) == canonical(text)


@given(st.text(max_size=40))
def test_every_refusal_has_a_reason_and_skeleton_is_total(text: str) -> None:
    problem = username_problem(text)
    assert problem is None or (isinstance(problem, str) and problem)
    assert isinstance(skeleton(text), str)


def test_version_1_database_is_migrated_keeping_colliding_users(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(f"BEGIN; {_SCHEMA_V1} PRAGMA user_version=1; COMMIT;")
    # NOCASE folds ASCII only, so version 1 let these two coexist.
    old.execute("INSERT INTO users (username, password_hash, created_ms) VALUES ('Émile', 'a', 1)")
    old.execute("INSERT INTO users (username, password_hash, created_ms) VALUES ('émile', 'b', 2)")
    old.close()
    with caplog.at_level(logging.WARNING, logger="echomesh.server"):
        db = Database(path)
    assert any("same canonical name" in r.getMessage() for r in caplog.records)
    assert db._db.execute("PRAGMA user_version").fetchone()[0] == 3
    earlier, later = db.get_user("Émile"), db.get_user("émile")
    assert earlier is not None and later is not None
    assert (earlier.password_hash, later.password_hash) == ("a", "b")  # both kept, exact names
    assert earlier.canonical == "émile" and later.canonical is None
    assert db.get_user("ÉMILE") == earlier  # the canonical form belongs to the older one
    with pytest.raises(UserExists):
        db.create_user("ÉMILE", "c", 3)
    db.close()
    assert Database(path).get_user("émile") == later  # reopening does not migrate again
