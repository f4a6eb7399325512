"""Framing and codec, without sockets: whole, byte by byte, in random chunks, and fuzzed."""

from __future__ import annotations

import struct
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol import message_pb2 as pb
from echomesh_trio.protocol.codec import (
    decode_notice,
    decode_request,
    encode_notice,
    encode_request,
    request_frame,
)
from echomesh_trio.protocol.errors import (
    BadRequest,
    FrameTooLarge,
    MalformedMessage,
    ProtocolError,
    UnknownMessageType,
)
from echomesh_trio.protocol.framing import MAX_FRAME_SIZE, FrameDecoder, encode_frame

REQUESTS: list[ev.ClientRequest] = [
    ev.Login("alice", "pw", "test"),
    ev.CreateRoom("lobby"),
    ev.JoinRoom("lobby"),
    ev.LeaveRoom("lobby"),
    ev.DeleteRoom("lobby"),
    ev.SendChat("lobby", "héllo ✓", "c-1"),
    ev.SendDirect("psst", to_username="bob", client_msg_id="d"),
    ev.SendDirect("psst", to_user_id=7),
    ev.SetTyping("lobby", True),
    ev.ListRooms(),
    ev.ListPresence(),
    ev.SetVoiceRoom("lobby"),
    ev.ChooseVoiceTransport(ev.VoiceTransport.TCP_TUNNEL),
    ev.RequestVoiceStats(),
    ev.ReportVoiceLoss((ev.SpeakerLoss(0xDEADBEEF, 250, 12, 3), ev.SpeakerLoss(7, 1, 0, 0))),
    ev.ReportVoiceLoss(()),
    ev.PlaceCall(to_username="bob"),
    ev.PlaceCall(to_user_id=7),
    ev.AcceptCall(3),
    ev.RejectCall(2**64 - 1),
    ev.HangUp(),
    ev.HangUp(5),
    ev.Kick("bob", "lobby", "spam"),
    ev.Kick("bob"),
    ev.Mute("bob", "lobby", "noise"),
    ev.Unmute("bob"),
    ev.Ban("bob", duration_s=3600.0, reason="abuse"),
    ev.Ban(address="192.0.2.7"),
    ev.Unban(address="192.0.2.7"),
    ev.Unban("bob"),
    ev.GrantOwner("lobby", "bob"),
    ev.RevokeOwner("lobby", "bob"),
    ev.Logout(),
    ev.Ping(99, 1234),
    ev.Pong(99, 1234),
    ev.VoiceDatagram(b"\x00\x01binary"),
]

