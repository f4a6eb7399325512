"""Framing and codec, without sockets: whole, byte by byte, in random chunks, and fuzzed."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import (
    decode_notice,
    decode_request,
    encode_notice,
    encode_request,
    request_frame,
)
from echomesh_trio.protocol.errors import (
    FrameTooLarge,
    MalformedMessage,
    ProtocolError,
    UnknownMessageType,
)
from echomesh_trio.protocol.framing import MAX_FRAME_SIZE, FrameDecoder, encode_frame

REQUESTS: list[ev.ClientRequest] = [
    ev.Login("alice", "pw", "test", request_id=1),
    ev.CreateRoom("lobby", 2),
    ev.JoinRoom("lobby", 3),
    ev.LeaveRoom("lobby", 4),
    ev.SendChat("lobby", "héllo ✓", "c-1", 5),
    ev.SendDirect("psst", to_username="bob", client_msg_id="d", request_id=6),
    ev.SendDirect("psst", to_user_id=7),
    ev.SetTyping("lobby", True, 8),
    ev.ListRooms(9),
    ev.ListPresence(10),
    ev.SetVoiceRoom("lobby", 11),
    ev.ChooseVoiceTransport(ev.VoiceTransport.TCP_TUNNEL, 12),
    ev.RequestVoiceStats(13),
    ev.Ping(99, 1234, 14),
    ev.Pong(99, 1234, 15),
    ev.VoiceDatagram(b"\x00\x01binary", 16),
]

MEMBER = ev.Member(3, "carol", 0xDEADBEEF)
CHAT = ev.ChatMessage(10, "lobby", 3, "carol", "hi", 1_700_000_000_000, "c-1")
NOTICES: list[ev.ServerNotice] = [
    ev.LoginResult(200, 3, "carol", "welcome", "echomesh 0.1.0"),
    ev.ErrorReply(ev.ErrorCode.RATE_LIMITED, "slow down", 0.5, 4),
    CHAT,
    ev.DirectMessage(11, 3, "carol", 4, "psst", 1, "x", True, "dan"),
    ev.MemberJoined("lobby", MEMBER),
    ev.MemberLeft("lobby", MEMBER),
    ev.RoomSnapshot("lobby", (MEMBER, ev.Member(4, "dan"))),
    ev.RoomListing((ev.RoomInfo("a", 1), ev.RoomInfo("b", 0)), 5),
    ev.HistoryBatch("lobby", (CHAT, CHAT)),
    ev.TypingNotice("lobby", 3, "carol", False),
    ev.PresenceSnapshot((MEMBER,), 6),
    ev.PresenceChanged(MEMBER, True),
    ev.Goodbye(ev.GoodbyeReason.REPLACED, "logged in elsewhere"),
    ev.VoiceSetupInfo(8888, 0xDEADBEEF, b"k" * 32, b"s" * 32, 5000, "chacha20-poly1305"),
    ev.VoiceRoomChanged("lobby", 7),
    ev.VoiceStatsReport(5, 6, {"replayed": 2}, 12.5, ev.VoiceTransport.UDP, "lobby", 8),
    ev.Ping(1, 2),
    ev.Pong(1, 2),
    ev.VoiceDatagram(b"\xff" * 40),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_requests_round_trip(request_: ev.ClientRequest) -> None:
    assert decode_request(encode_request(request_)) == request_


@pytest.mark.parametrize("notice", NOTICES, ids=lambda n: type(n).__name__)
def test_notices_round_trip(notice: ev.ServerNotice) -> None:
    assert decode_notice(encode_notice(notice)) == notice


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
    from echomesh_trio.protocol import message_pb2 as pb

    no_payload = pb.EchoMsg(type=pb.MT_LOGIN_REQUEST).SerializeToString()
    with pytest.raises(MalformedMessage, match="login_request"):
        decode_request(no_payload)
    server_only = pb.EchoMsg(type=pb.MT_LOGIN_RESPONSE).SerializeToString()
    with pytest.raises(UnknownMessageType):
        decode_request(server_only)
    bad_action = pb.EchoMsg(type=pb.MT_ROOM_ACTION)
    bad_action.room_action.action_type = 77  # type: ignore[assignment]
    with pytest.raises(MalformedMessage):
        decode_request(bad_action.SerializeToString())


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
            st.integers(0, 2**32 - 1),
        ),
        max_size=10,
    )
)
def test_generated_requests_survive_framing(requests: list[ev.SendChat]) -> None:
    data = b"".join(request_frame(r) for r in requests)
    assert [decode_request(b) for b in FrameDecoder().feed(data)] == requests
