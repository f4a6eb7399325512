"""The dispatch table, and requests that are well-formed but undefined, through the server."""

from __future__ import annotations

import typing
from pathlib import Path

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol import message_pb2 as pb
from echomesh_trio.protocol.framing import MAX_FRAME_SIZE, encode_frame
from echomesh_trio.server.features import HANDLERS, OPEN_HANDLERS
from tests.server.helpers import expect_closed, login, make_settings, next_of, start_server


def test_every_request_type_has_exactly_one_handler() -> None:
    requests = set(typing.get_args(ev.ClientRequest))
    assert set(HANDLERS) | set(OPEN_HANDLERS) == requests
    assert not set(HANDLERS) & set(OPEN_HANDLERS)


async def test_an_undefined_room_action_is_a_bad_request_and_the_connection_stays(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice = await login(info, "alice")
    msg = pb.EchoMsg(type=pb.MT_ROOM_ACTION, request_id=21)
    msg.room_action.action_type = 99  # type: ignore[assignment]
    msg.room_action.room_id = "lobby"
    await alice.send_raw(encode_frame(msg.SerializeToString()))
    reply = await next_of(alice, ev.ErrorReply)
    assert reply.request_id == 21 and reply.event.code == ev.ErrorCode.BAD_REQUEST
    assert "room action 99" in reply.event.message
    await alice.send(ev.Ping(nonce=3))
    assert (await alice.receive_matching(ev.Pong)).nonce == 3


async def test_an_error_that_closes_carries_the_request_id(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice = await login(info, "alice")
    server_only = pb.EchoMsg(type=pb.MT_LOGIN_RESPONSE, request_id=77).SerializeToString()
    await alice.send_raw(encode_frame(server_only))
    reply = await next_of(alice, ev.ErrorReply)
    assert reply.request_id == 77 and reply.event.code == ev.ErrorCode.UNKNOWN_TYPE
    seen = await expect_closed(alice)
    assert any(isinstance(n, ev.Goodbye) for n in seen)


async def test_a_huge_name_gets_an_ordinary_error(nursery: trio.Nursery, tmp_path: Path) -> None:
    """Errors quote a short prefix of what the peer sent, so the reply always fits a frame."""
    _, info = await start_server(nursery, make_settings(tmp_path))
    alice = await login(info, "alice")
    huge = "\U0001f600" * ((MAX_FRAME_SIZE - 64) // 4)
    for request in (ev.JoinRoom(huge), ev.LeaveRoom(huge), ev.SetTyping(huge, True)):
        await alice.send(request, 8)
        reply = await next_of(alice, ev.ErrorReply)
        assert reply.request_id == 8
        assert reply.event.code in (ev.ErrorCode.UNKNOWN_ROOM, ev.ErrorCode.NOT_IN_ROOM)
        assert len(reply.event.message) < 200
    await alice.send(ev.Ping(nonce=4))
    assert (await alice.receive_matching(ev.Pong)).nonce == 4
