"""Login, registration, session replacement, throttling, direct messages and presence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio

from echomesh_trio.cli import main as cli_main
from echomesh_trio.protocol import events as ev
from tests.server.helpers import (
    connect,
    expect_closed,
    join,
    login,
    make_settings,
    next_of,
    start_server,
)


async def test_first_login_registers_and_later_logins_must_match(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    first = await connect(info)
    result = await first.login("erin", "correct horse")
    assert result.ok and result.user_id > 0 and result.status_code == 200
    await first.aclose()
    again = await connect(info)
    assert (await again.login("erin", "correct horse")).user_id == result.user_id
    wrong = await connect(info)
    bad = await wrong.login("erin", "battery staple")
    assert bad.status_code == ev.LoginStatus.WRONG_PASSWORD and bad.user_id == 0 and bad.message
    # The password is stored as a salted slow hash, never in clear.
    db = sqlite3.connect(tmp_path / "echomesh.sqlite3")
    (stored,) = db.execute("SELECT password_hash FROM users WHERE username = 'erin'").fetchone()
    db.close()
    assert stored.startswith("scrypt$") and "correct horse" not in stored


async def test_invalid_usernames_are_refused(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    conn = await connect(info)
    for name in ("", "has space", "x" * 33, "tab\t"):
        result = await conn.login(name, "pw")
        assert result.status_code == ev.LoginStatus.BAD_REQUEST and result.message
    result = await conn.login("ok_name", "")
    assert result.status_code == ev.LoginStatus.BAD_REQUEST


async def test_usernames_are_unique_ignoring_case(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    assert (await (await connect(info)).login("Alice", "one")).ok
    impostor = await (await connect(info)).login("alice", "two")
    assert impostor.status_code == ev.LoginStatus.WRONG_PASSWORD


async def test_repeated_failures_are_slowed_down(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    assert (await (await connect(info)).login("frank", "right")).ok
    conn = await connect(info)
    for _ in range(5):
        assert (await conn.login("frank", "wrong")).status_code == ev.LoginStatus.WRONG_PASSWORD
    locked = await conn.login("frank", "right")
    assert locked.status_code == ev.LoginStatus.TOO_MANY_ATTEMPTS and "try again" in locked.message


async def test_second_login_replaces_the_first(
    nursery: trio.Nursery, tmp_path: Path, tls: bool
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, plaintext=not tls))
    old = await login(info, "gina")
    watcher = await login(info, "hal")
    await join(old, "r", create=True)
    await join(watcher, "r")
    new = await login(info, "gina")
    seen = await expect_closed(old)
    goodbyes = [n for n in seen if isinstance(n, ev.Goodbye)]
    assert goodbyes and goodbyes[0].reason == ev.GoodbyeReason.REPLACED
    # The new session took the old one's place in "r" (tests/server/test_resume.py): the
    # watcher sees no left/joined, only what the new session says.
    await new.send(ev.SendChat("r", "I moved"))
    incoming = await watcher.receive()
    assert isinstance(incoming.event, ev.ChatMessage) and incoming.event.content == "I moved"


async def test_closed_registration_and_adduser(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert cli_main(["adduser", "ivy", "--password-stdin", "--data-dir", str(tmp_path)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("other\n"))
    assert cli_main(["adduser", "ivy", "--password-stdin", "--data-dir", str(tmp_path)]) == 1
    _, info = await start_server(nursery, make_settings(tmp_path, registration="closed"))
    # An unknown name gets the same answer as a wrong password: which names exist stays hidden.
    stranger = await (await connect(info)).login("jack", "pw")
    wrong = await (await connect(info)).login("ivy", "pw")
    assert stranger.status_code == wrong.status_code == ev.LoginStatus.WRONG_PASSWORD
    assert stranger.message == wrong.message
    assert (await (await connect(info)).login("ivy", "s3cret")).ok


async def test_direct_message_to_offline_user_arrives_at_login(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    kim = await login(info, "kim")
    await kim.aclose()
    leo = await login(info, "leo")
    await leo.send(ev.SendDirect("are you there?", to_username="kim", client_msg_id="d1"))
    ack = await leo.receive_matching(ev.DirectMessage)
    assert ack.content == "are you there?" and ack.message_id > 0
    await leo.send(ev.SendDirect("hello?", to_username="nobody"))
    assert (await leo.receive_matching(ev.ErrorReply)).code == ev.ErrorCode.UNKNOWN_USER

    kim = await login(info, "kim")
    got = await kim.receive_matching(ev.DirectMessage)
    assert (got.content, got.from_username, got.offline) == ("are you there?", "leo", True)
    # Delivered once: a later login does not repeat it.
    await kim.aclose()
    kim = await login(info, "kim")
    await kim.send(ev.Ping(nonce=1))
    while not isinstance(n := (await kim.receive()).event, ev.Pong):
        assert not isinstance(n, ev.DirectMessage)
    # Online delivery is immediate.
    await leo.send(ev.SendDirect("now live", to_user_id=got.to_user_id))
    live = await kim.receive_matching(ev.DirectMessage)
    assert (live.content, live.offline) == ("now live", False)


async def test_presence_list_and_events(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    mia = await login(info, "mia")
    await mia.send(ev.ListPresence(), 4)
    reply = await next_of(mia, ev.PresenceSnapshot)
    assert [m.username for m in reply.event.online] == ["mia"] and reply.request_id == 4
    ned = await login(info, "ned")
    came = await mia.receive_matching(ev.PresenceChanged)
    assert (came.member.username, came.online) == ("ned", True)
    await ned.aclose()
    went = await mia.receive_matching(ev.PresenceChanged)
    assert (went.member.username, went.online) == ("ned", False)
