"""Pure parts of the server: rate limits, login throttle, settings, names, passwords, store."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echomesh_trio.server.config import ConfigError, Settings, build_parser, load_settings
from echomesh_trio.server.limits import TokenBucket
from echomesh_trio.server.names import username_problem
from echomesh_trio.server.passwords import hash_password, verify_password
from echomesh_trio.server.state import Registry, Session, room_name_problem
from echomesh_trio.server.store import ClientIdReused, Database, UserExists


def test_token_bucket_allows_burst_then_rate() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert sum(bucket.try_take(0.0) for _ in range(30)) == 20
    assert bucket.retry_after(0.0) == pytest.approx(0.1)
    assert sum(bucket.try_take(0.5) for _ in range(10)) == 5
    assert sum(bucket.try_take(100.0) for _ in range(30)) == 20  # never more than the burst


@given(st.lists(st.floats(min_value=0, max_value=0.5), max_size=200))
def test_token_bucket_never_exceeds_its_budget(gaps: list[float]) -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    now = 0.0
    taken = 0
    for gap in gaps:
        now += gap
        taken += bucket.try_take(now)
    assert taken <= 20 + 10 * now + 1e-9


def test_settings_precedence_flags_env_toml(tmp_path: Path) -> None:
    toml = tmp_path / "echomesh.toml"
    toml.write_text('[server]\nport = 9000\ndata-dir = "/srv/echomesh"\nregistration = "closed"\n')
    parser = argparse.ArgumentParser()
    build_parser(parser)
    args = parser.parse_args(["--config", str(toml), "--port", "9100"])
    s = load_settings(args, environ={"ECHOMESH_PORT": "9050", "ECHOMESH_PLAINTEXT": "yes"})
    assert s.port == 9100  # flag beats environment beats file
    assert s.plaintext is True
    assert s.data_dir == Path("/srv/echomesh") and s.registration == "closed"
    assert load_settings(None, environ={}) == Settings()
    assert Settings().port == 8888 and Settings().data_dir == Path("var")


def test_settings_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="registration"):
        load_settings(None, environ={"ECHOMESH_REGISTRATION": "maybe"})
    with pytest.raises(ConfigError, match="port"):
        load_settings(None, environ={"ECHOMESH_PORT": "http"})
    with pytest.raises(ConfigError, match="voice_cipher"):
        load_settings(None, environ={"ECHOMESH_VOICE_CIPHER": "rot13"})
    with pytest.raises(ConfigError, match="resume_grace must not be negative"):
        load_settings(None, environ={"ECHOMESH_RESUME_GRACE": "-1"})
    assert load_settings(None, environ={"ECHOMESH_RESUME_GRACE": "0"}).resume_grace == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_settings(None, environ={"ECHOMESH_CONFIG": str(bad)})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(None, environ={"ECHOMESH_CONFIG": str(tmp_path / "missing.toml")})


def test_names() -> None:
    assert username_problem("alice_01.x-y") is None
    assert username_problem("a b") and username_problem("") and username_problem("x" * 33)
    assert room_name_problem("General chat ✓") is None
    assert room_name_problem(" lead") and room_name_problem("bell\x07") and room_name_problem("")


def test_passwords() -> None:
    stored = hash_password("hunter2", log2_n=10)
    assert verify_password("hunter2", stored)
    assert not verify_password("hunter3", stored)
    assert hash_password("hunter2", log2_n=10) != stored  # salted
    assert not verify_password("x", "garbage") and not verify_password("x", "md5$1$2$3$4$5")


def test_registry_membership() -> None:
    reg: Registry[str] = Registry(["a", "b"])
    s1 = Session(1, "one", "conn1")
    assert reg.add_session(s1) is None
    assert reg.join(s1, "a") and not reg.join(s1, "a") and reg.join(s1, "b")
    s1.voice_room = "b"
    s1b = Session(1, "one", "conn2")
    assert reg.add_session(s1b) is s1
    # The new session took the old one's place: same rooms, same order, same voice room.
    assert reg.members("a") == [s1b] and reg.members("b") == [s1b]
    assert s1b.rooms == ["a", "b"] and s1b.voice_room == "b"
    assert s1.rooms == [] and s1.voice_room is None
    assert not reg.join(s1b, "a")  # already in it
    assert not reg.leave(s1, "a")  # the replaced session cannot leave for the new one
    assert reg.is_member(s1b, "a") and not reg.is_member(s1, "a")
    assert reg.leave(s1b, "b")
    assert [r.member_count for r in reg.listing()] == [1, 0]
    assert reg.remove_session(s1) == [] and reg.current(1) is s1b  # the old one is inert


def test_store_idempotency_and_pending(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.sqlite3")
    alice = db.create_user("alice", "h", 1)
    bob = db.create_user("bob", "h", 1)
    with pytest.raises(UserExists):
        db.create_user("ALICE", "h", 1)
    m1, new1 = db.add_chat("r", alice.user_id, "alice", "hi", "c1", 5)
    m2, new2 = db.add_chat("r", alice.user_id, "alice", "hi", "c1", 6)
    assert new1 and not new2 and m2 == m1
    with pytest.raises(ClientIdReused):
        db.add_chat("r", alice.user_id, "alice", "hi again?", "c1", 6)
    d, _ = db.add_direct(alice, bob, "psst", "", 7)
    assert [p.message_id for p in db.pending_direct(bob.user_id)] == [d.message_id]
    db.mark_delivered([d.message_id])
    assert db.pending_direct(bob.user_id) == []
    db.close()
    db = Database(tmp_path / "x.sqlite3")  # reopening keeps everything
    assert db.recent_chat("r", 10) == [m1]
    db.close()
