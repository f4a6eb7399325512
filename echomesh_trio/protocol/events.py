"""Typed events of the control protocol.

The protobuf classes stay inside ``codec``; everything else in EchoMesh speaks in these
small frozen dataclasses. Requests go from client to server; notices from server to
client. A few (Ping, Pong, VoiceDatagram) travel both ways.

The envelope's ``request_id`` is not part of any event: the codec hands every decoded
frame over as ``Incoming(request_id, event)`` and takes it as a separate argument when
encoding, so there is exactly one way to carry it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar


class ErrorCode(enum.IntEnum):
    """Mirrors ``ErrorCode`` in proto/message.proto. A code newer than this client decodes
    as ``UNKNOWN`` (the message still says what went wrong)."""

    UNKNOWN = 0
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
    USER_OFFLINE = 40
    NO_SUCH_CALL = 41
    IN_CALL = 42
    FORBIDDEN = 43


class GoodbyeReason(enum.IntEnum):
    """Mirrors ``GoodbyeReason``: why the server is closing a connection."""

    UNKNOWN = 0
    REPLACED = 1
    SHUTDOWN = 2
    IDLE_TIMEOUT = 3
    PROTOCOL_ERROR = 4
    SLOW_READER = 5  # reserved, never sent: a client that does not read cannot be told
    SERVER_FULL = 6
    INTERNAL_ERROR = 7
    KICKED = 40
    BANNED = 41
    LOGGED_OUT = 60  # the answer to Logout


class VoiceTransport(enum.IntEnum):
    """Mirrors ``VoiceTransport``."""

    UNKNOWN = 0
    UDP = 1
    TCP_TUNNEL = 2


class CallEndReason(enum.IntEnum):
    """Mirrors ``CallEndReason``: why a call ended."""

    UNKNOWN = 0
    REJECTED = 1
    NO_ANSWER = 2
    BUSY = 3
    HUNG_UP = 4
    DISCONNECTED = 5
    SHUTDOWN = 6


class ModerationKind(enum.IntEnum):
    """Mirrors ``ModActionKind``: what a moderation request or notice is about."""

    UNKNOWN = 0
    KICK = 1
    MUTE = 2
    UNMUTE = 3
    BAN = 4
    UNBAN = 5
    OP = 6
    DEOP = 7


class LoginStatus(enum.IntEnum):
    """Values of ``LoginResponse.status_code`` (HTTP-like, as documented in PROTOCOL.md)."""

    OK = 200
    BAD_REQUEST = 400
    WRONG_PASSWORD = 401
    FORBIDDEN = 403  # banned (the user or its address); LoginResult says why and until when
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


@dataclass(frozen=True, slots=True)
class CreateRoom:
    room_id: str


@dataclass(frozen=True, slots=True)
class DeleteRoom:
    """Delete a room for good (its owner only); its members are told."""

    room_id: str


@dataclass(frozen=True, slots=True)
class JoinRoom:
    room_id: str


@dataclass(frozen=True, slots=True)
class LeaveRoom:
    room_id: str


@dataclass(frozen=True, slots=True)
class SendChat:
    room_id: str
    content: str
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class SendDirect:
    content: str
    to_user_id: int = 0
    to_username: str = ""
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class SetTyping:
    room_id: str
    active: bool


@dataclass(frozen=True, slots=True)
class Logout:
    """End the session now: its rooms are left (members told) and the user goes offline at
    once, with no resume grace; the server answers ``Goodbye(LOGGED_OUT)`` and closes."""


@dataclass(frozen=True, slots=True)
class ListRooms:
    """Ask for every room and its member count (payload-less)."""


@dataclass(frozen=True, slots=True)
class ListPresence:
    """Ask who is online; the connection then also receives presence changes."""


@dataclass(frozen=True, slots=True)
class SetVoiceRoom:
    """Choose the room one's voice goes to; an empty room id means none."""

    room_id: str


@dataclass(frozen=True, slots=True)
class ChooseVoiceTransport:
    transport: VoiceTransport


@dataclass(frozen=True, slots=True)
class RequestVoiceStats:
    """Ask for this session's voice statistics (payload-less)."""


