"""Listeners' loss reports reach the speaker as VoiceLossFeedback, through the real server."""

from __future__ import annotations

from pathlib import Path

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.server.app import EchoMeshServer, ServerInfo
from echomesh_trio.server.voice_control import RelayControl
from tests.server.helpers import join, login, make_settings, next_of


async def test_listeners_reports_are_aggregated_for_the_speaker(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = EchoMeshServer(make_settings(tmp_path), voice=RelayControl())
    info: ServerInfo = await nursery.start(server.serve)
    speaker = await login(info, "sam")
    sam_id = (await speaker.receive_matching(ev.VoiceSetupInfo)).source_id
    lena = await login(info, "lena")
    await lena.receive_matching(ev.VoiceSetupInfo)
    await join(speaker, "talk", create=True)
    await join(lena, "talk")

    await lena.send(ev.ReportVoiceLoss((ev.SpeakerLoss(sam_id, 250, 25, 5),)), 40)
    feedback = (await next_of(speaker, ev.VoiceLossFeedback)).event
    assert feedback.listeners == 1
    assert abs(feedback.loss - 0.10) < 1e-6 and abs(feedback.late_loss - 0.02) < 1e-6
    assert abs(feedback.worst_loss - 0.10) < 1e-6

    # Reports about source ids nobody has are dropped, so they cannot fill the server.
    await lena.send(ev.ReportVoiceLoss((ev.SpeakerLoss(0x1234567, 100, 1, 0),)), 39)
    await lena.send(ev.Ping(nonce=8))
    assert (await lena.receive_matching(ev.Pong)).nonce == 8
    assert server.service is not None
    assert server.service.loss_feedback.statistics() == (1, 1)  # only lena's report on sam

    # Counts that cannot be true are refused with the request's id; the connection stays.
    await lena.send(ev.ReportVoiceLoss((ev.SpeakerLoss(sam_id, 10, 8, 8),)), 41)
    reply = await next_of(lena, ev.ErrorReply)
    assert reply.request_id == 41 and reply.event.code == ev.ErrorCode.BAD_REQUEST
    await lena.send(ev.Ping(nonce=9))
    assert (await lena.receive_matching(ev.Pong)).nonce == 9


async def test_loss_reports_need_voice(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = EchoMeshServer(make_settings(tmp_path))
    info: ServerInfo = await nursery.start(server.serve)
    conn = await login(info, "quiet")
    await conn.send(ev.ReportVoiceLoss(()), 5)
    reply = await next_of(conn, ev.ErrorReply)
    assert reply.request_id == 5 and "voice is not enabled" in reply.event.message
