"""Bad input, slow readers, idle clients and limits: each affects only its own connection."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
import trio

from echomesh_trio.client.control import ConnectionClosed, ControlConnection
from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol import message_pb2 as pb
from tests.server.helpers import (
    connect,
    expect_closed,
    join,
    login,
    make_settings,
    next_of,
    start_server,
)


async def _assert_room_still_works(a: ControlConnection, b: ControlConnection, room: str) -> None:
    await a.send(ev.SendChat(room, "still here"))
    assert (await b.receive_matching(ev.ChatMessage)).content == "still here"


async def test_malformed_frame_closes_only_that_connection(
    nursery: trio.Nursery, tmp_path: Path, tls: bool
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, plaintext=not tls))
    alice, bob, mallory = [await login(info, n) for n in ("alice", "bob", "mallory")]
    for c in (alice, bob, mallory):
        await join(c, "r", create=c is alice)
    await mallory.send_raw(struct.pack(">I", 3) + b"\xff\xff\xff")
    seen = await expect_closed(mallory)
    errors = [n for n in seen if isinstance(n, ev.ErrorReply)]
    assert errors and errors[0].code == ev.ErrorCode.MALFORMED_FRAME
    assert any(
        isinstance(n, ev.Goodbye) and n.reason == ev.GoodbyeReason.PROTOCOL_ERROR for n in seen
    )
    left = await alice.receive_matching(ev.MemberLeft)
    assert left.member.username == "mallory"
    await _assert_room_still_works(alice, bob, "r")


async def test_oversize_frame_and_unknown_type(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    big = await connect(info)
    await big.send_raw(struct.pack(">I", 10_000_000))  # no body needed: the prefix is enough
    seen = await expect_closed(big)
    assert [n.code for n in seen if isinstance(n, ev.ErrorReply)] == [ev.ErrorCode.FRAME_TOO_LARGE]

    odd = await connect(info)
    body = pb.EchoMsg(type=999).SerializeToString()  # type: ignore[arg-type]
    await odd.send_raw(struct.pack(">I", len(body)) + body)
    seen = await expect_closed(odd)
    assert [n.code for n in seen if isinstance(n, ev.ErrorReply)] == [ev.ErrorCode.UNKNOWN_TYPE]

    # The server is unaffected.
    assert (await (await connect(info)).login("zed", "pw")).ok


async def test_slow_reader_is_dropped_and_others_still_receive(
    nursery: trio.Nursery, tmp_path: Path, tls: bool
) -> None:
    settings = make_settings(
        tmp_path, plaintext=not tls, outgoing_queue=64, chat_rate=10_000, chat_burst=10_000
    )
    server, info = await start_server(nursery, settings)
    talker, reader = await login(info, "talker"), await login(info, "reader")
    await join(talker, "r", create=True)
    await join(reader, "r")
    # A client with a tiny receive buffer that never reads after joining.
    sleeper_sock = trio.socket.socket()
    sleeper_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sleeper = await connect(info, sleeper_sock)
    assert (await sleeper.login("sleeper", "pw")).ok
    await join(sleeper, "r")

    async def drain(conn: ControlConnection) -> None:
        while True:
            await conn.receive()

    nursery.start_soon(drain, talker)  # the talker reads its own echoes
    text = "z" * 4900
    count = 1500  # 7 MB: more than the kernel buffers (4 MB at most here) and the queue

    async def talk() -> None:
        for i in range(count):
            await talker.send(ev.SendChat("r", f"{i}:{text}"))

    nursery.start_soon(talk)
    received = 0
    dropped_seen = False
    with trio.fail_after(20):
        while received < count or not dropped_seen:
            n = (await reader.receive()).event
            if isinstance(n, ev.ChatMessage):
                received += 1
            elif isinstance(n, ev.MemberLeft) and n.member.username == "sleeper":
                dropped_seen = True
    assert received == count
    assert server.connection_count == 2


async def test_idle_connection_is_closed_with_a_reason(
    nursery: trio.Nursery, tmp_path: Path, tls: bool, mock_clock: trio.testing.MockClock
) -> None:
    """On Trio's fake clock (it moves only when the test jumps it): 30 s idle timeout."""
    _, info = await start_server(nursery, make_settings(tmp_path, plaintext=not tls))
    quiet = await login(info, "quiet")
    talky = await login(info, "talky")
    # Pinging every 10 s keeps a connection alive well past the timeout ...
    for i in range(6):
        mock_clock.jump(10)
        await talky.send(ev.Ping(nonce=i))
        assert (await talky.receive_matching(ev.Pong)).nonce == i
    # ... while the silent one was closed, and told why.
    seen = await expect_closed(quiet)
    assert any(
        isinstance(n, ev.Goodbye) and n.reason == ev.GoodbyeReason.IDLE_TIMEOUT for n in seen
    )


