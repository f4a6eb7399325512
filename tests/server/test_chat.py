"""Login, rooms and chat against a real server on 127.0.0.1 with a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import trio

from echomesh_trio.protocol import events as ev
from tests.server.helpers import connect, join, login, make_settings, next_of, start_server


async def test_three_clients_chat_in_a_room(
    nursery: trio.Nursery, tmp_path: Path, tls: bool
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, plaintext=not tls))
    alice, bob, carol = [await login(info, n) for n in ("alice", "bob", "carol")]
    snap = await join(alice, "lobby", create=True)
    assert [m.username for m in snap.members] == ["alice"]
    await join(bob, "lobby")
    joined = await alice.receive_matching(ev.MemberJoined)
    assert joined.member.username == "bob"
    snap = await join(carol, "lobby")
    assert sorted(m.username for m in snap.members) == ["alice", "bob", "carol"]

    await bob.send(ev.SendChat("lobby", "hello, all", client_msg_id="b-1"), 7)
    copies = [await c.receive_matching(ev.ChatMessage) for c in (alice, bob, carol)]
    assert {c.content for c in copies} == {"hello, all"}
    assert {c.message_id for c in copies} == {copies[0].message_id}  # one stored message
    assert copies[0].username == "bob" and copies[0].user_id > 0
    assert copies[0].timestamp_ms > 0


async def test_joining_gets_recent_history_and_sender_ack(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, chat_burst=100))
    alice = await login(info, "alice")
    await join(alice, "dev", create=True)
    for i in range(60):
        await alice.send(ev.SendChat("dev", f"line {i}"))
    acks = [await alice.receive_matching(ev.ChatMessage) for _ in range(60)]
    assert [a.content for a in acks] == [f"line {i}" for i in range(60)]
    assert [a.message_id for a in acks] == sorted(a.message_id for a in acks)

    bob = await login(info, "bob")
    await join(bob, "dev")
    history = await bob.receive_matching(ev.HistoryBatch)
    assert [m.content for m in history.messages] == [f"line {i}" for i in range(10, 60)]


async def test_history_of_long_messages_is_split_into_frames(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, chat_burst=100))
    alice = await login(info, "alice")
    await join(alice, "big", create=True)
    text = "ü" * 5000  # 10 kB of UTF-8 each: 50 of them cannot share one 64 KiB frame
    for _ in range(50):
        await alice.send(ev.SendChat("big", text))
        await alice.receive_matching(ev.ChatMessage)
    bob = await login(info, "bob")
    await join(bob, "big")
    got: list[ev.ChatMessage] = []
    while len(got) < 50:
        batch = await bob.receive_matching(ev.HistoryBatch)
        got.extend(batch.messages)
    assert len(got) == 50 and all(m.content == text for m in got)


async def test_resend_with_client_id_is_not_duplicated(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice, bob = await login(info, "alice"), await login(info, "bob")
    await join(alice, "r", create=True)
    await join(bob, "r")
    await alice.send(ev.SendChat("r", "once", client_msg_id="uuid-1"))
    first = await alice.receive_matching(ev.ChatMessage)
    await bob.receive_matching(ev.ChatMessage)
    # The client reconnects and resends the same message.
    await alice.aclose()
    alice = await login(info, "alice")
    await join(alice, "r")
    await alice.send(ev.SendChat("r", "once", client_msg_id="uuid-1"))
    again = await alice.receive_matching(ev.ChatMessage)
    assert again.message_id == first.message_id
    await alice.send(ev.SendChat("r", "twice", client_msg_id="uuid-2"))
    # Bob sees alice leave and come back, then only the new message: no duplicate.
    nxt = await bob.receive_matching(ev.ChatMessage)
    assert nxt.content == "twice"


async def test_room_errors_and_listing(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice = await login(info, "alice")
    await alice.send(ev.JoinRoom("nowhere"), 3)
    reply = await next_of(alice, ev.ErrorReply)
    err = reply.event
    assert err.code == ev.ErrorCode.UNKNOWN_ROOM and reply.request_id == 3
    assert "nowhere" in err.message
    await join(alice, "a", create=True)
    await alice.send(ev.CreateRoom("a"))
    assert (await alice.receive_matching(ev.ErrorReply)).code == ev.ErrorCode.ROOM_EXISTS
    await alice.send(ev.CreateRoom("  bad\n"))
    assert (await alice.receive_matching(ev.ErrorReply)).code == ev.ErrorCode.INVALID_NAME
    snap = await join(alice, "a")  # joining again is not an error
    assert [m.username for m in snap.members] == ["alice"]
    await join(alice, "b", create=True)
    await alice.send(ev.SendChat("c", "x"))
    assert (await alice.receive_matching(ev.ErrorReply)).code == ev.ErrorCode.UNKNOWN_ROOM
    bob = await login(info, "bob")
    await join(bob, "b")
    await bob.send(ev.ListRooms(), 9)
    reply = await next_of(bob, ev.RoomListing)
    listing = reply.event
    assert reply.request_id == 9
    assert {(r.room_id, r.member_count) for r in listing.rooms} == {("a", 1), ("b", 2)}

    await bob.send(ev.LeaveRoom("b"))
    left = await bob.receive_matching(ev.MemberLeft)
    assert left.member.username == "bob"
    seen = await alice.receive_matching(ev.MemberLeft)
    assert (seen.room_id, seen.member.username) == ("b", "bob")
    await bob.send(ev.LeaveRoom("b"))
    assert (await bob.receive_matching(ev.ErrorReply)).code == ev.ErrorCode.NOT_IN_ROOM
    await bob.send(ev.SendChat("b", "not a member"))
    assert (await bob.receive_matching(ev.ErrorReply)).code == ev.ErrorCode.NOT_IN_ROOM


async def test_chat_limits(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice = await login(info, "alice")
    await join(alice, "r", create=True)
    await alice.send(ev.SendChat("r", "x" * 5001))
    err = await alice.receive_matching(ev.ErrorReply)
    assert err.code == ev.ErrorCode.TOO_LONG and "5000" in err.message
    await alice.send(ev.SendChat("r", "   "))
    assert (await alice.receive_matching(ev.ErrorReply)).code == ev.ErrorCode.BAD_REQUEST
    await alice.send(ev.SendChat("r", "y" * 5000))
    assert len((await alice.receive_matching(ev.ChatMessage)).content) == 5000


async def test_rate_limit_answers_with_an_error_not_a_disconnect(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, chat_rate=10, chat_burst=20))
    alice = await login(info, "alice")
    await join(alice, "r", create=True)
    for i in range(25):
        await alice.send(ev.SendChat("r", f"m{i}"), i + 1)
    accepted, limited = [], []
    while len(accepted) + len(limited) < 25:
        n = (await alice.receive()).event
        if isinstance(n, ev.ChatMessage):
            accepted.append(n)
        elif isinstance(n, ev.ErrorReply):
            assert n.code == ev.ErrorCode.RATE_LIMITED and n.retry_after_s > 0
            limited.append(n)
    assert len(accepted) == 20 and len(limited) == 5
    await trio.sleep(1.0)  # ten more tokens
    await alice.send(ev.SendChat("r", "after a pause"))
    assert (await alice.receive_matching(ev.ChatMessage)).content == "after a pause"


async def test_typing_reaches_others_only(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice, bob = await login(info, "alice"), await login(info, "bob")
    await join(alice, "r", create=True)
    await join(bob, "r")
    await alice.send(ev.SetTyping("r", True))
    await alice.send(ev.SendChat("r", "done typing"))
    typing = await bob.receive_matching(ev.TypingNotice)
    assert (typing.username, typing.active, typing.room_id) == ("alice", True, "r")
    # alice's own stream holds her chat echo but no typing notice of her own
    seen = []
    while True:
        n = (await alice.receive()).event
        seen.append(n)
        if isinstance(n, ev.ChatMessage):
            break
    assert not any(isinstance(n, ev.TypingNotice) for n in seen)


async def test_requests_before_login_are_refused(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    anon = await connect(info)
    await anon.send(ev.JoinRoom("x"), 5)
    reply = await next_of(anon, ev.ErrorReply)
    assert reply.event.code == ev.ErrorCode.NOT_LOGGED_IN and reply.request_id == 5
    await anon.send(ev.Ping(nonce=42))
    assert (await anon.receive_matching(ev.Pong)).nonce == 42
    assert (await anon.login("dave", "pw")).ok
    await anon.send(ev.Login("dave", "pw"))
    assert (await anon.receive_matching(ev.ErrorReply)).code == ev.ErrorCode.ALREADY_LOGGED_IN
