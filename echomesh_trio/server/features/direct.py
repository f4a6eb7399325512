"""Direct messages: stored, acknowledged to the sender, delivered at once or at the
recipient's next login.

Delivery is at least once: a message counts as delivered only once its frame has left for
the recipient, so a connection lost in between gets it again at the next login; clients
recognise repeats by ``message_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from echomesh_trio.protocol import events as ev
from echomesh_trio.server.request import CLIENT_ID_REUSED, Request, quoted
from echomesh_trio.server.store import ClientIdReused, UserRecord

from .chat import content_problem, take_message_token

if TYPE_CHECKING:
    from echomesh_trio.server.connection import Connection
    from echomesh_trio.server.service import ControlService
    from echomesh_trio.server.state import Session

E = ev.ErrorCode


async def on_direct(svc: ControlService, req: Request[ev.SendDirect]) -> None:
    request, session, store = req.event, req.session, svc.store
    problem = content_problem(svc, request.content, request.client_msg_id)
    if problem is not None:
        req.fail(*problem)
        return
    if request.to_user_id:
        recipient = await store.run(store.db.get_user_by_id, request.to_user_id)
    else:
        recipient = await store.run(store.db.get_user, request.to_username)
    if recipient is None:
        who = quoted(request.to_username) if request.to_username else f"id {request.to_user_id}"
        req.fail(E.UNKNOWN_USER, f"no user {who}")
        return
    if not take_message_token(svc, req):
        return
    sender = UserRecord(session.user_id, session.username, "")
    try:
        message, is_new = await store.run(
            store.db.add_direct,
            sender,
            recipient,
            request.content,
            request.client_msg_id,
            svc.now_ms(),
        )
    except ClientIdReused:
        req.fail(E.BAD_REQUEST, CLIENT_ID_REUSED)
        return
    req.reply(message)  # the sender's acknowledgement
    if not is_new:
        return
    svc.metrics.direct_messages += 1
    if recipient.user_id == session.user_id:  # a note to self: the ack is the delivery
        await mark_delivered_when_written(svc, req.conn, [message.message_id])
        return
    target = svc.registry.current(recipient.user_id)
    if target is not None and not target.peer.closing:
        target.peer.send_nowait(message)
        # Confirmed by a task of its own so that this sender's requests do not wait on
        # another user's connection.
        svc.background.start_soon(
            mark_delivered_when_written, svc, target.peer, [message.message_id]
        )


async def deliver_pending(svc: ControlService, session: Session[Connection]) -> None:
    """Send what was stored while the user was away (right after login)."""
    pending = await svc.store.run(svc.store.db.pending_direct, session.user_id)
    if not pending or svc.registry.current(session.user_id) is not session:
        return
    for message in pending:
        session.peer.send_nowait(message)
    await mark_delivered_when_written(svc, session.peer, [m.message_id for m in pending])


async def mark_delivered_when_written(
    svc: ControlService, conn: Connection, message_ids: list[int]
) -> None:
    """Mark direct messages delivered once their frames have left for the recipient."""
    if await conn.wait_written(conn.frames_queued):
        await svc.store.run(svc.store.db.mark_delivered, message_ids)
