"""Moderation through the real server: room owners kick, mute and make owners; admins
(the ``admins`` setting) kick off the server, mute everywhere, and ban users and
addresses, and a ban holds across a restart on the same data directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from echomesh_trio.client.control import ControlConnection
from echomesh_trio.protocol import events as ev
from echomesh_trio.server.app import EchoMeshServer, ServerInfo
from echomesh_trio.server.config import ConfigError, load_settings
from echomesh_trio.server.voice_control import RelayControl
from tests.server.helpers import connect, expect_closed, join, login, make_settings, next_of
from tests.server.test_voice import _talker

E = ev.ErrorCode
K = ev.ModerationKind


async def _serve(nursery: trio.Nursery, tmp_path: Path, **changes: Any) -> ServerInfo:
    settings = make_settings(tmp_path, admins=("Root",), **changes)
    server = EchoMeshServer(settings, voice=RelayControl())
    info: ServerInfo = await nursery.start(server.serve)
    return info


async def _ask(conn: ControlConnection, request: ev.ClientRequest) -> ev.ServerNotice:
    """Send a moderation request; its direct answer (ModerationDone or ErrorReply)."""
    request_id = await conn.request(request)
    while True:
        incoming = await next_of(conn, ev.ModerationDone | ev.ErrorReply)  # type: ignore[arg-type]
        if incoming.request_id == request_id:
            return incoming.event  # type: ignore[no-any-return]


async def _refused(conn: ControlConnection, request: ev.ClientRequest, code: E) -> str:
    reply = await _ask(conn, request)
    assert isinstance(reply, ev.ErrorReply) and reply.code == code, (request, reply)
    return reply.message


async def _done(conn: ControlConnection, request: ev.ClientRequest) -> ev.ModerationDone:
    reply = await _ask(conn, request)
    assert isinstance(reply, ev.ModerationDone), (request, reply)
    return reply


async def _login_from(info: ServerInfo, host: str, name: str, pw: str = "secret") -> Any:
    """Log in from another loopback address (127.0.0.2 ...); the login result."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    await sock.bind((host, 0))
    conn = await connect(info, sock)
    return conn, await conn.login(name, pw)


