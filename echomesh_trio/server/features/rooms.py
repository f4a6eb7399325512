"""Rooms: create, join, leave, delete, list.

Rooms persist in the database; membership is in ``Registry`` only (it ends with the
session). Joining sends the member list (split across frames for large rooms), then the
recent history; the room joined last becomes the active voice room. Creating, joining,
leaving and deleting are budgeted per user (``UserBudgets``); the owner of a room (its
creator) may delete it, with its history, and its members are told.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import notice_frame
from echomesh_trio.server.limits import Verdict
from echomesh_trio.server.request import (
    MEMBERS_PER_FRAME,
    ROOMS_PER_FRAME,
    Request,
    no_such_room,
    not_in_room,
    quoted,
)
from echomesh_trio.server.state import Session, room_name_problem
from echomesh_trio.server.store import RoomDeletion

from .chat import history_frames

if TYPE_CHECKING:
    from echomesh_trio.server.connection import Connection
    from echomesh_trio.server.service import ControlService

log = logging.getLogger("echomesh.server")

E = ev.ErrorCode


def room_exists_message(room: str) -> str:
    return f"room {quoted(room)} already exists; join it"


def refused(req: Request[object], verdict: Verdict) -> bool:
    """Tell the sender when a budget said no; True if it did."""
    if verdict:
        return False
    if verdict.retry_after > 0:
        req.fail(E.RATE_LIMITED, verdict.reason, verdict.retry_after)
    else:  # a cap, not a rate: waiting does not help
        req.fail(E.BAD_REQUEST, verdict.reason)
    return True


def _room_action_refused(svc: ControlService, req: Request[object]) -> bool:
    return refused(req, svc.budgets.allow_room_action(req.session.user_id, trio.current_time()))


async def on_create(svc: ControlService, req: Request[ev.CreateRoom]) -> None:
    room = req.event.room_id
    problem = room_name_problem(room)
    if problem is not None:
        req.fail(E.INVALID_NAME, problem)
        return
    if svc.registry.room_exists(room):
        req.fail(E.ROOM_EXISTS, room_exists_message(room))
        return
    now = trio.current_time()
    if refused(req, svc.budgets.allow_create(req.session.user_id, now, len(svc.registry.rooms))):
        return
    created = await svc.store.run(svc.store.db.create_room, room, req.session.user_id, svc.now_ms())
    if not svc.registry.create_room(room) and not created:
        req.fail(E.ROOM_EXISTS, room_exists_message(room))
        return
    log.info("%s created room %r", req.session.username, room)
    await join(svc, req)


async def on_join(svc: ControlService, req: Request[ev.JoinRoom]) -> None:
    room = req.event.room_id
    if _room_action_refused(svc, req):
        return
    if not svc.registry.room_exists(room):
        req.fail(E.UNKNOWN_ROOM, f"{no_such_room(room)}; create it first")
        return
    await join(svc, req)


async def join(svc: ControlService, req: Request[ev.CreateRoom | ev.JoinRoom]) -> None:
    """Put the session in the room: members told, the room's state as the reply, the
    active voice room moved to it, then its recent history."""
    room, session, registry = req.event.room_id, req.session, svc.registry
    if registry.current(session.user_id) is not session:
        return  # replaced or ended while a create awaited the database: it joins nothing
    newly = registry.join(session, room)
    if newly:
        others = [s for s in registry.members(room) if s is not session]
        svc.broadcast(others, notice_frame(ev.MemberJoined(room, session.member())))
    members = tuple(s.member() for s in registry.members(room))
    req.reply_in_parts(
        members, MEMBERS_PER_FRAME, lambda part, more: ev.RoomSnapshot(room, part, more)
    )
    if newly:  # the room joined last becomes the active voice room
        svc.set_voice_room(session, room)
    history = await svc.store.run(svc.store.db.recent_chat, room, svc.settings.history_on_join)
    if history and registry.is_member(session, room):
        for frame in history_frames(room, history):
            req.conn.send_frame_nowait(frame)


async def on_leave(svc: ControlService, req: Request[ev.LeaveRoom]) -> None:
    room, session = req.event.room_id, req.session
    if _room_action_refused(svc, req):
        return
    left = remove_member(svc, session, room)
    if left is None:
        req.fail(svc.not_in_room_code(room), not_in_room(room))
        return
    req.reply(left)


def remove_member(
    svc: ControlService, session: Session[Connection], room: str
) -> ev.MemberLeft | None:
    """Take the session out of the room (leaving, or kicked): the remaining members are
    told, its active voice room moves to the room it joined before. Returns the notice
    for the session itself to get, or None if it was not in the room."""
    if not svc.registry.leave(session, room):
        return None
    svc.budgets.forget_typing(session.user_id, room)
    if session.voice_room == room:
        svc.set_voice_room(session, session.rooms[-1] if session.rooms else None)
    left = ev.MemberLeft(room, session.member())
    svc.broadcast(svc.registry.members(room), notice_frame(left))
    return left


async def on_delete(svc: ControlService, req: Request[ev.DeleteRoom]) -> None:
    room, session = req.event.room_id, req.session
    if not svc.registry.room_exists(room):
        req.fail(E.UNKNOWN_ROOM, no_such_room(room))
        return
    if _room_action_refused(svc, req):
        return
    outcome = await svc.store.run(svc.store.db.delete_room, room, session.user_id)
    if outcome is RoomDeletion.NOT_OWNER:
        req.fail(E.BAD_REQUEST, f"only the room's creator may delete room {quoted(room)}")
        return
    if outcome is RoomDeletion.MISSING and not svc.registry.room_exists(room):
        req.fail(E.UNKNOWN_ROOM, no_such_room(room))  # deleted while we asked
        return
    log.info("%s deleted room %r", session.username, room)
    notice = ev.RoomDeleted(room, session.member())
    members = svc.registry.delete_room(room)
    svc.mutes = {m for m in svc.mutes if m[1] != room}  # a later room of that name starts clean
    svc.broadcast([m for m in members if m is not session], notice_frame(notice))
    for member in members:
        svc.budgets.forget_typing(member.user_id, room)
        if member.voice_room == room:
            svc.set_voice_room(member, member.rooms[-1] if member.rooms else None)
    req.reply(notice)


async def on_list(svc: ControlService, req: Request[ev.ListRooms]) -> None:
    req.reply_in_parts(
        svc.registry.listing(), ROOMS_PER_FRAME, lambda part, more: ev.RoomListing(part, more)
    )