MEMBER = ev.Member(3, "carol", 0xDEADBEEF)
CHAT = ev.ChatMessage(10, "lobby", 3, "carol", "hi", 1_700_000_000_000, "c-1")
NOTICES: list[ev.ServerNotice] = [
    ev.LoginResult(200, 3, "carol", "welcome", "echomesh 0.1.0"),
    ev.LoginResult(403, message="banned", ban_reason="abuse", ban_expires_ms=1_700_000_000_000),
    ev.LoginResult(200, 3, "carol", "welcome back", "echomesh 0.2.0", resumed=True),
    ev.SessionResumed(("lobby", "dev"), "lobby", True),
    ev.SessionResumed(()),
    ev.ErrorReply(ev.ErrorCode.RATE_LIMITED, "slow down", 0.5),
    CHAT,
    ev.DirectMessage(11, 3, "carol", 4, "psst", 1, "x", True, "dan"),
    ev.MemberJoined("lobby", MEMBER),
    ev.MemberLeft("lobby", MEMBER),
    ev.RoomDeleted("lobby", MEMBER),
    ev.RoomSnapshot("lobby", (MEMBER, ev.Member(4, "dan"))),
    ev.RoomListing((ev.RoomInfo("a", 1), ev.RoomInfo("b", 0)), True),
    ev.HistoryBatch("lobby", (CHAT, CHAT)),
    ev.TypingNotice("lobby", 3, "carol", False),
    ev.PresenceSnapshot((MEMBER,), True),
    ev.PresenceChanged(MEMBER, True),
    ev.Goodbye(ev.GoodbyeReason.REPLACED, "logged in elsewhere"),
    ev.VoiceSetupInfo(8888, 0xDEADBEEF, b"k" * 32, b"s" * 32, 5000, "aes-256-gcm"),
    ev.VoiceRoomChanged("lobby"),
    ev.VoiceStatsReport(5, 6, {"replayed": 2}, 12.5, ev.VoiceTransport.UDP, "lobby"),
    ev.VoiceLossFeedback(0.25, 0.0, 0.5, 2),
    ev.VoiceLossFeedback(0.0, 0.0, 0.0, 0),
    ev.CallRinging(1, MEMBER, ev.Member(4, "dan"), 1_700_000_000_000),
    ev.CallConnected(1, MEMBER, ev.Member(4, "dan"), 1_700_000_000_000, 1_700_000_001_000),
    ev.CallEnded(1, MEMBER, ev.Member(4, "dan"), ev.CallEndReason.HUNG_UP, 5, 6, 7000),
    ev.CallEnded(2, MEMBER, ev.Member(4, "dan"), ev.CallEndReason.BUSY, 5),
    ev.ModerationDone(ev.ModerationKind.BAN, "bob", "", "", 1_700_000_000_000, "banned bob"),
    ev.ModerationDone(ev.ModerationKind.KICK, room_id="lobby", message="kicked"),
    ev.Moderated(ev.ModerationKind.MUTE, "lobby", MEMBER, "noise"),
    ev.Moderated(ev.ModerationKind.OP, "lobby", MEMBER),
    ev.Ping(1, 2),
    ev.Pong(1, 2),
    ev.VoiceDatagram(b"\xff" * 40),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("request_id", [0, 1, 2**32 - 1])
def test_requests_round_trip(request_: ev.ClientRequest, request_id: int) -> None:
    assert decode_request(encode_request(request_, request_id)) == ev.Incoming(request_id, request_)


@pytest.mark.parametrize("notice", NOTICES, ids=lambda n: type(n).__name__)
@pytest.mark.parametrize("request_id", [0, 7])
def test_notices_round_trip(notice: ev.ServerNotice, request_id: int) -> None:
    assert decode_notice(encode_notice(notice, request_id)) == ev.Incoming(request_id, notice)


def test_every_request_and_notice_type_is_covered() -> None:
    """A new event type gets a round-trip case here (and so a codec branch)."""
    assert {type(r) for r in REQUESTS} == set(typing.get_args(ev.ClientRequest))
    sent_by_servers = set(typing.get_args(ev.ServerNotice)) - {ev.UnknownNotice}
    assert {type(n) for n in NOTICES} == sent_by_servers


def test_what_a_newer_server_sends_is_not_an_error() -> None:
    """Unknown types and enum values from a server are mapped, and the stream goes on."""
    newer = pb.EchoMsg(type=250, request_id=3)  # type: ignore[arg-type]
    assert decode_notice(newer.SerializeToString()) == ev.Incoming(3, ev.UnknownNotice(250))
    error = pb.EchoMsg(type=pb.MT_ERROR, request_id=4)
    error.error.code = 99  # type: ignore[assignment]
    error.error.message = "a newer kind of refusal"
    assert decode_notice(error.SerializeToString()).event == ev.ErrorReply(
        ev.ErrorCode.UNKNOWN, "a newer kind of refusal"
    )
    bye = pb.EchoMsg(type=pb.MT_GOODBYE)
    bye.goodbye.reason = 42  # type: ignore[assignment]
    assert decode_notice(bye.SerializeToString()).event == ev.Goodbye(ev.GoodbyeReason.UNKNOWN, "")
    stats = pb.EchoMsg(type=pb.MT_VOICE_STATS)
    stats.voice_stats.transport = 9  # type: ignore[assignment]
    decoded = decode_notice(stats.SerializeToString()).event
    assert isinstance(decoded, ev.VoiceStatsReport)
    assert decoded.transport is ev.VoiceTransport.UNKNOWN
    room = pb.EchoMsg(type=pb.MT_ROOM_EVENT)
    room.room_event.kind = 17  # type: ignore[assignment]
    assert decode_notice(room.SerializeToString()).event == ev.UnknownNotice(pb.MT_ROOM_EVENT)
    call = pb.EchoMsg(type=pb.MT_CALL_STATE)
    call.call_state.phase = 9  # type: ignore[assignment]
    assert decode_notice(call.SerializeToString()).event == ev.UnknownNotice(pb.MT_CALL_STATE)
    call.call_state.phase = pb.CP_ENDED
    call.call_state.end_reason = 77  # type: ignore[assignment]
    ended = decode_notice(call.SerializeToString()).event
    assert isinstance(ended, ev.CallEnded) and ended.reason is ev.CallEndReason.UNKNOWN
    for kind_field, mt in (("mod_result", pb.MT_MOD_RESULT), ("moderated", pb.MT_MODERATED)):
        mod = pb.EchoMsg(type=mt)
        getattr(mod, kind_field).kind = 99
        decoded_mod = decode_notice(mod.SerializeToString()).event
        assert isinstance(decoded_mod, ev.ModerationDone | ev.Moderated)
        assert decoded_mod.kind is ev.ModerationKind.UNKNOWN
    bye.goodbye.reason = pb.GB_BANNED
    assert decode_notice(bye.SerializeToString()).event == ev.Goodbye(ev.GoodbyeReason.BANNED, "")


def test_undefined_enum_values_in_requests_are_bad_requests() -> None:
    """Well-formed but undefined: BadRequest (the connection stays), with the request id."""
    bad_action = pb.EchoMsg(type=pb.MT_ROOM_ACTION, request_id=12)
    bad_action.room_action.action_type = 99  # type: ignore[assignment]
    with pytest.raises(BadRequest, match="room action 99") as caught:
        decode_request(bad_action.SerializeToString())
    assert caught.value.request_id == 12 and not caught.value.closes_connection
    transport = pb.EchoMsg(type=pb.MT_VOICE_TRANSPORT, request_id=13)
    transport.voice_transport.transport = 5  # type: ignore[assignment]
    with pytest.raises(BadRequest, match="voice transport 5"):
        decode_request(transport.SerializeToString())
    mod = pb.EchoMsg(type=pb.MT_MOD_ACTION, request_id=15)
    mod.mod_action.kind = 42  # type: ignore[assignment]
    with pytest.raises(BadRequest, match="moderation action 42") as caught:
        decode_request(mod.SerializeToString())
    assert caught.value.request_id == 15
    unknown = pb.EchoMsg(type=pb.MT_LOGIN_RESPONSE, request_id=14).SerializeToString()
    with pytest.raises(UnknownMessageType) as closing:
        decode_request(unknown)
    assert closing.value.request_id == 14 and closing.value.closes_connection


def test_membership_changes_also_carry_the_original_room_action() -> None:
    from echomesh_trio.protocol import message_pb2 as pb

    msg = pb.EchoMsg.FromString(encode_notice(ev.MemberJoined("lobby", MEMBER)))
    assert msg.room_action.action_type == pb.RA_JOIN
    assert (msg.room_action.room_id, msg.room_action.user_id) == ("lobby", 3)


def _stream() -> tuple[bytes, list[bytes]]:
    bodies = [encode_request(r) for r in REQUESTS]
    return b"".join(encode_frame(b) for b in bodies), bodies


def test_decoder_whole_and_byte_by_byte() -> None:
    data, bodies = _stream()
    assert FrameDecoder().feed(data) == bodies
    decoder = FrameDecoder()
    out: list[bytes] = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    assert out == bodies and decoder.buffered == 0


@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1))
def test_decoder_random_chunks(sizes: list[int]) -> None:
    data, bodies = _stream()
    decoder = FrameDecoder()
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(data):
        step = sizes[i % len(sizes)]
        out += decoder.feed(data[pos : pos + step])
        pos += step
        i += 1
    assert out == bodies