async def test_room_owners_kick_and_make_owners(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    info = await _serve(nursery, tmp_path)
    alice, bob, carol = [await login(info, n) for n in ("alice", "bob", "carol")]
    await join(alice, "r", create=True)
    for conn in (bob, carol):
        await join(conn, "r")
    await _refused(bob, ev.Kick("carol", "r"), E.FORBIDDEN)  # not an owner
    await _refused(alice, ev.Kick("alice", "r"), E.BAD_REQUEST)  # yourself
    await _refused(alice, ev.Kick("nobody", "r"), E.UNKNOWN_USER)
    await _refused(alice, ev.Kick("bob", "nowhere"), E.UNKNOWN_ROOM)
    await _refused(alice, ev.Kick("bob"), E.FORBIDDEN)  # off the server: admins only

    with caplog.at_level(logging.INFO, logger="echomesh.server"):
        done = await _done(alice, ev.Kick("bob", "r", "be nice"))
    assert (done.kind, done.username, done.room_id) == (K.KICK, "bob", "r")
    assert any("moderation: alice: kicked bob out of room 'r'" in m for m in caplog.messages)
    assert (await bob.receive_matching(ev.MemberLeft)).room_id == "r"
    told = await bob.receive_matching(ev.Moderated)
    assert (told.kind, told.room_id, told.by.username, told.reason) == (
        K.KICK,
        "r",
        "alice",
        "be nice",
    )
    assert (await carol.receive_matching(ev.MemberLeft)).member.username == "bob"
    await _refused(alice, ev.Kick("bob", "r"), E.NOT_IN_ROOM)

    # An owner makes bob an owner; bob may then kick, but not take the creator's ownership.
    await join(bob, "r")
    done = await _done(alice, ev.GrantOwner("r", "bob"))
    assert done.kind == K.OP and "is now an owner" in done.message
    assert (await bob.receive_matching(ev.Moderated)).kind == K.OP
    await _done(bob, ev.Kick("carol", "r"))
    await _refused(bob, ev.RevokeOwner("r", "alice"), E.FORBIDDEN)
    await _done(alice, ev.RevokeOwner("r", "bob"))
    assert (await bob.receive_matching(ev.Moderated)).kind == K.DEOP
    await _refused(alice, ev.RevokeOwner("r", "bob"), E.BAD_REQUEST)  # not an owner now
    await _refused(bob, ev.Kick("alice", "r"), E.FORBIDDEN)


async def test_room_mute_silences_voice_there_only(nursery: trio.Nursery, tmp_path: Path) -> None:
    info = await _serve(nursery, tmp_path)
    ann, ben = await _talker(info, "ann"), await _talker(info, "ben")
    for room in ("w", "v"):
        await join(ann.conn, room, create=True)
        await join(ben.conn, room)
    await _refused(ann.conn, ev.Mute("ben"), E.FORBIDDEN)  # everywhere: admins only
    done = await _done(ann.conn, ev.Mute("ben", "v", "too loud"))
    assert (done.kind, done.room_id) == (K.MUTE, "v")
    told = await ben.conn.receive_matching(ev.Moderated)
    assert (told.kind, told.room_id, told.reason) == (K.MUTE, "v", "too loud")

    await ben.say_udp(b"muted")
    assert await ann.heard_before_pong() == []
    await ann.say_udp(b"ben still hears")
    assert (await ben.hear_udp()).frame == b"ben still hears"
    await ben.conn.send(ev.RequestVoiceStats(), 5)
    stats = await ben.conn.receive_matching(ev.VoiceStatsReport, request_id=5)
    assert stats.dropped.get("muted") == 1

    for t in (ann, ben):  # in another room ben is heard
        await t.conn.send(ev.SetVoiceRoom("w"), 6)
        await t.conn.receive_matching(ev.VoiceRoomChanged, request_id=6)
    await ben.say_udp(b"heard in w")
    assert (await ann.hear_udp()).frame == b"heard in w"
    for t in (ann, ben):
        await t.conn.send(ev.SetVoiceRoom("v"), 7)
        await t.conn.receive_matching(ev.VoiceRoomChanged, request_id=7)
    await ben.say_udp(b"muted again in v")
    assert await ann.heard_before_pong() == []
    await _done(ann.conn, ev.Unmute("ben", "v"))
    assert (await ben.conn.receive_matching(ev.Moderated)).kind == K.UNMUTE
    await ben.say_udp(b"unmuted")
    assert (await ann.hear_udp()).frame == b"unmuted"
    await _refused(ann.conn, ev.Unmute("ben", "v"), E.BAD_REQUEST)  # not muted


async def test_admins_kick_off_the_server_mute_everywhere_and_ban(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await _serve(nursery, tmp_path)
    root, bob = await login(info, "root"), await login(info, "bob")  # "Root" in admins
    carol = await login(info, "carol")
    await _refused(carol, ev.Ban("bob"), E.FORBIDDEN)
    await _refused(carol, ev.Kick("root", ""), E.FORBIDDEN)
    await _refused(root, ev.Ban(), E.BAD_REQUEST)  # neither user nor address
    await _refused(root, ev.Ban("bob", "127.0.0.9"), E.BAD_REQUEST)  # both
    await _refused(root, ev.Ban("bob", duration_s=float("nan")), E.BAD_REQUEST)
    await _refused(root, ev.Ban("bob", duration_s=-1), E.BAD_REQUEST)
    await _refused(root, ev.Ban("bob", duration_s=float("inf")), E.BAD_REQUEST)
    await _refused(root, ev.Ban("bob", duration_s=1e300), E.BAD_REQUEST)
    await _refused(root, ev.Ban("bob", reason="x" * 201), E.TOO_LONG)
    await _refused(root, ev.Ban(address="127.0.0.1"), E.BAD_REQUEST)  # its own address
    await _refused(root, ev.Unban("bob"), E.BAD_REQUEST)  # not banned

    await _done(root, ev.Mute("carol"))
    assert (await carol.receive_matching(ev.Moderated)).room_id == ""

    done = await _done(root, ev.Kick("carol", reason="cool off"))
    assert "off the server" in done.message
    seen = await expect_closed(carol)
    bye = seen[-1]
    assert isinstance(bye, ev.Goodbye) and bye.reason == ev.GoodbyeReason.KICKED
    assert "root" in bye.message and "cool off" in bye.message
    await _refused(root, ev.Kick("carol"), E.USER_OFFLINE)

    done = await _done(root, ev.Ban("bob", duration_s=3600, reason="spam"))
    assert done.kind == K.BAN and done.expires_ms > 0 and "until" in done.message
    seen = await expect_closed(bob)
    bye = seen[-1]
    assert isinstance(bye, ev.Goodbye) and bye.reason == ev.GoodbyeReason.BANNED
    assert "spam" in bye.message
    again = await connect(info)
    refused = await again.login("bob", "secret")
    assert refused.status_code == ev.LoginStatus.FORBIDDEN
    assert refused.ban_reason == "spam" and refused.ban_expires_ms == done.expires_ms
    assert "banned until" in refused.message and "spam" in refused.message
    wrong = await (await connect(info)).login("bob", "not the password")
    assert wrong.status_code == ev.LoginStatus.WRONG_PASSWORD  # says nothing of the ban
    await _done(root, ev.Unban("bob"))
    await login(info, "bob")
    # A muted user stays muted in a new session (mutes are per user).
    carol = await login(info, "carol")
    await _done(root, ev.Unmute("carol"))


async def test_address_bans_refuse_every_login_from_it_but_an_admins(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await _serve(nursery, tmp_path)
    root = await login(info, "root")
    bob, result = await _login_from(info, "127.0.0.2", "bob")
    assert result.ok
    done = await _done(root, ev.Ban(address="127.0.0.2", reason="flood"))
    assert done.address == "127.0.0.2" and done.expires_ms == 0
    bye = (await expect_closed(bob))[-1]
    assert isinstance(bye, ev.Goodbye) and bye.reason == ev.GoodbyeReason.BANNED
    _, newcomer = await _login_from(info, "127.0.0.2", "dave")  # not registered either
    assert newcomer.status_code == ev.LoginStatus.FORBIDDEN
    assert "127.0.0.2" in newcomer.message and newcomer.ban_reason == "flood"
    root, admin = await _login_from(info, "127.0.0.2", "root")  # replaces root's session
    assert admin.ok  # an admin can always log in to lift a ban
    assert (await login(info, "bob")).goodbye is None  # bob from another address is fine
    await _done(root, ev.Unban(address="127.0.0.2"))
    _, back = await _login_from(info, "127.0.0.2", "bob")
    assert back.ok


async def test_a_ban_holds_across_a_restart(tmp_path: Path) -> None:
    for restart in range(2):
        async with trio.open_nursery() as nursery:
            settings = make_settings(tmp_path, admins=("root",))
            server = EchoMeshServer(settings)
            info: ServerInfo = await nursery.start(server.serve)
            root = await login(info, "root")
            if restart == 0:
                await login(info, "bob")
                await _done(root, ev.Ban("bob", reason="for good"))
            else:
                result = await (await connect(info)).login("bob", "secret")
                assert result.status_code == ev.LoginStatus.FORBIDDEN
                assert result.ban_reason == "for good" and result.ban_expires_ms == 0
                assert "no end date" in result.message
            server.request_shutdown()


def test_admins_setting_from_toml_environment_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "echomesh.toml"
    config.write_text('admins = ["alice", "Bob"]\n')
    args = type("Args", (), {"config": str(config)})()
    assert load_settings(args, environ={}).admins == ("alice", "Bob")  # type: ignore[arg-type]
    assert load_settings(None, environ={"ECHOMESH_ADMINS": "a, b,"}).admins == ("a", "b")
    config.write_text("admins = 3\n")
    with pytest.raises(ConfigError, match="admins"):
        load_settings(args, environ={})  # type: ignore[arg-type]
