"""Rooms: create, join, leave, delete, list.

Rooms persist in the database; membership is in ``Registry`` only (it ends with the
session). Joining sends the member list (split across frames for large rooms), then the
recent history; the room joined last becomes the active voice room.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import notice_frame
from echomesh_trio.server.request import MEMBERS_PER_FRAME, ROOMS_PER_FRAME, Request, quoted
from echomesh_trio.server.state import room_name_problem

from .chat import history_frames

if TYPE_CHECKING:
    from echomesh_trio.server.connection import Connection
    from echomesh_trio.server.service import ControlService
    from echomesh_trio.server.state import Session

log = logging.getLogger("echomesh.server")

E = ev.ErrorCode


def room_exists_message(room: str) -> str:
    return f"room {quoted(room)} already exists; join it"


def not_in_room_code(svc: ControlService, room: str) -> E:
    """NOT_IN_ROOM for a room that exists, UNKNOWN_ROOM for one that does not."""
    return E.NOT_IN_ROOM if svc.registry.room_exists(room) else E.UNKNOWN_ROOM


async def on_create(svc: ControlService, req: Request[ev.CreateRoom]) -> None:
    room = req.event.room_id
    problem = room_name_problem(room)
    if problem is not None:
        req.fail(E.INVALID_NAME, problem)
        return
    if svc.registry.room_exists(room):
        req.fail(E.ROOM_EXISTS, room_exists_message(room))
        return
    created = await svc.store.run(svc.store.db.create_room, room, req.session.user_id, svc.now_ms())
    if not svc.registry.create_room(room) and not created:
        req.fail(E.ROOM_EXISTS, room_exists_message(room))
        return
    log.info("%s created room %r", req.session.username, room)
    await join(svc, req.conn, req.session, room, req.request_id)


async def on_join(svc: ControlService, req: Request[ev.JoinRoom]) -> None:
    room = req.event.room_id
    if not svc.registry.room_exists(room):
        req.fail(E.UNKNOWN_ROOM, f"no room named {quoted(room)}; create it first")
        return
    await join(svc, req.conn, req.session, room, req.request_id)


async def join(
    svc: ControlService,
    conn: Connection,
    session: Session[Connection],
    room: str,
    request_id: int,
) -> None:
    registry = svc.registry
    newly = registry.join(session, room)
    if newly:
        others = [s for s in registry.members(room) if s is not session]
        svc.broadcast(others, notice_frame(ev.MemberJoined(room, session.member())))
    members = tuple(s.member() for s in registry.members(room))
    Request(conn, session, request_id, ev.JoinRoom(room)).reply_in_parts(
        members, MEMBERS_PER_FRAME, lambda part, more: ev.RoomSnapshot(room, part, more)
    )
    if newly:  # the room joined last becomes the active voice room
        svc.set_voice_room(session, room)
    history = await svc.store.run(svc.store.db.recent_chat, room, svc.settings.history_on_join)
    if history and registry.is_member(session, room):
        for frame in history_frames(room, history):
            conn.send_frame_nowait(frame)


async def on_leave(svc: ControlService, req: Request[ev.LeaveRoom]) -> None:
    room, session = req.event.room_id, req.session
    if not svc.registry.leave(session, room):
        req.fail(not_in_room_code(svc, room), f"you are not in room {quoted(room)}")
        return
    if session.voice_room == room:
        svc.set_voice_room(session, session.rooms[-1] if session.rooms else None)
    left = ev.MemberLeft(room, session.member())
    svc.broadcast(svc.registry.members(room), notice_frame(left))
    req.reply(left)


async def on_delete(svc: ControlService, req: Request[ev.DeleteRoom]) -> None:
    room = req.event.room_id
    if not svc.registry.room_exists(room):
        req.fail(E.UNKNOWN_ROOM, f"no room named {quoted(room)}")
        return
    req.fail(E.BAD_REQUEST, "this server does not delete rooms yet")


async def on_list(svc: ControlService, req: Request[ev.ListRooms]) -> None:
    req.reply_in_parts(
        svc.registry.listing(), ROOMS_PER_FRAME, lambda part, more: ev.RoomListing(part, more)
    )
