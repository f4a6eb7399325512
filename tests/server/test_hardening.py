"""Hardening through the real server: budgets, slow frames, room deletion, long input,
client_msg_id rules and usernames (real sockets on 127.0.0.1, a real SQLite file)."""

from __future__ import annotations

import struct
from pathlib import Path

import trio

from echomesh_trio.client.control import ControlConnection
from echomesh_trio.protocol import events as ev
from tests.server.helpers import connect, expect_closed, join, login, make_settings, start_server

E = ev.ErrorCode


async def reply_to(conn: ControlConnection, request: ev.ClientRequest) -> ev.ServerNotice:
    """Send ``request`` and return the first notice answering it (others are dropped)."""
    request_id = await conn.request(request)
    while True:
        incoming = await conn.receive()
        if incoming.request_id == request_id:
            return incoming.event


async def test_a_started_frame_must_complete_within_the_bound(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, frame_timeout=0.2))
    alice = await login(info, "alice")
    await alice.send_raw(struct.pack(">I", 100)[:2])  # half a length prefix, then nothing
    seen = await expect_closed(alice)
    errors = [n for n in seen if isinstance(n, ev.ErrorReply)]
    assert errors and errors[0].code == E.MALFORMED_FRAME and "0.2 seconds" in errors[0].message
    assert any(
        isinstance(n, ev.Goodbye) and n.reason == ev.GoodbyeReason.PROTOCOL_ERROR for n in seen
    )
    # A connection that sends whole frames is not affected.
    bob = await login(info, "bob")
    assert isinstance(await reply_to(bob, ev.Ping(1, 2)), ev.Pong)