async def test_connection_limits(nursery: trio.Nursery, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_connections_per_address=2)
    server, info = await start_server(nursery, settings)
    first, second = await login(info, "one"), await login(info, "two")
    third = await connect(info)
    seen = await expect_closed(third)
    assert [n.code for n in seen if isinstance(n, ev.ErrorReply)] == [ev.ErrorCode.SERVER_FULL]
    assert any(isinstance(n, ev.Goodbye) and n.reason == ev.GoodbyeReason.SERVER_FULL for n in seen)
    await first.aclose()
    with trio.fail_after(5):
        await server.wait_connections(1)
    assert (await (await connect(info)).login("three", "pw")).ok
    await second.send(ev.Ping(nonce=5))
    assert (await second.receive_matching(ev.Pong)).nonce == 5


def test_the_largest_list_frames_fit_the_frame_limit() -> None:
    from echomesh_trio.protocol.codec import notice_frame
    from echomesh_trio.server.request import MEMBERS_PER_FRAME, ROOMS_PER_FRAME

    worst = ev.Member(2**63 - 1, "\U0001f600" * 32, 2**32 - 1)
    last = 2**32 - 1
    notice_frame(ev.RoomSnapshot("\U0001f600" * 64, (worst,) * MEMBERS_PER_FRAME, True), last)
    notice_frame(ev.PresenceSnapshot((worst,) * MEMBERS_PER_FRAME, True), last)
    rooms = (ev.RoomInfo("\U0001f600" * 64, 2**32 - 1),) * ROOMS_PER_FRAME
    notice_frame(ev.RoomListing(rooms, True), last)


async def test_long_member_lists_arrive_in_several_frames(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    names = [f"user{i:04d}".ljust(32, "x") for i in range(300)]
    conns = []
    limiter = trio.CapacityLimiter(20)

    async def one(name: str) -> None:
        async with limiter:
            conn = await login(info, name)
            await join(conn, "big", create=name == names[0])
            conns.append(conn)

    await one(names[0])
    async with trio.open_nursery() as logins:
        for name in names[1:]:
            logins.start_soon(one, name)
    watcher = conns[0]
    await watcher.send(ev.ListPresence(), 77)
    online: list[ev.Member] = []
    frames = 0
    while True:
        incoming = await next_of(watcher, ev.PresenceSnapshot)
        assert incoming.request_id == 77
        part = incoming.event
        online += part.online
        frames += 1
        if not part.more:
            break
    assert frames == 2 and sorted(m.username for m in online) == sorted(names)
    latecomer = await login(info, "late")
    members: list[ev.Member] = []
    await latecomer.send(ev.JoinRoom("big"))
    while True:
        snap = await latecomer.receive_matching(ev.RoomSnapshot)
        members += snap.members
        if not snap.more:
            break
    assert len(members) == 301


async def test_an_internal_error_ends_only_that_connection(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from echomesh_trio.server import features

    _, info = await start_server(nursery, make_settings(tmp_path))
    alice, bob = await login(info, "alice"), await login(info, "bob")
    await join(alice, "r", create=True)
    await join(bob, "r")

    async def broken(*args: object) -> None:
        raise RuntimeError("injected fault")

    monkeypatch.setitem(features.HANDLERS, ev.SetTyping, broken)
    await bob.send(ev.SetTyping("r", True), 31)
    replies: list[ev.Incoming[ev.ServerNotice]] = []
    with pytest.raises(ConnectionClosed):
        while True:
            replies.append(await bob.receive())
    seen = [r.event for r in replies]
    errors = [(r.request_id, r.event.code) for r in replies if isinstance(r.event, ev.ErrorReply)]
    assert errors == [(31, ev.ErrorCode.INTERNAL)]
    assert any(
        isinstance(n, ev.Goodbye) and n.reason == ev.GoodbyeReason.INTERNAL_ERROR for n in seen
    )
    carol = await login(info, "carol")
    await join(carol, "r")
    await _assert_room_still_works(alice, carol, "r")


async def test_a_crowd_leaving_at_once_does_not_disturb_the_server(
    nursery: trio.Nursery, tmp_path: Path, tls: bool
) -> None:
    """Each departure is broadcast to members who are themselves in the middle of closing."""
    server, info = await start_server(nursery, make_settings(tmp_path, plaintext=not tls))
    crowd = []
    for i in range(40):
        conn = await login(info, f"c{i}")
        await join(conn, "crowd", create=i == 0)
        crowd.append(conn)
    for _ in range(3):
        for conn in crowd:
            await conn.send(ev.SendChat("crowd", "bye"))
        for conn in crowd:  # reset, not a clean close: the server's reads fail
            tcp = conn.stream.transport_stream if tls else conn.stream  # type: ignore[attr-defined]
            assert isinstance(tcp, trio.SocketStream)
            tcp.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        async with trio.open_nursery() as leaving:
            for conn in crowd:
                leaving.start_soon(conn.aclose)
        with trio.fail_after(5):
            await server.wait_connections(0)
        crowd = []
        for i in range(40):
            conn = await login(info, f"c{i}")
            await join(conn, "crowd")
            crowd.append(conn)
    await _assert_room_still_works(crowd[0], crowd[1], "crowd")
