"""1:1 calls: place, accept, reject, hang up (the state lives in ``server/calls.py``, the
adapter that tells the parties and moves their voice in ``server/call_control.py``).

A call request counts against the sender's message budget (it makes the callee's client
ring, as a direct message would notify it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.server.calls import CallRefused
from echomesh_trio.server.request import Request, quoted

from .rooms import refused
from .voice import NO_VOICE

if TYPE_CHECKING:
    from echomesh_trio.server.service import ControlService

E = ev.ErrorCode


async def on_place(svc: ControlService, req: Request[ev.PlaceCall]) -> None:
    request, store = req.event, svc.store
    if svc.voice is None:
        req.fail(E.BAD_REQUEST, NO_VOICE)
        return
    if refused(req, svc.budgets.allow_message(req.session.user_id, trio.current_time())):
        return
    if request.to_user_id:
        callee = await store.run(store.db.get_user_by_id, request.to_user_id)
    else:
        callee = await store.run(store.db.get_user, request.to_username)
    who = quoted(request.to_username) if request.to_username else f"id {request.to_user_id}"
    if callee is None:
        req.fail(E.UNKNOWN_USER, f"no user {who}")
        return
    if callee.user_id == req.session.user_id:
        req.fail(E.BAD_REQUEST, "you cannot call yourself")
        return
    target = svc.registry.current(callee.user_id)
    if target is None or target.peer.closing:
        req.fail(E.USER_OFFLINE, f"{callee.username} is not online")
        return
    if svc.registry.current(req.session.user_id) is not req.session:
        return  # this session ended while the database answered
    try:
        svc.calls.place(req.session, target, req.request_id)
    except CallRefused as exc:
        req.fail(exc.code, str(exc))


async def on_accept(svc: ControlService, req: Request[ev.AcceptCall]) -> None:
    try:
        svc.calls.accept(req.session, req.event.call_id, req.request_id)
    except CallRefused as exc:
        req.fail(exc.code, str(exc))


async def on_reject(svc: ControlService, req: Request[ev.RejectCall]) -> None:
    try:
        svc.calls.reject(req.session, req.event.call_id, req.request_id)
    except CallRefused as exc:
        req.fail(exc.code, str(exc))


async def on_hang_up(svc: ControlService, req: Request[ev.HangUp]) -> None:
    try:
        svc.calls.hang_up(req.session, req.event.call_id, req.request_id)
    except CallRefused as exc:
        req.fail(exc.code, str(exc))
