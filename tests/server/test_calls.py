"""1:1 calls through the real server, with voice over UDP through the real relay: accept,
reject, no answer (Trio's fake clock), busy, hang-up, disconnect and shutdown, and the
call records in the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from echomesh_trio.client.control import ControlConnection
from echomesh_trio.protocol import events as ev
from echomesh_trio.server.app import EchoMeshServer, ServerInfo
from echomesh_trio.server.store import CallRecord, Database
from echomesh_trio.server.voice_control import RelayControl
from tests.server.helpers import expect_closed, join, login, make_settings, next_of
from tests.server.test_voice import Talker, _talker

R = ev.CallEndReason
E = ev.ErrorCode


async def _serve(
    nursery: trio.Nursery, tmp_path: Path, **changes: Any
) -> tuple[EchoMeshServer, ServerInfo]:
    # A long idle timeout: the fake-clock tests jump past the 30 s ring timeout.
    settings = make_settings(tmp_path, idle_timeout=3600.0, **changes)
    server = EchoMeshServer(settings, voice=RelayControl())
    info: ServerInfo = await nursery.start(server.serve)
    return server, info


async def _records(server: EchoMeshServer) -> list[CallRecord]:
    assert server.service is not None
    await server.service.calls.wait_records_written()
    store = server.service.store
    return await store.run(store.db.call_stats, 10)


async def _ring(caller: Talker, callee: Talker) -> int:
    """``caller`` calls ``callee``; both see it ring. Returns the call id."""
    request_id = await caller.conn.request(ev.PlaceCall(to_username=callee.name))
    mine = await caller.conn.receive_matching(ev.CallRinging, request_id=request_id)
    theirs = await callee.conn.receive_matching(ev.CallRinging)
    assert mine == theirs and mine.caller.username == caller.name
    assert (mine.callee.username, mine.callee.source_id) == (callee.name, callee.setup.source_id)
    return mine.call_id


async def _connect(caller: Talker, callee: Talker) -> int:
    call_id = await _ring(caller, callee)
    request_id = await callee.conn.request(ev.AcceptCall(call_id))
    answer = await callee.conn.receive_matching(ev.CallConnected, request_id=request_id)
    assert await caller.conn.receive_matching(ev.CallConnected) == answer
    assert answer.call_id == call_id and answer.answered_ms >= answer.requested_ms
    return call_id


async def _quiet_until_pong(conn: ControlConnection, kind: type) -> list[Any]:
    """Notices of ``kind`` that arrive before the answer to a ping sent now."""
    await conn.send(ev.Ping(nonce=77))
    seen = []
    while True:
        event = (await conn.receive()).event
        if isinstance(event, ev.Pong) and event.nonce == 77:
            return seen
        if isinstance(event, kind):
            seen.append(event)


async def test_accepted_call_carries_voice_only_between_the_parties(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server, info = await _serve(nursery, tmp_path)
    ann, ben, cat = [await _talker(info, n) for n in ("ann", "ben", "cat")]
    await join(ann.conn, "v", create=True)
    for t in (ben, cat):
        await join(t.conn, "v")
    call_id = await _connect(ann, ben)

    await ann.say_udp(b"ann to ben")
    assert (await ben.hear_udp()).frame == b"ann to ben"
    assert await cat.heard_before_pong() == []  # the room no longer hears the parties
    await cat.say_udp(b"cat to the room")
    assert await ann.heard_before_pong() == []  # ... nor do the parties hear the room
    await ben.say_udp(b"ben to ann")
    assert (await ann.hear_udp()).frame == b"ben to ann"
    assert await ben.heard_before_pong() == []  # cat's datagram never reached ben either
    request_id = await ann.conn.request(ev.RequestVoiceStats())
    stats = await ann.conn.receive_matching(ev.VoiceStatsReport, request_id=request_id)
    assert stats.active_room == "v"  # the room the voice returns to
    assert server.service is not None
    [active] = server.service.active_calls()
    assert (active["callId"], active["state"], active["caller"]) == (call_id, "connected", "ann")

    request_id = await ann.conn.request(ev.HangUp())
    ended = await ann.conn.receive_matching(ev.CallEnded, request_id=request_id)
    assert await ben.conn.receive_matching(ev.CallEnded) == ended
    assert (ended.call_id, ended.reason) == (call_id, R.HUNG_UP) and ended.duration_ms >= 0
    assert server.service.active_calls() == []
    await ann.say_udp(b"back in the room")  # the previous active room returns
    assert (await ben.hear_udp()).frame == b"back in the room"
    assert (await cat.hear_udp()).frame == b"back in the room"
    [record] = await _records(server)
    assert (record.caller, record.callee, record.end_reason) == ("ann", "ben", "hung_up")
    assert record.answered_ms is not None and record.ended_ms >= record.answered_ms


async def test_rejected_call_and_refused_requests(nursery: trio.Nursery, tmp_path: Path) -> None:
    server, info = await _serve(nursery, tmp_path)
    ann, ben = await _talker(info, "ann"), await _talker(info, "ben")
    gone = await login(info, "gone")
    await gone.aclose()
    for request, code in [
        (ev.PlaceCall(to_username="ann"), E.BAD_REQUEST),  # yourself
        (ev.PlaceCall(to_username="nobody"), E.UNKNOWN_USER),
        (ev.PlaceCall(to_user_id=999), E.UNKNOWN_USER),
        (ev.PlaceCall(to_username="gone"), E.USER_OFFLINE),
        (ev.AcceptCall(12345), E.NO_SUCH_CALL),
        (ev.HangUp(), E.NO_SUCH_CALL),
    ]:
        request_id = await ann.conn.request(request)
        reply = await ann.conn.receive_matching(ev.ErrorReply, request_id=request_id)
        assert reply.code == code, (request, reply)
    call_id = await _ring(ann, ben)
    request_id = await ann.conn.request(ev.AcceptCall(call_id))  # only the callee may
    assert (
        await ann.conn.receive_matching(ev.ErrorReply, request_id=request_id)
    ).code == E.NO_SUCH_CALL
    request_id = await ben.conn.request(ev.RejectCall(call_id))
    ended = await ben.conn.receive_matching(ev.CallEnded, request_id=request_id)
    assert await ann.conn.receive_matching(ev.CallEnded) == ended
    assert ended.reason == R.REJECTED and ended.answered_ms == 0 and ended.duration_ms == 0
    assert ben.setup.source_id and ended.callee.user_id != ended.caller.user_id
    # Calling by id works too.
    ben_id = ended.callee.user_id
    request_id = await ann.conn.request(ev.PlaceCall(to_user_id=ben_id))
    assert (await ann.conn.receive_matching(ev.CallRinging, request_id=request_id)).call_id
    [record] = await _records(server)  # the second call still rings: no record yet
    assert (record.end_reason, record.answered_ms, record.duration_ms) == ("rejected", None, 0)


async def test_an_unanswered_call_ends_after_30_seconds(
    nursery: trio.Nursery, tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    server, info = await _serve(nursery, tmp_path)
    ann, ben = await _talker(info, "ann"), await _talker(info, "ben")
    call_id = await _ring(ann, ben)
    mock_clock.jump(29.5)
    assert await _quiet_until_pong(ann.conn, ev.CallEnded) == []  # still ringing
    mock_clock.jump(0.5)
    ended = await ann.conn.receive_matching(ev.CallEnded)
    assert await ben.conn.receive_matching(ev.CallEnded) == ended
    assert (ended.call_id, ended.reason) == (call_id, R.NO_ANSWER)
    request_id = await ben.conn.request(ev.AcceptCall(call_id))  # too late
    reply = await ben.conn.receive_matching(ev.ErrorReply, request_id=request_id)
    assert reply.code == E.NO_SUCH_CALL
    assert [r.end_reason for r in await _records(server)] == ["no_answer"]


async def test_a_callee_in_a_call_is_busy(nursery: trio.Nursery, tmp_path: Path) -> None:
    server, info = await _serve(nursery, tmp_path)
    ann, ben, cat = [await _talker(info, n) for n in ("ann", "ben", "cat")]
    await _connect(ann, ben)
    request_id = await cat.conn.request(ev.PlaceCall(to_username="ben"))
    busy = await cat.conn.receive_matching(ev.CallEnded, request_id=request_id)
    assert busy.reason == R.BUSY and busy.callee.username == "ben"
    assert await _quiet_until_pong(ben.conn, ev.CallRinging | ev.CallEnded) == []  # never rang
    request_id = await ann.conn.request(ev.PlaceCall(to_username="cat"))
    reply = await ann.conn.receive_matching(ev.ErrorReply, request_id=request_id)
    assert reply.code == E.IN_CALL
    assert [r.end_reason for r in await _records(server)] == ["busy"]


async def test_a_disconnect_ends_the_call_and_the_voice_returns(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server, info = await _serve(nursery, tmp_path)
    ann, ben, cat = [await _talker(info, n) for n in ("ann", "ben", "cat")]
    await join(ann.conn, "v", create=True)
    await join(cat.conn, "v")
    await _connect(ann, ben)
    await ben.conn.aclose()
    ended = await ann.conn.receive_matching(ev.CallEnded)
    assert ended.reason == R.DISCONNECTED
    await ann.say_udp(b"to the room again")
    assert (await cat.hear_udp()).frame == b"to the room again"
    [record] = await _records(server)
    assert record.end_reason == "disconnected"
    assert server.service is not None and server.service.active_calls() == []


async def test_kicking_a_party_off_the_server_ends_its_call(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await _serve(nursery, tmp_path, admins=("root",))
    ann, ben = await _talker(info, "ann"), await _talker(info, "ben")
    root = await login(info, "root")
    await _connect(ann, ben)
    await root.send(ev.Kick("ben"), 2)
    assert (await root.receive_matching(ev.ModerationDone, request_id=2)).username == "ben"
    assert (await ann.conn.receive_matching(ev.CallEnded)).reason == R.DISCONNECTED
    seen = await expect_closed(ben.conn)
    assert [n.reason for n in seen if isinstance(n, ev.CallEnded)] == [R.DISCONNECTED]


async def test_a_session_taken_over_keeps_its_call(nursery: trio.Nursery, tmp_path: Path) -> None:
    """A login that takes the session over (a reconnect) takes the call over too."""
    _, info = await _serve(nursery, tmp_path)
    ann, ben = await _talker(info, "ann"), await _talker(info, "ben")
    call_id = await _ring(ann, ben)
    again = await _talker(info, "ben")  # ben again, from a new connection
    assert (await again.conn.receive_matching(ev.CallRinging)).call_id == call_id
    await again.conn.send(ev.AcceptCall(call_id), 4)
    await again.conn.receive_matching(ev.CallConnected, request_id=4)
    assert (await ann.conn.receive_matching(ev.CallConnected)).call_id == call_id
    await ann.say_udp(b"to ben's new connection")
    assert (await again.hear_udp()).frame == b"to ben's new connection"


async def test_a_lost_connection_ends_the_call_when_the_resume_grace_is_over(
    nursery: trio.Nursery, tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    server, info = await _serve(nursery, tmp_path, resume_grace=5.0)
    ann, ben = await _talker(info, "ann"), await _talker(info, "ben")
    await _connect(ann, ben)
    await ben.conn.aclose()
    await server.wait_connections(1)  # the server saw ben's connection end
    assert await _quiet_until_pong(ann.conn, ev.CallEnded) == []  # ben may still come back
    mock_clock.jump(5)
    assert (await ann.conn.receive_matching(ev.CallEnded)).reason == R.DISCONNECTED


async def test_shutdown_ends_calls_before_the_goodbye_and_records_them(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        server, info = await _serve(nursery, tmp_path)
        ann, ben = await _talker(info, "ann"), await _talker(info, "ben")
        await _connect(ann, ben)
        server.request_shutdown()
        for talker in (ann, ben):
            seen = await expect_closed(talker.conn)
            kinds = [type(n) for n in seen]
            assert ev.CallEnded in kinds and kinds.index(ev.CallEnded) < kinds.index(ev.Goodbye)
            ended = next(n for n in seen if isinstance(n, ev.CallEnded))
            assert ended.reason == R.SHUTDOWN
    db = Database(tmp_path / "echomesh.sqlite3")  # the server has stopped and closed it
    assert [r.end_reason for r in db.call_stats(5)] == ["shutdown"]


async def test_calls_need_voice(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = EchoMeshServer(make_settings(tmp_path))
    info: ServerInfo = await nursery.start(server.serve)
    ann, _ = await login(info, "ann"), await login(info, "ben")
    await ann.send(ev.PlaceCall(to_username="ben"), 3)
    reply = await next_of(ann, ev.ErrorReply)
    assert reply.request_id == 3 and reply.event.code == E.BAD_REQUEST