def test_oversize_prefix_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(struct.pack(">I", MAX_FRAME_SIZE + 1))
    assert info.value.length == MAX_FRAME_SIZE + 1
    assert FrameDecoder().feed(struct.pack(">I", MAX_FRAME_SIZE)) == []  # the limit itself is fine
    with pytest.raises(ValueError):
        encode_frame(b"x" * (MAX_FRAME_SIZE + 1))


def test_malformed_bodies() -> None:
    with pytest.raises(MalformedMessage):
        decode_request(b"\xff\xff\xff")
    with pytest.raises(UnknownMessageType):
        decode_request(b"")  # type 0
    no_payload = pb.EchoMsg(type=pb.MT_LOGIN_REQUEST).SerializeToString()
    with pytest.raises(MalformedMessage, match="login_request"):
        decode_request(no_payload)
    server_only = pb.EchoMsg(type=pb.MT_LOGIN_RESPONSE).SerializeToString()
    with pytest.raises(UnknownMessageType):
        decode_request(server_only)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_any_bytes_yield_frames_or_a_protocol_error(data: bytes) -> None:
    """The fuzz property: untrusted bytes parse, or raise our own error, nothing else."""
    decoder = FrameDecoder(max_size=256)
    try:
        for body in decoder.feed(data):
            decode_request(body)
            decode_notice(body)
    except ProtocolError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_body_decodes_or_raises_protocol_error(body: bytes) -> None:
    for decode in (decode_request, decode_notice):
        try:
            decode(body)
        except ProtocolError:
            pass


@given(
    st.lists(
        st.builds(
            ev.SendChat,
            st.text(max_size=20),
            st.text(max_size=100),
            st.text(max_size=10),
        ),
        max_size=10,
    ),
    st.integers(0, 2**32 - 1),
)
def test_generated_requests_survive_framing(requests: list[ev.SendChat], request_id: int) -> None:
    data = b"".join(request_frame(r, request_id) for r in requests)
    decoded = [decode_request(b) for b in FrameDecoder().feed(data)]
    assert decoded == [ev.Incoming(request_id, r) for r in requests]
