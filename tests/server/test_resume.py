"""Resume through the real server: a new login takes over the user's session (rooms, voice
room, voice source id) and the other members see nothing."""

from __future__ import annotations

import select
from pathlib import Path

import trio

from echomesh_trio.client.control import ControlConnection
from echomesh_trio.protocol import events as ev
from echomesh_trio.server.app import EchoMeshServer, ServerInfo
from echomesh_trio.server.voice_control import RelayControl
from tests.server.helpers import (
    connect,
    expect_closed,
    join,
    login,
    make_settings,
    next_of,
    start_server,
)
from tests.server.test_voice import Talker

CHURN = (ev.MemberLeft, ev.MemberJoined, ev.PresenceChanged, ev.RoomDeleted)


async def until_pong(conn: ControlConnection) -> list[ev.ServerNotice]:
    """Everything that reaches ``conn`` before the answer to a ping sent now: the server
    handles a connection's frames in order, so this is everything already due to it."""
    rid = await conn.request(ev.Ping(nonce=1))
    seen: list[ev.ServerNotice] = []
    with trio.fail_after(10):
        while True:
            incoming = await conn.receive()
            if isinstance(incoming.event, ev.Pong) and incoming.request_id == rid:
                return seen
            seen.append(incoming.event)


def pending(sock: trio.socket.SocketType) -> bool:
    """Whether a datagram is waiting on ``sock`` (without waiting for one)."""
    return bool(select.select([sock.fileno()], [], [], 0)[0])


def churn(notices: list[ev.ServerNotice]) -> list[ev.ServerNotice]:
    return [n for n in notices if isinstance(n, CHURN)]


async def resume(info: ServerInfo, name: str) -> tuple[ControlConnection, ev.SessionResumed]:
    """Log in again as ``name``; the login must have resumed a session."""
    conn = await connect(info)
    rid = await conn.request(ev.Login(name, "secret", "test"))
    result = await conn.receive_matching(ev.LoginResult, request_id=rid)
    assert result.ok and result.resumed, result
    resumed = await conn.receive_matching(ev.SessionResumed, request_id=rid)
    assert not resumed.more
    return conn, resumed


async def _room_with_watcher(info: ServerInfo) -> tuple[ControlConnection, ControlConnection]:
    """alice in rooms r1 then r2 (voice room r2); bob in r1, watching presence."""
    alice, bob = await login(info, "alice"), await login(info, "bob")
    await join(alice, "r1", create=True)
    await join(alice, "r2", create=True)
    await join(bob, "r1")
    await bob.send(ev.ListPresence())
    await bob.receive_matching(ev.PresenceSnapshot)
    await until_pong(alice)
    await until_pong(bob)
    return alice, bob


async def test_a_new_login_takes_the_session_over_quietly(
    nursery: trio.Nursery, tmp_path: Path, tls: bool
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, plaintext=not tls))
    old, bob = await _room_with_watcher(info)
    new, resumed = await resume(info, "alice")
    assert resumed == ev.SessionResumed(("r1", "r2"), voice_room="")  # no voice on this server
    goodbyes = [n for n in await expect_closed(old) if isinstance(n, ev.Goodbye)]
    assert [g.reason for g in goodbyes] == [ev.GoodbyeReason.REPLACED]

    # The new session is in r1 without joining again: it writes and it receives.
    await new.send(ev.SendChat("r1", "still here"))
    assert (await new.receive_matching(ev.ChatMessage)).content == "still here"
    await bob.send(ev.SendChat("r1", "welcome back"))
    assert (await new.receive_matching(ev.ChatMessage)).content == "welcome back"
    # Typing goes both ways.
    await new.send(ev.SetTyping("r1", True))
    typing = await bob.receive_matching(ev.TypingNotice)
    assert (typing.username, typing.active) == ("alice", True)
    await bob.send(ev.SetTyping("r1", True))
    assert (await new.receive_matching(ev.TypingNotice)).username == "bob"
    # Members saw nothing of the takeover: no left, no joined, no offline/online.
    seen = await until_pong(bob)
    assert churn(seen) == []
    await bob.send(ev.ListRooms())
    listing = await bob.receive_matching(ev.RoomListing)
    assert {r.room_id: r.member_count for r in listing.rooms} == {"r1": 2, "r2": 1}
    await bob.send(ev.ListPresence())
    online = await bob.receive_matching(ev.PresenceSnapshot)
    assert sorted(m.username for m in online.online) == ["alice", "bob"]

    # Rejoining a room it holds is harmless: the room's state and history again, nobody told.
    snapshot = await join(new, "r1")
    assert sorted(m.username for m in snapshot.members) == ["alice", "bob"]
    history = await new.receive_matching(ev.HistoryBatch)
    assert [m.content for m in history.messages] == ["still here", "welcome back"]
    assert churn(await until_pong(bob)) == []
    # And the new session can leave: members are told once, as for any leave.
    await new.send(ev.LeaveRoom("r1"))
    left = await bob.receive_matching(ev.MemberLeft)
    assert left.member.username == "alice"


