"""Typed events of the control protocol.

The protobuf classes stay inside ``codec``; everything else in EchoMesh speaks in these
small frozen dataclasses. Requests go from client to server; notices from server to
client. A few (Ping, Pong, VoiceDatagram) travel both ways.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ErrorCode(enum.IntEnum):
    """Mirrors ``ErrorCode`` in proto/message.proto."""

    BAD_REQUEST = 1
    NOT_LOGGED_IN = 2
    ALREADY_LOGGED_IN = 3
    UNKNOWN_ROOM = 4
    ROOM_EXISTS = 5
    NOT_IN_ROOM = 6
    TOO_LONG = 7
    RATE_LIMITED = 8
    UNKNOWN_USER = 9
    INVALID_NAME = 10
    MALFORMED_FRAME = 11
    FRAME_TOO_LARGE = 12
    UNKNOWN_TYPE = 13
    SERVER_FULL = 14
    INTERNAL = 15


class GoodbyeReason(enum.IntEnum):
    """Mirrors ``GoodbyeReason``: why the server is closing a connection."""

    UNKNOWN = 0
    REPLACED = 1
    SHUTDOWN = 2
    IDLE_TIMEOUT = 3
    PROTOCOL_ERROR = 4
    SLOW_READER = 5
    SERVER_FULL = 6
    INTERNAL_ERROR = 7


class VoiceTransport(enum.IntEnum):
    """Mirrors ``VoiceTransport``."""

    UNKNOWN = 0
    UDP = 1
    TCP_TUNNEL = 2


class LoginStatus(enum.IntEnum):
    """Values of ``LoginResponse.status_code`` (HTTP-like, as documented in PROTOCOL.md)."""

    OK = 200
    BAD_REQUEST = 400
    WRONG_PASSWORD = 401
    FORBIDDEN = 403
    TOO_MANY_ATTEMPTS = 429


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    username: str
    source_id: int = 0


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str
    client_name: str = ""
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class CreateRoom:
    room_id: str
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class JoinRoom:
    room_id: str
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class LeaveRoom:
    room_id: str
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class SendChat:
    room_id: str
    content: str
    client_msg_id: str = ""
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class SendDirect:
    content: str
    to_user_id: int = 0
    to_username: str = ""
    client_msg_id: str = ""
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class SetTyping:
    room_id: str
    active: bool
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class ListRooms:
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class ListPresence:
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class SetVoiceRoom:
    """Choose the room one's voice goes to; an empty room id means none."""

    room_id: str
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class ChooseVoiceTransport:
    transport: VoiceTransport
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class RequestVoiceStats:
    request_id: int = 0


# ---------------------------------------------------------------- both directions


@dataclass(frozen=True, slots=True)
class Ping:
    nonce: int = 0
    sent_ms: int = 0
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class Pong:
    nonce: int = 0
    sent_ms: int = 0
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class VoiceDatagram:
    """A voice datagram carried inside the control channel (the TCP fallback)."""

    datagram: bytes
    request_id: int = 0


# ---------------------------------------------------------------------- notices


@dataclass(frozen=True, slots=True)
class LoginResult:
    status_code: int
    user_id: int = 0
    username: str = ""
    message: str = ""
    server_version: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code == LoginStatus.OK


@dataclass(frozen=True, slots=True)
class ErrorReply:
    code: ErrorCode
    message: str
    retry_after_s: float = 0.0
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A chat message as stored and delivered; the sender's copy is its acknowledgement."""

    message_id: int
    room_id: str
    user_id: int
    username: str
    content: str
    timestamp_ms: int
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class DirectMessage:
    message_id: int
    from_user_id: int
    from_username: str
    to_user_id: int
    content: str
    timestamp_ms: int
    client_msg_id: str = ""
    offline: bool = False
    to_username: str = ""


@dataclass(frozen=True, slots=True)
class MemberJoined:
    room_id: str
    member: Member


@dataclass(frozen=True, slots=True)
class MemberLeft:
    room_id: str
    member: Member


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """Sent to a user who is now in a room: who is there (the user included)."""

    room_id: str
    members: tuple[Member, ...]
    more: bool = False  # more members follow in the next RoomSnapshot


@dataclass(frozen=True, slots=True)
class RoomInfo:
    room_id: str
    member_count: int


@dataclass(frozen=True, slots=True)
class RoomListing:
    rooms: tuple[RoomInfo, ...]
    request_id: int = 0
    more: bool = False  # more rooms follow in the next RoomListing


@dataclass(frozen=True, slots=True)
class HistoryBatch:
    room_id: str
    messages: tuple[ChatMessage, ...]


@dataclass(frozen=True, slots=True)
class TypingNotice:
    room_id: str
    user_id: int
    username: str
    active: bool


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    online: tuple[Member, ...]
    request_id: int = 0
    more: bool = False  # more users follow in the next PresenceSnapshot


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    member: Member
    online: bool


@dataclass(frozen=True, slots=True)
class Goodbye:
    reason: GoodbyeReason
    message: str


@dataclass(frozen=True, slots=True)
class VoiceSetupInfo:
    """A voice session's set-up, made by the relay (`VoiceRelay.register`). No defaults: the
    relay always fills every field (the cipher's default is `voice.seal.DEFAULT_CIPHER`)."""

    udp_port: int
    source_id: int
    client_key: bytes = field(repr=False)  # keys stay out of logs and tracebacks
    server_key: bytes = field(repr=False)
    ping_interval_ms: int
    cipher: str


@dataclass(frozen=True, slots=True)
class VoiceRoomChanged:
    room_id: str
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class VoiceStatsReport:
    """One user's voice counters, made by the relay (`VoiceRelay.user_report`)."""

    packets_in: int
    packets_out: int
    dropped: dict[str, int] = field(default_factory=dict)
    rtt_ms: float = 0.0
    transport: VoiceTransport = VoiceTransport.UNKNOWN
    active_room: str = ""
    request_id: int = 0


ClientRequest = (
    Login
    | CreateRoom
    | JoinRoom
    | LeaveRoom
    | SendChat
    | SendDirect
    | SetTyping
    | ListRooms
    | ListPresence
    | SetVoiceRoom
    | ChooseVoiceTransport
    | RequestVoiceStats
    | Ping
    | Pong
    | VoiceDatagram
)
"""Everything a server accepts from a client."""

ServerNotice = (
    LoginResult
    | ErrorReply
    | ChatMessage
    | DirectMessage
    | MemberJoined
    | MemberLeft
    | RoomSnapshot
    | RoomListing
    | HistoryBatch
    | TypingNotice
    | PresenceSnapshot
    | PresenceChanged
    | Goodbye
    | VoiceSetupInfo
    | VoiceRoomChanged
    | VoiceStatsReport
    | Ping
    | Pong
    | VoiceDatagram
)
"""Everything a client accepts from a server."""