@dataclass(frozen=True, slots=True)
class SpeakerLoss:
    """What one listener heard of one speaker over a report interval."""

    source_id: int
    expected: int
    """Packets the speaker's sequence numbers say were sent in the interval."""
    lost: int
    """Never arrived in time: concealed, or recovered from a later packet's redundancy or
    FEC (the network's loss, which the speaker's protection is sized for)."""
    late: int
    """Arrived after their playout time."""


@dataclass(frozen=True, slots=True)
class ReportVoiceLoss:
    """A listener's periodic loss report, per speaker it heard (PROTOCOL.md, "Loss
    feedback")."""

    speakers: tuple[SpeakerLoss, ...]


@dataclass(frozen=True, slots=True)
class PlaceCall:
    """Call one user (by id or by name): a private two-person voice room."""

    to_user_id: int = 0
    to_username: str = ""


@dataclass(frozen=True, slots=True)
class AcceptCall:
    """The callee takes a ringing call."""

    call_id: int


@dataclass(frozen=True, slots=True)
class RejectCall:
    """The callee declines a ringing call."""

    call_id: int


@dataclass(frozen=True, slots=True)
class HangUp:
    """Either party ends a call, ringing or connected; ``call_id`` 0 means the current one."""

    call_id: int = 0


@dataclass(frozen=True, slots=True)
class Kick:
    """Put a user out of a room (its owners, admins) or, with no room, off the server
    (admins)."""

    username: str
    room_id: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Mute:
    """Server-mute a user in a room (its owners, admins) or everywhere (admins): their
    voice goes to nobody there; they still hear."""

    username: str
    room_id: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unmute:
    username: str
    room_id: str = ""


@dataclass(frozen=True, slots=True)
class Ban:
    """Admins: refuse a user's (or an address's) logins, for ``duration_s`` seconds or,
    with 0, until unbanned. Their connections are closed."""

    username: str = ""
    address: str = ""
    duration_s: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unban:
    username: str = ""
    address: str = ""


@dataclass(frozen=True, slots=True)
class GrantOwner:
    """Make a user an owner of a room (its owners, admins)."""

    room_id: str
    username: str


@dataclass(frozen=True, slots=True)
class RevokeOwner:
    """Take a room's ownership from a user (not from the room's creator)."""

    room_id: str
    username: str


# ---------------------------------------------------------------- both directions


@dataclass(frozen=True, slots=True)
class Ping:
    nonce: int = 0
    sent_ms: int = 0


@dataclass(frozen=True, slots=True)
class Pong:
    nonce: int = 0
    sent_ms: int = 0


@dataclass(frozen=True, slots=True)
class VoiceDatagram:
    """A voice datagram carried inside the control channel (the TCP fallback)."""

    datagram: bytes


# ---------------------------------------------------------------------- notices


@dataclass(frozen=True, slots=True)
class LoginResult:
    status_code: int
    user_id: int = 0
    username: str = ""
    message: str = ""
    server_version: str = ""
    resumed: bool = False
    """This login took over the user's previous session; ``SessionResumed`` follows."""
    ban_reason: str = ""
    """With 403: why the user or its address is banned."""
    ban_expires_ms: int = 0
    """With 403: when the ban ends (Unix epoch ms); 0 means it does not."""

    @property
    def ok(self) -> bool:
        return self.status_code == LoginStatus.OK


@dataclass(frozen=True, slots=True)
class ErrorReply:
    code: ErrorCode
    message: str
    retry_after_s: float = 0.0


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
class RoomDeleted:
    """The room is gone; ``by`` is the member who deleted it. Every member is out of it."""

    room_id: str
    by: Member


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """Sent to a user who is now in a room: who is there (the user included)."""

    room_id: str
    members: tuple[Member, ...]
    more: bool = False  # more members follow in the next RoomSnapshot


@dataclass(frozen=True, slots=True)
class SessionResumed:
    """After a ``LoginResult`` with ``resumed``: the rooms (in join order) and the active
    voice room ("" for none) the new session took over from the one it replaced."""

    rooms: tuple[str, ...]
    voice_room: str = ""
    more: bool = False  # more rooms follow in the next SessionResumed