async def test_a_dead_but_unnoticed_connection_is_taken_over_at_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # The old connection stays open and silent: the server cannot know it is dead, and
    # its idle timeout is far away.
    _, info = await start_server(nursery, make_settings(tmp_path, idle_timeout=600.0))
    _old, bob = await _room_with_watcher(info)
    with trio.fail_after(10):  # not the idle timeout: the login takes over immediately
        new, resumed = await resume(info, "alice")
    assert resumed.rooms == ("r1", "r2")
    await bob.send(ev.SendChat("r1", "hello?"))
    assert (await new.receive_matching(ev.ChatMessage)).content == "hello?"
    assert churn(await until_pong(bob)) == []


async def test_an_abrupt_close_then_a_login_resumes_within_the_grace(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server, info = await start_server(nursery, make_settings(tmp_path, resume_grace=60.0))
    old, bob = await _room_with_watcher(info)
    await trio.aclose_forcefully(old)  # the client vanished; the server sees the close
    await server.wait_connections(at_most=1)  # alice's connection is fully handled
    # A direct message for her meanwhile is kept, not lost on the dead connection.
    await bob.send(ev.SendDirect("while you were away", to_username="alice"), 4)
    await bob.receive_matching(ev.DirectMessage, request_id=4)
    new, resumed = await resume(info, "alice")
    assert resumed.rooms == ("r1", "r2")
    direct = await new.receive_matching(ev.DirectMessage)
    assert direct.content == "while you were away" and direct.offline
    await bob.send(ev.SendChat("r1", "there you are"))
    assert (await new.receive_matching(ev.ChatMessage)).content == "there you are"
    assert churn(await until_pong(bob)) == []


async def test_without_a_reconnect_the_session_ends_after_the_grace(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, resume_grace=0.2))
    old, bob = await _room_with_watcher(info)
    await trio.aclose_forcefully(old)
    with trio.fail_after(10):
        left = await bob.receive_matching(ev.MemberLeft)
        offline = await bob.receive_matching(ev.PresenceChanged)
    assert left.member.username == "alice" and not offline.online
    # Now a login is a new session: nothing to resume.
    again = await connect(info)
    result = await again.login("alice", "secret")
    assert result.ok and not result.resumed
    await bob.receive_matching(ev.PresenceChanged)  # online again
    assert [n for n in await until_pong(again) if isinstance(n, ev.SessionResumed)] == []


async def test_logout_ends_the_session_at_once(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, resume_grace=600.0))
    alice, bob = await _room_with_watcher(info)
    await alice.send(ev.Logout())
    goodbyes = [n for n in await expect_closed(alice) if isinstance(n, ev.Goodbye)]
    assert [g.reason for g in goodbyes] == [ev.GoodbyeReason.LOGGED_OUT]
    with trio.fail_after(10):  # not after the grace
        assert (await bob.receive_matching(ev.MemberLeft)).member.username == "alice"
        assert not (await bob.receive_matching(ev.PresenceChanged)).online
    again = await login(info, "alice")
    assert [n for n in await until_pong(again) if isinstance(n, ev.SessionResumed)] == []


async def test_resent_messages_after_a_takeover_are_stored_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    old, bob = await _room_with_watcher(info)
    # Sent on the old connection; the client never saw the acknowledgements.
    await old.send(ev.SendChat("r1", "exactly once", client_msg_id="c-1"))
    await old.send(ev.SendDirect("just once", to_username="bob", client_msg_id="d-1"))
    first_chat = await bob.receive_matching(ev.ChatMessage)
    first_direct = await bob.receive_matching(ev.DirectMessage)
    new, _ = await resume(info, "alice")
    # The client resends both with the same ids: each is acknowledged with the stored copy.
    await new.send(ev.SendChat("r1", "exactly once", client_msg_id="c-1"), 11)
    await new.send(ev.SendDirect("just once", to_username="bob", client_msg_id="d-1"), 12)
    chat_ack = await new.receive_matching(ev.ChatMessage, request_id=11)
    direct_ack = await new.receive_matching(ev.DirectMessage, request_id=12)
    assert chat_ack.message_id == first_chat.message_id
    assert direct_ack.message_id == first_direct.message_id
    # Bob got one copy of each; the room's history holds one.
    seen = await until_pong(bob)
    assert [n for n in seen if isinstance(n, ev.ChatMessage | ev.DirectMessage)] == []
    assert churn(seen) == []
    await join(bob, "r1")
    history = await bob.receive_matching(ev.HistoryBatch)
    assert [m.content for m in history.messages] == ["exactly once"]


