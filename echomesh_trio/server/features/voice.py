"""Voice over the control channel: the active voice room, the transport (UDP or the TCP
tunnel), tunnelled datagrams, statistics and the listeners' loss reports. The datagrams
themselves are the relay's (echomesh_trio.voice)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import notice_frame
from echomesh_trio.server.request import Request, quoted
from echomesh_trio.voice.loss import InvalidLossReport, check_report

if TYPE_CHECKING:
    from echomesh_trio.server.connection import Connection
    from echomesh_trio.server.service import ControlService, VoiceControl

E = ev.ErrorCode

NO_VOICE = "voice is not enabled on this server"


def _voice(svc: ControlService, req: Request[object]) -> VoiceControl | None:
    if svc.voice is None:
        req.fail(E.BAD_REQUEST, NO_VOICE)
    return svc.voice


async def on_set_room(svc: ControlService, req: Request[ev.SetVoiceRoom]) -> None:
    room = req.event.room_id or None
    if room is not None and not svc.registry.is_member(req.session, room):
        req.fail(E.NOT_IN_ROOM, f"join room {quoted(room)} before talking in it")
        return
    if _voice(svc, req) is None:
        return
    svc.set_voice_room(req.session, room, req.request_id)


async def on_transport(svc: ControlService, req: Request[ev.ChooseVoiceTransport]) -> None:
    voice = _voice(svc, req)
    if voice is not None:
        voice.set_transport(req.session.source_id, req.event.transport, _tunnel_sender(req.conn))


async def on_tunnelled(svc: ControlService, req: Request[ev.VoiceDatagram]) -> None:
    voice = _voice(svc, req)
    if voice is not None:
        voice.receive_tunnelled(req.session.source_id, req.event.datagram)


async def on_stats(svc: ControlService, req: Request[ev.RequestVoiceStats]) -> None:
    voice = _voice(svc, req)
    if voice is not None:
        report = voice.user_report(req.session.source_id)
        if svc.calls.relay_room(req.session.user_id) is not None:
            # In a call: the active room is still the one the voice returns to.
            report = dataclasses.replace(report, active_room=req.session.voice_room or "")
        req.reply(report)


async def on_loss_report(svc: ControlService, req: Request[ev.ReportVoiceLoss]) -> None:
    if _voice(svc, req) is None:
        return
    try:
        check_report(req.event.speakers)
    except InvalidLossReport as exc:
        req.fail(E.BAD_REQUEST, str(exc))
        return
    # Only speakers who are online now: the feedback table then stays bounded by the
    # sessions (an entry goes when either side's session ends), whatever ids a client sends.
    known = [x for x in req.event.speakers if x.source_id in svc.sessions_by_source]
    due = svc.loss_feedback.record(req.session.source_id, known, trio.current_time())
    for speaker, feedback in due:
        session = svc.sessions_by_source.get(speaker)
        if session is not None:
            session.peer.send_nowait(feedback)


def _tunnel_sender(conn: Connection) -> Callable[[bytes], bool]:
    """A non-blocking way for the relay to push datagrams down this control connection."""

    def send(datagram: bytes) -> bool:
        return conn.offer_frame_nowait(notice_frame(ev.VoiceDatagram(datagram)))

    return send