@dataclass(frozen=True, slots=True)
class RoomInfo:
    room_id: str
    member_count: int


@dataclass(frozen=True, slots=True)
class RoomListing:
    rooms: tuple[RoomInfo, ...]
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


@dataclass(frozen=True, slots=True)
class VoiceStatsReport:
    """One user's voice counters, made by the relay (`VoiceRelay.user_report`)."""

    packets_in: int
    packets_out: int
    dropped: dict[str, int] = field(default_factory=dict)
    rtt_ms: float = 0.0
    transport: VoiceTransport = VoiceTransport.UNKNOWN
    active_room: str = ""


@dataclass(frozen=True, slots=True)
class VoiceLossFeedback:
    """The loss this client's own voice suffers, as its listeners report it (fractions of
    the packets they expected over the last interval; 0..1)."""

    loss: float
    """Mean over the listeners, weighted by packets expected."""
    late_loss: float
    worst_loss: float
    """The listener who hears the least."""
    listeners: int


@dataclass(frozen=True, slots=True)
class CallRinging:
    """A call waits for the callee's answer: the callee's incoming call, the caller's
    confirmation. Times are server time (Unix epoch ms)."""

    call_id: int
    caller: Member
    callee: Member
    requested_ms: int


@dataclass(frozen=True, slots=True)
class CallConnected:
    """The callee accepted: both parties' voice now goes only to each other."""

    call_id: int
    caller: Member
    callee: Member
    requested_ms: int
    answered_ms: int


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over; each party's voice goes to its active room again."""

    call_id: int
    caller: Member
    callee: Member
    reason: CallEndReason
    requested_ms: int
    answered_ms: int = 0
    """0: the call never connected."""
    duration_ms: int = 0
    """Connected time."""


@dataclass(frozen=True, slots=True)
class ModerationDone:
    """The moderator's confirmation; ``message`` says what was done in words."""

    kind: ModerationKind
    username: str = ""
    room_id: str = ""
    address: str = ""
    expires_ms: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Moderated:
    """Told to the user a moderation action was about (kick from a room, mute, unmute,
    op, deop; a ban or a kick off the server arrives as the Goodbye)."""

    kind: ModerationKind
    room_id: str
    by: Member
    reason: str = ""
    expires_ms: int = 0


@dataclass(frozen=True, slots=True)
class UnknownNotice:
    """A message type this client does not know (a newer server): skipped, not an error."""

    type_value: int


ClientRequest = (
    Login
    | CreateRoom
    | DeleteRoom
    | JoinRoom
    | LeaveRoom
    | SendChat
    | SendDirect
    | SetTyping
    | ListRooms
    | ListPresence
    | Logout
    | SetVoiceRoom
    | ChooseVoiceTransport
    | RequestVoiceStats
    | ReportVoiceLoss
    | PlaceCall
    | AcceptCall
    | RejectCall
    | HangUp
    | Kick
    | Mute
    | Unmute
    | Ban
    | Unban
    | GrantOwner
    | RevokeOwner
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
    | RoomDeleted
    | RoomSnapshot
    | SessionResumed
    | RoomListing
    | HistoryBatch
    | TypingNotice
    | PresenceSnapshot
    | PresenceChanged
    | Goodbye
    | VoiceSetupInfo
    | VoiceRoomChanged
    | VoiceStatsReport
    | VoiceLossFeedback
    | CallRinging
    | CallConnected
    | CallEnded
    | ModerationDone
    | Moderated
    | UnknownNotice
    | Ping
    | Pong
    | VoiceDatagram
)
"""Everything a client accepts from a server."""

E = TypeVar("E", covariant=True)


@dataclass(frozen=True, slots=True)
class Incoming(Generic[E]):
    """One decoded frame: the envelope's ``request_id`` and the event it carried.

    A client sets a non-zero ``request_id`` on a request; the server copies it into every
    frame of the direct reply (for a split list, every part), and sends 0 on everything
    else (broadcasts, notices nobody asked for).
    """

    request_id: int
    event: E