async def test_voice_moves_to_the_new_session(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = EchoMeshServer(make_settings(tmp_path), voice=RelayControl())
    info: ServerInfo = await nursery.start(server.serve)

    async def talker(name: str) -> Talker:
        conn = await login(info, name)
        t = Talker(name, conn, await conn.receive_matching(ev.VoiceSetupInfo))
        await t.bind_udp()
        return t

    ann, ben = await talker("ann"), await talker("ben")
    await join(ann.conn, "v", create=True)
    snapshot = await join(ben.conn, "v")
    ann_source = {m.username: m.source_id for m in snapshot.members}["ann"]
    await ann.say_udp(b"before")
    assert (await ben.hear_udp()).frame == b"before"
    while pending(ann.udp):  # e.g. a ping of the relay's
        await ann.udp.recv(2048)

    conn, resumed = await resume(info, "ann")
    assert resumed == ev.SessionResumed(("v",), voice_room="v")
    setup = await conn.receive_matching(ev.VoiceSetupInfo)
    # The same source id (ben knows it from the room), fresh keys.
    assert setup.source_id == ann_source == ann.setup.source_id
    assert setup.client_key != ann.setup.client_key
    assert setup.server_key != ann.setup.server_key
    ann2 = Talker("ann", conn, setup)
    await ann2.bind_udp()

    await ben.say_udp(b"to the new ann")
    frame = await ann2.hear_udp()
    assert (frame.source_id, frame.frame) == (ben.setup.source_id, b"to the new ann")
    assert not pending(ann.udp)  # nothing went to the old address
    await ann2.say_udp(b"from the new ann")
    frame = await ben.hear_udp()
    assert (frame.source_id, frame.frame) == (ann_source, b"from the new ann")
    await ann.say_udp(b"old keys")  # the old client's packets no longer authenticate
    assert await ben.heard_before_pong() == []
    assert churn(await until_pong(ben.conn)) == []


async def test_a_restarted_server_is_a_plain_new_login(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, resume_grace=600.0)
    async with trio.open_nursery() as nursery:
        server, info = await start_server(nursery, settings)
        alice, bob = await _room_with_watcher(info)
        server.request_shutdown()
    async with trio.open_nursery() as nursery:
        server, info = await start_server(nursery, settings)
        alice = await connect(info)
        result = await alice.login("alice", "secret")
        assert result.ok and not result.resumed  # sessions do not survive a restart
        bob = await login(info, "bob")
        await join(bob, "r1")  # the room itself persisted
        # The client rejoins what it had; joining twice is harmless.
        first = await join(alice, "r1")
        assert (await next_of(bob, ev.MemberJoined)).event.member.username == "alice"
        second = await join(alice, "r1")
        assert first.members == second.members
        assert [n for n in await until_pong(alice) if isinstance(n, ev.ErrorReply)] == []
        assert churn(await until_pong(bob)) == []  # the second join told nobody
        server.request_shutdown()


async def test_many_rooms_are_resumed_in_parts(nursery: trio.Nursery, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, rooms_per_user_per_hour=1000.0, room_action_burst=1000, room_action_rate=1000.0
    )
    _, info = await start_server(nursery, settings)
    old = await login(info, "alice")
    names = [f"room-{i:03}" for i in range(130)]  # more than one frame holds (128)
    for name in names:
        await join(old, name, create=True)
    conn = await connect(info)
    rid = await conn.request(ev.Login("alice", "secret", "test"))
    assert (await conn.receive_matching(ev.LoginResult, request_id=rid)).resumed
    parts = [await conn.receive_matching(ev.SessionResumed, request_id=rid)]
    while parts[-1].more:
        parts.append(await conn.receive_matching(ev.SessionResumed, request_id=rid))
    assert [len(p.rooms) for p in parts] == [128, 2]
    assert [r for p in parts for r in p.rooms] == names  # in join order
    assert {p.voice_room for p in parts} == {""}
