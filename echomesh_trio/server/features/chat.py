"""Room chat and typing indicators.

A chat message is committed to the database before anyone, its sender included, is told
about it; the sender's copy (with its ``request_id``) is the acknowledgement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import encode_notice, notice_frame
from echomesh_trio.protocol.framing import MAX_FRAME_SIZE
from echomesh_trio.server.request import CLIENT_ID_REUSED, Request, not_in_room, quoted
from echomesh_trio.server.store import ClientIdReused

if TYPE_CHECKING:
    from echomesh_trio.server.service import ControlService

E = ev.ErrorCode

MAX_CLIENT_MSG_ID = 64
"""Characters of a ``client_msg_id``; a longer one is refused (ERR_TOO_LONG), never cut:
two ids sharing a prefix would otherwise make the second message look like a resend."""


def content_problem(
    svc: ControlService, content: str, client_msg_id: str = ""
) -> tuple[E, str] | None:
    """Why a chat or direct message's text or client id is refused, or None."""
    if not content.strip():
        return E.BAD_REQUEST, "message is empty"
    limit = svc.settings.max_chat_chars
    if len(content) > limit:
        return E.TOO_LONG, f"message has {len(content)} characters; the limit is {limit}"
    if len(client_msg_id) > MAX_CLIENT_MSG_ID:
        return (
            E.TOO_LONG,
            f"client_msg_id has {len(client_msg_id)} characters; the limit is {MAX_CLIENT_MSG_ID}",
        )
    return None


def take_message_token(
    svc: ControlService, req: Request[ev.SendChat] | Request[ev.SendDirect]
) -> bool:
    """Chat and direct messages share one per-user budget; over it, the sender is told
    when to retry and False is returned."""
    verdict = svc.budgets.allow_message(req.session.user_id, trio.current_time())
    if not verdict:
        req.fail(E.RATE_LIMITED, verdict.reason, verdict.retry_after)
    return verdict.allowed


async def on_chat(svc: ControlService, req: Request[ev.SendChat]) -> None:
    request, session = req.event, req.session
    room = request.room_id
    if not svc.registry.is_member(session, room):
        req.fail(svc.not_in_room_code(room), f"join room {quoted(room)} before writing to it")
        return
    problem = content_problem(svc, request.content, request.client_msg_id)
    if problem is not None:
        req.fail(*problem)
        return
    if not take_message_token(svc, req):
        return
    try:
        message, is_new = await svc.store.run(
            svc.store.db.add_chat,
            room,
            session.user_id,
            session.username,
            request.content,
            request.client_msg_id,
            svc.now_ms(),
        )
    except ClientIdReused:
        req.fail(E.BAD_REQUEST, CLIENT_ID_REUSED)
        return
    if not is_new:  # a resend: acknowledge to the sender only, no duplicate
        req.reply(message)
        return
    svc.metrics.chat_messages += 1
    frame = notice_frame(message)
    own = notice_frame(message, req.request_id) if req.request_id else frame
    for member in svc.registry.members(room):
        member.peer.send_frame_nowait(own if member is session else frame)


async def on_typing(svc: ControlService, req: Request[ev.SetTyping]) -> None:
    """Forward to the room's other members, coalesced (``UserBudgets.allow_typing``):
    typing frames over the budget are dropped without an error."""
    request, session = req.event, req.session
    if not svc.registry.is_member(session, request.room_id):
        req.fail(E.NOT_IN_ROOM, not_in_room(request.room_id))
        return
    now = trio.current_time()
    if not svc.budgets.allow_typing(session.user_id, request.room_id, request.active, now):
        return
    notice = ev.TypingNotice(request.room_id, session.user_id, session.username, request.active)
    others = [s for s in svc.registry.members(request.room_id) if s is not session]
    svc.broadcast(others, notice_frame(notice))


def history_frames(room: str, messages: list[ev.ChatMessage]) -> list[bytes]:
    """Split recent history into as few HistoryBatch frames as fit the frame limit."""
    budget = MAX_FRAME_SIZE - 256  # envelope, room name and length prefixes
    frames: list[bytes] = []
    batch: list[ev.ChatMessage] = []
    size = 0
    for message in messages:
        cost = len(encode_notice(message)) + 8
        if batch and size + cost > budget:
            frames.append(notice_frame(ev.HistoryBatch(room, tuple(batch))))
            batch, size = [], 0
        batch.append(message)
        size += cost
    if batch:
        frames.append(notice_frame(ev.HistoryBatch(room, tuple(batch))))
    return frames