async def test_typing_burst_reaches_others_as_a_few_notices(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice, bob = await login(info, "alice"), await login(info, "bob")
    await join(alice, "r", create=True)
    await join(bob, "r")
    for i in range(1000):
        await alice.send(ev.SetTyping("r", i % 2 == 0))
    await alice.send(ev.SendChat("r", "done"))
    typing = 0
    while True:
        event = (await bob.receive()).event
        if isinstance(event, ev.TypingNotice):
            typing += 1
        if isinstance(event, ev.ChatMessage):
            break
    assert 1 <= typing <= 4
    assert isinstance(await reply_to(alice, ev.Ping(1, 2)), ev.Pong)  # no errors queued


async def test_join_leave_flood_is_rate_limited(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice = await login(info, "alice")
    await join(alice, "r", create=True)
    refused = []
    for _ in range(50):
        for request in (ev.LeaveRoom("r"), ev.JoinRoom("r")):
            reply = await reply_to(alice, request)
            if isinstance(reply, ev.ErrorReply):
                refused.append(reply)
    assert refused and all(r.code == E.RATE_LIMITED and r.retry_after_s > 0 for r in refused)


async def test_room_creation_caps(nursery: trio.Nursery, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rooms_per_user_per_hour=2, max_rooms=3)
    _, info = await start_server(nursery, settings)
    alice, bob = await login(info, "alice"), await login(info, "bob")
    assert isinstance(await reply_to(alice, ev.CreateRoom("a1")), ev.RoomSnapshot)
    assert isinstance(await reply_to(alice, ev.CreateRoom("a2")), ev.RoomSnapshot)
    per_user = await reply_to(alice, ev.CreateRoom("a3"))
    assert isinstance(per_user, ev.ErrorReply) and per_user.code == E.RATE_LIMITED
    assert isinstance(await reply_to(bob, ev.CreateRoom("b1")), ev.RoomSnapshot)
    full = await reply_to(bob, ev.CreateRoom("b2"))
    assert isinstance(full, ev.ErrorReply) and "maximum of 3 rooms" in full.message


async def test_the_creator_deletes_a_room_and_members_are_told(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server, info = await start_server(nursery, make_settings(tmp_path))
    alice, bob = await login(info, "alice"), await login(info, "bob")
    await join(alice, "old", create=True)
    await join(bob, "old")
    await alice.send(ev.SendChat("old", "secret plans"))
    await bob.receive_matching(ev.ChatMessage)
    refused = await reply_to(bob, ev.DeleteRoom("old"))
    assert isinstance(refused, ev.ErrorReply) and "creator" in refused.message
    done = await reply_to(alice, ev.DeleteRoom("old"))
    assert isinstance(done, ev.RoomDeleted) and done.room_id == "old"
    told = await bob.receive_matching(ev.RoomDeleted)
    assert told.room_id == "old" and told.by.username == "alice"
    listing = await reply_to(bob, ev.ListRooms())
    assert isinstance(listing, ev.RoomListing) and listing.rooms == ()
    gone = await reply_to(bob, ev.JoinRoom("old"))
    assert isinstance(gone, ev.ErrorReply) and gone.code == E.UNKNOWN_ROOM
    # Recreated under the same name, it starts without the old history.
    assert isinstance(await reply_to(bob, ev.CreateRoom("old")), ev.RoomSnapshot)
    assert server.service is not None
    assert server.service.store.db.recent_chat("old", 10) == []


async def test_near_frame_limit_names_get_a_normal_error(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice = await login(info, "alice")
    huge = "x" * 65_000
    for request in (
        ev.JoinRoom(huge),
        ev.LeaveRoom(huge),
        ev.SetTyping(huge, True),
        ev.SendChat(huge, "hi"),
        ev.SendDirect("hi", to_username=huge),
        ev.DeleteRoom(huge),
    ):
        reply = await reply_to(alice, request)
        assert isinstance(reply, ev.ErrorReply) and reply.code != E.INTERNAL, request
        assert len(reply.message) < 200
    assert isinstance(await reply_to(alice, ev.Ping(1, 2)), ev.Pong)  # still connected


async def test_client_msg_id_rules(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice, bob = await login(info, "alice"), await login(info, "bob")
    await join(alice, "r", create=True)
    long_a, long_b = "p" * 64 + "a", "p" * 64 + "b"  # once cut to 64, these were equal
    for cid in (long_a, long_b):
        reply = await reply_to(alice, ev.SendChat("r", "hi", client_msg_id=cid))
        assert isinstance(reply, ev.ErrorReply) and reply.code == E.TOO_LONG
    first = await reply_to(alice, ev.SendChat("r", "hi", client_msg_id="c1"))
    again = await reply_to(alice, ev.SendChat("r", "hi", client_msg_id="c1"))
    assert isinstance(first, ev.ChatMessage) and again == first  # an honest resend
    other = await reply_to(alice, ev.SendChat("r", "something else", client_msg_id="c1"))
    assert isinstance(other, ev.ErrorReply) and other.code == E.BAD_REQUEST
    assert "reused" in other.message
    dm = await reply_to(alice, ev.SendDirect("psst", to_username="bob", client_msg_id="d1"))
    assert isinstance(dm, ev.DirectMessage)
    dm_other = await reply_to(alice, ev.SendDirect("else", to_username="bob", client_msg_id="d1"))
    assert isinstance(dm_other, ev.ErrorReply) and "reused" in dm_other.message
    too_long = await reply_to(alice, ev.SendDirect("x", to_username="bob", client_msg_id=long_a))
    assert isinstance(too_long, ev.ErrorReply) and too_long.code == E.TOO_LONG
    await bob.aclose()


async def test_usernames_through_the_server(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    await login(info, "alice", "pw-a")
    same = await (await connect(info)).login(
        "\uff21\uff2c\uff29\uff23\uff25", "pw-a"
    )  # full width: the same user
    assert same.ok and same.username == "alice"
    lookalike = await (await connect(info)).login("\u0430lice", "pw")  # Cyrillic a
    assert lookalike.status_code == ev.LoginStatus.BAD_REQUEST and lookalike.message
    dotless = await (await connect(info)).login("al\u0131ce", "pw")
    assert dotless.status_code == ev.LoginStatus.BAD_REQUEST and "alice" in dotless.message
    assert (await (await connect(info)).login("Δημήτρης", "pw")).ok


async def test_concurrent_first_logins_do_not_block_the_address(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    results: list[ev.LoginResult] = []

    async def attempt(i: int) -> None:
        results.append(await (await connect(info)).login("dana", f"pw{i}"))

    async with trio.open_nursery() as attempts:
        for i in range(8):
            attempts.start_soon(attempt, i)
    assert sum(r.ok for r in results) == 1  # one registered the name, 7 had its password wrong
    # Others behind the same address still register and log in.
    assert (await (await connect(info)).login("erin", "pw")).ok
