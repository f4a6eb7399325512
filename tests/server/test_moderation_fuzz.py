"""Hypothesis sends any sequence of moderation and call requests, with made-up names,
rooms, addresses, durations and call ids, from an admin, a room owner and a member of a
real server: every request gets exactly one answer with its request id (a confirmation, a
call state or an error, never ERR_INTERNAL), a connection closes only because a
moderator closed it, and the server keeps a consistent set of calls."""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echomesh_trio.client.control import ConnectionClosed, ControlConnection
from echomesh_trio.protocol import events as ev
from echomesh_trio.server.app import EchoMeshServer, ServerInfo
from echomesh_trio.server.voice_control import RelayControl
from tests.server.helpers import join, login, make_settings

ACTORS = ("root", "alice", "bob")
# Mostly names and rooms that exist (so that requests get past the lookups), some made up.
NAMES = st.sampled_from(["root", "alice", "bob", "bob", "nobody", "", "ALICE"]) | st.text(
    max_size=40
)
ROOMS = st.sampled_from(["r", "r", "", "elsewhere"]) | st.text(max_size=70)
ADDRESSES = st.sampled_from(["", "127.0.0.1", "10.0.0.7", "::1", "0:0::1", "not an ip"])
DURATIONS = st.sampled_from(
    [0.0, 60.0, -1.0, float("nan"), float("inf"), 1e300, 3.2e9]
) | st.floats(allow_nan=True)
REASONS = st.text(max_size=210)
CALL_IDS = st.integers(min_value=0, max_value=4) | st.integers(min_value=0, max_value=2**64 - 1)

REQUESTS = st.one_of(
    st.builds(ev.Kick, NAMES, ROOMS, REASONS),
    st.builds(ev.Mute, NAMES, ROOMS, REASONS),
    st.builds(ev.Unmute, NAMES, ROOMS),
    # Bans name a user or an address (mostly exactly one), for any duration.
    st.builds(ev.Ban, username=NAMES, duration_s=DURATIONS, reason=REASONS),
    st.builds(ev.Ban, address=ADDRESSES, duration_s=DURATIONS, reason=REASONS),
    st.builds(ev.Ban, NAMES, ADDRESSES, DURATIONS, REASONS),
    st.builds(ev.Unban, username=NAMES),
    st.builds(ev.Unban, NAMES, ADDRESSES),
    st.builds(ev.GrantOwner, ROOMS, NAMES),
    st.builds(ev.RevokeOwner, ROOMS, NAMES),
    st.builds(ev.PlaceCall, st.integers(0, 5), NAMES),
    st.builds(ev.AcceptCall, CALL_IDS),
    st.builds(ev.RejectCall, CALL_IDS),
    st.builds(ev.HangUp, CALL_IDS),
)
ANSWERS = (ev.ModerationDone, ev.ErrorReply, ev.CallRinging, ev.CallConnected, ev.CallEnded)


async def _scenario(data_dir: Path, steps: list[tuple[int, ev.ClientRequest]]) -> None:
    settings_ = make_settings(data_dir, admins=("root",), room_action_burst=1000, chat_burst=1000)
    async with trio.open_nursery() as nursery:
        server = EchoMeshServer(settings_, voice=RelayControl())
        info: ServerInfo = await nursery.start(server.serve)
        conns: dict[str, ControlConnection] = {n: await login(info, n) for n in ACTORS}
        await join(conns["alice"], "r", create=True)
        await join(conns["bob"], "r")
        closed: set[str] = set()
        for request_id, (who, request) in enumerate(steps, 1):
            name = ACTORS[who]
            if name in closed:
                continue
            conn = conns[name]
            try:
                await conn.send(request, request_id)
                with trio.fail_after(10):
                    while True:
                        incoming = await conn.receive()
                        if incoming.request_id == request_id:
                            break
            except ConnectionClosed as exc:
                # Only a moderator closes a connection here: a kick or a ban.
                assert exc.goodbye is not None, (name, request)
                assert exc.goodbye.reason in (ev.GoodbyeReason.KICKED, ev.GoodbyeReason.BANNED)
                assert name != "root"  # an admin is never kicked or banned
                closed.add(name)
                continue
            answer = incoming.event
            assert isinstance(answer, ANSWERS), (request, answer)
            if isinstance(answer, ev.ErrorReply):
                assert answer.code != ev.ErrorCode.INTERNAL, (request, answer)
                assert len(answer.message) < 400
        # The server still serves, and its calls are between online users only.
        root = conns["root"]
        await root.send(ev.Ping(nonce=5))
        assert (await root.receive_matching(ev.Pong)).nonce == 5
        assert server.service is not None
        online = set(server.service.registry.sessions)
        for call in server.service.calls.book.active():
            assert {call.caller, call.callee} <= online
        server.request_shutdown()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.tuples(st.sampled_from([0, 0, 1, 2]), REQUESTS), max_size=30))  # root 1/2
def test_any_moderation_and_call_requests_get_one_answer_each(
    steps: list[tuple[int, ev.ClientRequest]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(_scenario, Path(tmp), steps)
