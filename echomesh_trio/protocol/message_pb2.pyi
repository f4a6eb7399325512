from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MsgType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MT_UNKNOWN: _ClassVar[MsgType]
    MT_LOGIN_REQUEST: _ClassVar[MsgType]
    MT_LOGIN_RESPONSE: _ClassVar[MsgType]
    MT_CHAT_MSG: _ClassVar[MsgType]
    MT_ROOM_ACTION: _ClassVar[MsgType]
    MT_ERROR: _ClassVar[MsgType]
    MT_ROOM_EVENT: _ClassVar[MsgType]
    MT_ROOM_LIST_REQUEST: _ClassVar[MsgType]
    MT_ROOM_LIST: _ClassVar[MsgType]
    MT_HISTORY: _ClassVar[MsgType]
    MT_DIRECT_MSG: _ClassVar[MsgType]
    MT_TYPING: _ClassVar[MsgType]
    MT_PRESENCE_REQUEST: _ClassVar[MsgType]
    MT_PRESENCE_LIST: _ClassVar[MsgType]
    MT_PRESENCE_EVENT: _ClassVar[MsgType]
    MT_PING: _ClassVar[MsgType]
    MT_PONG: _ClassVar[MsgType]
    MT_GOODBYE: _ClassVar[MsgType]
    MT_ROOM_STATE: _ClassVar[MsgType]
    MT_VOICE_SETUP: _ClassVar[MsgType]
    MT_VOICE_ACTIVE_ROOM: _ClassVar[MsgType]
    MT_VOICE_TUNNEL: _ClassVar[MsgType]
    MT_VOICE_STATS_REQUEST: _ClassVar[MsgType]
    MT_VOICE_STATS: _ClassVar[MsgType]
    MT_VOICE_TRANSPORT: _ClassVar[MsgType]
    MT_VOICE_LOSS_REPORT: _ClassVar[MsgType]
    MT_VOICE_LOSS_FEEDBACK: _ClassVar[MsgType]
    MT_CALL_REQUEST: _ClassVar[MsgType]
    MT_CALL_STATE: _ClassVar[MsgType]
    MT_CALL_ANSWER: _ClassVar[MsgType]
    MT_CALL_HANGUP: _ClassVar[MsgType]
    MT_MOD_ACTION: _ClassVar[MsgType]
    MT_MOD_RESULT: _ClassVar[MsgType]
    MT_MODERATED: _ClassVar[MsgType]
    MT_SESSION_RESUMED: _ClassVar[MsgType]
    MT_LOGOUT: _ClassVar[MsgType]

class RoomActionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RA_UNKNOWN: _ClassVar[RoomActionType]
    RA_CREATE: _ClassVar[RoomActionType]
    RA_JOIN: _ClassVar[RoomActionType]
    RA_LEAVE: _ClassVar[RoomActionType]
    RA_DELETE: _ClassVar[RoomActionType]

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERR_NONE: _ClassVar[ErrorCode]
    ERR_BAD_REQUEST: _ClassVar[ErrorCode]
    ERR_NOT_LOGGED_IN: _ClassVar[ErrorCode]
    ERR_ALREADY_LOGGED_IN: _ClassVar[ErrorCode]
    ERR_UNKNOWN_ROOM: _ClassVar[ErrorCode]
    ERR_ROOM_EXISTS: _ClassVar[ErrorCode]
    ERR_NOT_IN_ROOM: _ClassVar[ErrorCode]
    ERR_TOO_LONG: _ClassVar[ErrorCode]
    ERR_RATE_LIMITED: _ClassVar[ErrorCode]
    ERR_UNKNOWN_USER: _ClassVar[ErrorCode]
    ERR_INVALID_NAME: _ClassVar[ErrorCode]
    ERR_MALFORMED_FRAME: _ClassVar[ErrorCode]
    ERR_FRAME_TOO_LARGE: _ClassVar[ErrorCode]
    ERR_UNKNOWN_TYPE: _ClassVar[ErrorCode]
    ERR_SERVER_FULL: _ClassVar[ErrorCode]
    ERR_INTERNAL: _ClassVar[ErrorCode]
    ERR_USER_OFFLINE: _ClassVar[ErrorCode]
    ERR_NO_SUCH_CALL: _ClassVar[ErrorCode]
    ERR_IN_CALL: _ClassVar[ErrorCode]
    ERR_FORBIDDEN: _ClassVar[ErrorCode]

class GoodbyeReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GB_UNKNOWN: _ClassVar[GoodbyeReason]
    GB_REPLACED: _ClassVar[GoodbyeReason]
    GB_SHUTDOWN: _ClassVar[GoodbyeReason]
    GB_IDLE_TIMEOUT: _ClassVar[GoodbyeReason]
    GB_PROTOCOL_ERROR: _ClassVar[GoodbyeReason]
    GB_SLOW_READER: _ClassVar[GoodbyeReason]
    GB_SERVER_FULL: _ClassVar[GoodbyeReason]
    GB_INTERNAL_ERROR: _ClassVar[GoodbyeReason]
    GB_KICKED: _ClassVar[GoodbyeReason]
    GB_BANNED: _ClassVar[GoodbyeReason]
    GB_LOGGED_OUT: _ClassVar[GoodbyeReason]

class CallPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CP_UNKNOWN: _ClassVar[CallPhase]
    CP_RINGING: _ClassVar[CallPhase]
    CP_CONNECTED: _ClassVar[CallPhase]
    CP_ENDED: _ClassVar[CallPhase]

class CallEndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CE_UNKNOWN: _ClassVar[CallEndReason]
    CE_REJECTED: _ClassVar[CallEndReason]
    CE_NO_ANSWER: _ClassVar[CallEndReason]
    CE_BUSY: _ClassVar[CallEndReason]
    CE_HUNG_UP: _ClassVar[CallEndReason]
    CE_DISCONNECTED: _ClassVar[CallEndReason]
    CE_SHUTDOWN: _ClassVar[CallEndReason]

class ModActionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MA_UNKNOWN: _ClassVar[ModActionKind]
    MA_KICK: _ClassVar[ModActionKind]
    MA_MUTE: _ClassVar[ModActionKind]
    MA_UNMUTE: _ClassVar[ModActionKind]
    MA_BAN: _ClassVar[ModActionKind]
    MA_UNBAN: _ClassVar[ModActionKind]
    MA_OP: _ClassVar[ModActionKind]
    MA_DEOP: _ClassVar[ModActionKind]

class RoomEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RE_UNKNOWN: _ClassVar[RoomEventKind]
    RE_JOINED: _ClassVar[RoomEventKind]
    RE_LEFT: _ClassVar[RoomEventKind]
    RE_DELETED: _ClassVar[RoomEventKind]

class VoiceTransport(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VT_UNKNOWN: _ClassVar[VoiceTransport]
    VT_UDP: _ClassVar[VoiceTransport]
    VT_TCP_TUNNEL: _ClassVar[VoiceTransport]
MT_UNKNOWN: MsgType
MT_LOGIN_REQUEST: MsgType
MT_LOGIN_RESPONSE: MsgType
MT_CHAT_MSG: MsgType
MT_ROOM_ACTION: MsgType
MT_ERROR: MsgType
MT_ROOM_EVENT: MsgType
MT_ROOM_LIST_REQUEST: MsgType
MT_ROOM_LIST: MsgType
MT_HISTORY: MsgType
MT_DIRECT_MSG: MsgType
MT_TYPING: MsgType
MT_PRESENCE_REQUEST: MsgType
MT_PRESENCE_LIST: MsgType
MT_PRESENCE_EVENT: MsgType
MT_PING: MsgType
MT_PONG: MsgType
MT_GOODBYE: MsgType
MT_ROOM_STATE: MsgType
MT_VOICE_SETUP: MsgType
MT_VOICE_ACTIVE_ROOM: MsgType
MT_VOICE_TUNNEL: MsgType
MT_VOICE_STATS_REQUEST: MsgType
MT_VOICE_STATS: MsgType
MT_VOICE_TRANSPORT: MsgType
MT_VOICE_LOSS_REPORT: MsgType
MT_VOICE_LOSS_FEEDBACK: MsgType
MT_CALL_REQUEST: MsgType
MT_CALL_STATE: MsgType
MT_CALL_ANSWER: MsgType
MT_CALL_HANGUP: MsgType
MT_MOD_ACTION: MsgType
MT_MOD_RESULT: MsgType
MT_MODERATED: MsgType
MT_SESSION_RESUMED: MsgType
MT_LOGOUT: MsgType
RA_UNKNOWN: RoomActionType
RA_CREATE: RoomActionType
RA_JOIN: RoomActionType
RA_LEAVE: RoomActionType
RA_DELETE: RoomActionType
ERR_NONE: ErrorCode
ERR_BAD_REQUEST: ErrorCode
ERR_NOT_LOGGED_IN: ErrorCode
ERR_ALREADY_LOGGED_IN: ErrorCode
ERR_UNKNOWN_ROOM: ErrorCode
ERR_ROOM_EXISTS: ErrorCode
ERR_NOT_IN_ROOM: ErrorCode
ERR_TOO_LONG: ErrorCode
ERR_RATE_LIMITED: ErrorCode
ERR_UNKNOWN_USER: ErrorCode
ERR_INVALID_NAME: ErrorCode
ERR_MALFORMED_FRAME: ErrorCode
ERR_FRAME_TOO_LARGE: ErrorCode
ERR_UNKNOWN_TYPE: ErrorCode
ERR_SERVER_FULL: ErrorCode
ERR_INTERNAL: ErrorCode
ERR_USER_OFFLINE: ErrorCode
ERR_NO_SUCH_CALL: ErrorCode
ERR_IN_CALL: ErrorCode
ERR_FORBIDDEN: ErrorCode
GB_UNKNOWN: GoodbyeReason
GB_REPLACED: GoodbyeReason
GB_SHUTDOWN: GoodbyeReason
GB_IDLE_TIMEOUT: GoodbyeReason
GB_PROTOCOL_ERROR: GoodbyeReason
GB_SLOW_READER: GoodbyeReason
GB_SERVER_FULL: GoodbyeReason
GB_INTERNAL_ERROR: GoodbyeReason
GB_KICKED: GoodbyeReason
GB_BANNED: GoodbyeReason
GB_LOGGED_OUT: GoodbyeReason
CP_UNKNOWN: CallPhase
CP_RINGING: CallPhase
CP_CONNECTED: CallPhase
CP_ENDED: CallPhase
CE_UNKNOWN: CallEndReason
CE_REJECTED: CallEndReason
CE_NO_ANSWER: CallEndReason
CE_BUSY: CallEndReason
CE_HUNG_UP: CallEndReason
CE_DISCONNECTED: CallEndReason
CE_SHUTDOWN: CallEndReason
MA_UNKNOWN: ModActionKind
MA_KICK: ModActionKind
MA_MUTE: ModActionKind
MA_UNMUTE: ModActionKind
MA_BAN: ModActionKind
MA_UNBAN: ModActionKind
MA_OP: ModActionKind
MA_DEOP: ModActionKind
RE_UNKNOWN: RoomEventKind
RE_JOINED: RoomEventKind
RE_LEFT: RoomEventKind
RE_DELETED: RoomEventKind
VT_UNKNOWN: VoiceTransport
VT_UDP: VoiceTransport
VT_TCP_TUNNEL: VoiceTransport

class LoginRequest(_message.Message):
    __slots__ = ("username", "password", "client_name")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    client_name: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ..., client_name: _Optional[str] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("status_code", "user_id", "message", "username", "server_version", "ban_reason", "ban_expires_ms", "resumed")
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    BAN_REASON_FIELD_NUMBER: _ClassVar[int]
    BAN_EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    status_code: int
    user_id: int
    message: str
    username: str
    server_version: str
    ban_reason: str
    ban_expires_ms: int
    resumed: bool
    def __init__(self, status_code: _Optional[int] = ..., user_id: _Optional[int] = ..., message: _Optional[str] = ..., username: _Optional[str] = ..., server_version: _Optional[str] = ..., ban_reason: _Optional[str] = ..., ban_expires_ms: _Optional[int] = ..., resumed: _Optional[bool] = ...) -> None: ...

class SessionResumed(_message.Message):
    __slots__ = ("rooms", "voice_room", "more")
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    VOICE_ROOM_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    rooms: _containers.RepeatedScalarFieldContainer[str]
    voice_room: str
    more: bool
    def __init__(self, rooms: _Optional[_Iterable[str]] = ..., voice_room: _Optional[str] = ..., more: _Optional[bool] = ...) -> None: ...

class ChatMsg(_message.Message):
    __slots__ = ("user_id", "room_id", "content", "message_id", "timestamp_ms", "client_msg_id", "username")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    room_id: str
    content: str
    message_id: int
    timestamp_ms: int
    client_msg_id: str
    username: str
    def __init__(self, user_id: _Optional[int] = ..., room_id: _Optional[str] = ..., content: _Optional[str] = ..., message_id: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., client_msg_id: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class RoomAction(_message.Message):
    __slots__ = ("action_type", "room_id", "user_id")
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    action_type: RoomActionType
    room_id: str
    user_id: int
    def __init__(self, action_type: _Optional[_Union[RoomActionType, str]] = ..., room_id: _Optional[str] = ..., user_id: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "retry_after_s")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    retry_after_s: float
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ..., retry_after_s: _Optional[float] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("user_id", "username", "source_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    username: str
    source_id: int
    def __init__(self, user_id: _Optional[int] = ..., username: _Optional[str] = ..., source_id: _Optional[int] = ...) -> None: ...

class RoomEvent(_message.Message):
    __slots__ = ("kind", "room_id", "member")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    kind: RoomEventKind
    room_id: str
    member: Member
    def __init__(self, kind: _Optional[_Union[RoomEventKind, str]] = ..., room_id: _Optional[str] = ..., member: _Optional[_Union[Member, _Mapping]] = ...) -> None: ...

class RoomState(_message.Message):
    __slots__ = ("room_id", "members", "more")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    members: _containers.RepeatedCompositeFieldContainer[Member]
    more: bool
    def __init__(self, room_id: _Optional[str] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class RoomInfo(_message.Message):
    __slots__ = ("room_id", "member_count")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    member_count: int
    def __init__(self, room_id: _Optional[str] = ..., member_count: _Optional[int] = ...) -> None: ...

class RoomList(_message.Message):
    __slots__ = ("rooms", "more")
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    rooms: _containers.RepeatedCompositeFieldContainer[RoomInfo]
    more: bool
    def __init__(self, rooms: _Optional[_Iterable[_Union[RoomInfo, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class History(_message.Message):
    __slots__ = ("room_id", "messages")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMsg]
    def __init__(self, room_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMsg, _Mapping]]] = ...) -> None: ...

class DirectMsg(_message.Message):
    __slots__ = ("from_user_id", "from_username", "to_user_id", "to_username", "content", "message_id", "timestamp_ms", "client_msg_id", "offline")
    FROM_USER_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_USERNAME_FIELD_NUMBER: _ClassVar[int]
    TO_USER_ID_FIELD_NUMBER: _ClassVar[int]
    TO_USERNAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_FIELD_NUMBER: _ClassVar[int]
    from_user_id: int
    from_username: str
    to_user_id: int
    to_username: str
    content: str
    message_id: int
    timestamp_ms: int
    client_msg_id: str
    offline: bool
    def __init__(self, from_user_id: _Optional[int] = ..., from_username: _Optional[str] = ..., to_user_id: _Optional[int] = ..., to_username: _Optional[str] = ..., content: _Optional[str] = ..., message_id: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., client_msg_id: _Optional[str] = ..., offline: _Optional[bool] = ...) -> None: ...

class Typing(_message.Message):
    __slots__ = ("room_id", "user_id", "active", "username")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    user_id: int
    active: bool
    username: str
    def __init__(self, room_id: _Optional[str] = ..., user_id: _Optional[int] = ..., active: _Optional[bool] = ..., username: _Optional[str] = ...) -> None: ...

class PresenceList(_message.Message):
    __slots__ = ("online", "more")
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    online: _containers.RepeatedCompositeFieldContainer[Member]
    more: bool
    def __init__(self, online: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class PresenceEvent(_message.Message):
    __slots__ = ("member", "online")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    member: Member
    online: bool
    def __init__(self, member: _Optional[_Union[Member, _Mapping]] = ..., online: _Optional[bool] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("nonce", "sent_ms")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SENT_MS_FIELD_NUMBER: _ClassVar[int]
    nonce: int
    sent_ms: int
    def __init__(self, nonce: _Optional[int] = ..., sent_ms: _Optional[int] = ...) -> None: ...

class Goodbye(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: GoodbyeReason
    message: str
    def __init__(self, reason: _Optional[_Union[GoodbyeReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class VoiceSetup(_message.Message):
    __slots__ = ("udp_port", "source_id", "client_key", "server_key", "ping_interval_ms", "cipher")
    UDP_PORT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_KEY_FIELD_NUMBER: _ClassVar[int]
    SERVER_KEY_FIELD_NUMBER: _ClassVar[int]
    PING_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    CIPHER_FIELD_NUMBER: _ClassVar[int]
    udp_port: int
    source_id: int
    client_key: bytes
    server_key: bytes
    ping_interval_ms: int
    cipher: str
    def __init__(self, udp_port: _Optional[int] = ..., source_id: _Optional[int] = ..., client_key: _Optional[bytes] = ..., server_key: _Optional[bytes] = ..., ping_interval_ms: _Optional[int] = ..., cipher: _Optional[str] = ...) -> None: ...

class VoiceActiveRoom(_message.Message):
    __slots__ = ("room_id",)
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    def __init__(self, room_id: _Optional[str] = ...) -> None: ...

class VoiceTunnel(_message.Message):
    __slots__ = ("datagram",)
    DATAGRAM_FIELD_NUMBER: _ClassVar[int]
    datagram: bytes
    def __init__(self, datagram: _Optional[bytes] = ...) -> None: ...

class VoiceTransportChoice(_message.Message):
    __slots__ = ("transport",)
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    transport: VoiceTransport
    def __init__(self, transport: _Optional[_Union[VoiceTransport, str]] = ...) -> None: ...

class VoiceStats(_message.Message):
    __slots__ = ("packets_in", "packets_out", "dropped", "rtt_ms", "transport", "active_room")
    class DroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PACKETS_IN_FIELD_NUMBER: _ClassVar[int]
    PACKETS_OUT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ROOM_FIELD_NUMBER: _ClassVar[int]
    packets_in: int
    packets_out: int
    dropped: _containers.ScalarMap[str, int]
    rtt_ms: float
    transport: VoiceTransport
    active_room: str
    def __init__(self, packets_in: _Optional[int] = ..., packets_out: _Optional[int] = ..., dropped: _Optional[_Mapping[str, int]] = ..., rtt_ms: _Optional[float] = ..., transport: _Optional[_Union[VoiceTransport, str]] = ..., active_room: _Optional[str] = ...) -> None: ...

class SpeakerLoss(_message.Message):
    __slots__ = ("source_id", "expected", "lost", "late")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    source_id: int
    expected: int
    lost: int
    late: int
    def __init__(self, source_id: _Optional[int] = ..., expected: _Optional[int] = ..., lost: _Optional[int] = ..., late: _Optional[int] = ...) -> None: ...

class VoiceLossReport(_message.Message):
    __slots__ = ("speakers",)
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    speakers: _containers.RepeatedCompositeFieldContainer[SpeakerLoss]
    def __init__(self, speakers: _Optional[_Iterable[_Union[SpeakerLoss, _Mapping]]] = ...) -> None: ...

class VoiceLossFeedback(_message.Message):
    __slots__ = ("loss", "late_loss", "worst_loss", "listeners")
    LOSS_FIELD_NUMBER: _ClassVar[int]
    LATE_LOSS_FIELD_NUMBER: _ClassVar[int]
    WORST_LOSS_FIELD_NUMBER: _ClassVar[int]
    LISTENERS_FIELD_NUMBER: _ClassVar[int]
    loss: float
    late_loss: float
    worst_loss: float
    listeners: int
    def __init__(self, loss: _Optional[float] = ..., late_loss: _Optional[float] = ..., worst_loss: _Optional[float] = ..., listeners: _Optional[int] = ...) -> None: ...

class CallRequest(_message.Message):
    __slots__ = ("to_user_id", "to_username")
    TO_USER_ID_FIELD_NUMBER: _ClassVar[int]
    TO_USERNAME_FIELD_NUMBER: _ClassVar[int]
    to_user_id: int
    to_username: str
    def __init__(self, to_user_id: _Optional[int] = ..., to_username: _Optional[str] = ...) -> None: ...

class CallState(_message.Message):
    __slots__ = ("call_id", "phase", "caller", "callee", "end_reason", "requested_ms", "answered_ms", "duration_ms")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CALLEE_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_MS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_MS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    phase: CallPhase
    caller: Member
    callee: Member
    end_reason: CallEndReason
    requested_ms: int
    answered_ms: int
    duration_ms: int
    def __init__(self, call_id: _Optional[int] = ..., phase: _Optional[_Union[CallPhase, str]] = ..., caller: _Optional[_Union[Member, _Mapping]] = ..., callee: _Optional[_Union[Member, _Mapping]] = ..., end_reason: _Optional[_Union[CallEndReason, str]] = ..., requested_ms: _Optional[int] = ..., answered_ms: _Optional[int] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class CallAnswer(_message.Message):
    __slots__ = ("call_id", "accept")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    accept: bool
    def __init__(self, call_id: _Optional[int] = ..., accept: _Optional[bool] = ...) -> None: ...

class CallHangup(_message.Message):
    __slots__ = ("call_id",)
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    def __init__(self, call_id: _Optional[int] = ...) -> None: ...

class ModAction(_message.Message):
    __slots__ = ("kind", "username", "room_id", "address", "duration_s", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: ModActionKind
    username: str
    room_id: str
    address: str
    duration_s: float
    reason: str
    def __init__(self, kind: _Optional[_Union[ModActionKind, str]] = ..., username: _Optional[str] = ..., room_id: _Optional[str] = ..., address: _Optional[str] = ..., duration_s: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class ModResult(_message.Message):
    __slots__ = ("kind", "username", "room_id", "address", "expires_ms", "message")
    KIND_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    kind: ModActionKind
    username: str
    room_id: str
    address: str
    expires_ms: int
    message: str
    def __init__(self, kind: _Optional[_Union[ModActionKind, str]] = ..., username: _Optional[str] = ..., room_id: _Optional[str] = ..., address: _Optional[str] = ..., expires_ms: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Moderated(_message.Message):
    __slots__ = ("kind", "room_id", "by", "reason", "expires_ms")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    kind: ModActionKind
    room_id: str
    by: Member
    reason: str
    expires_ms: int
    def __init__(self, kind: _Optional[_Union[ModActionKind, str]] = ..., room_id: _Optional[str] = ..., by: _Optional[_Union[Member, _Mapping]] = ..., reason: _Optional[str] = ..., expires_ms: _Optional[int] = ...) -> None: ...

class EchoMsg(_message.Message):
    __slots__ = ("type", "request_id", "login_request", "login_response", "chat_msg", "room_action", "error", "room_event", "room_list", "history", "direct_msg", "typing", "presence_list", "presence_event", "ping", "goodbye", "room_state", "voice_setup", "voice_active_room", "voice_tunnel", "voice_stats", "voice_transport", "voice_loss_report", "voice_loss_feedback", "call_request", "call_state", "call_answer", "call_hangup", "mod_action", "mod_result", "moderated", "session_resumed")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LOGIN_REQUEST_FIELD_NUMBER: _ClassVar[int]
    LOGIN_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CHAT_MSG_FIELD_NUMBER: _ClassVar[int]
    ROOM_ACTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ROOM_EVENT_FIELD_NUMBER: _ClassVar[int]
    ROOM_LIST_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    DIRECT_MSG_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_LIST_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_EVENT_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    ROOM_STATE_FIELD_NUMBER: _ClassVar[int]
    VOICE_SETUP_FIELD_NUMBER: _ClassVar[int]
    VOICE_ACTIVE_ROOM_FIELD_NUMBER: _ClassVar[int]
    VOICE_TUNNEL_FIELD_NUMBER: _ClassVar[int]
    VOICE_STATS_FIELD_NUMBER: _ClassVar[int]
    VOICE_TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    VOICE_LOSS_REPORT_FIELD_NUMBER: _ClassVar[int]
    VOICE_LOSS_FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    CALL_REQUEST_FIELD_NUMBER: _ClassVar[int]
    CALL_STATE_FIELD_NUMBER: _ClassVar[int]
    CALL_ANSWER_FIELD_NUMBER: _ClassVar[int]
    CALL_HANGUP_FIELD_NUMBER: _ClassVar[int]
    MOD_ACTION_FIELD_NUMBER: _ClassVar[int]
    MOD_RESULT_FIELD_NUMBER: _ClassVar[int]
    MODERATED_FIELD_NUMBER: _ClassVar[int]
    SESSION_RESUMED_FIELD_NUMBER: _ClassVar[int]
    type: MsgType
    request_id: int
    login_request: LoginRequest
    login_response: LoginResponse
    chat_msg: ChatMsg
    room_action: RoomAction
    error: Error
    room_event: RoomEvent
    room_list: RoomList
    history: History
    direct_msg: DirectMsg
    typing: Typing
    presence_list: PresenceList
    presence_event: PresenceEvent
    ping: Ping
    goodbye: Goodbye
    room_state: RoomState
    voice_setup: VoiceSetup
    voice_active_room: VoiceActiveRoom
    voice_tunnel: VoiceTunnel
    voice_stats: VoiceStats
    voice_transport: VoiceTransportChoice
    voice_loss_report: VoiceLossReport
    voice_loss_feedback: VoiceLossFeedback
    call_request: CallRequest
    call_state: CallState
    call_answer: CallAnswer
    call_hangup: CallHangup
    mod_action: ModAction
    mod_result: ModResult
    moderated: Moderated
    session_resumed: SessionResumed
    def __init__(self, type: _Optional[_Union[MsgType, str]] = ..., request_id: _Optional[int] = ..., login_request: _Optional[_Union[LoginRequest, _Mapping]] = ..., login_response: _Optional[_Union[LoginResponse, _Mapping]] = ..., chat_msg: _Optional[_Union[ChatMsg, _Mapping]] = ..., room_action: _Optional[_Union[RoomAction, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., room_event: _Optional[_Union[RoomEvent, _Mapping]] = ..., room_list: _Optional[_Union[RoomList, _Mapping]] = ..., history: _Optional[_Union[History, _Mapping]] = ..., direct_msg: _Optional[_Union[DirectMsg, _Mapping]] = ..., typing: _Optional[_Union[Typing, _Mapping]] = ..., presence_list: _Optional[_Union[PresenceList, _Mapping]] = ..., presence_event: _Optional[_Union[PresenceEvent, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ..., room_state: _Optional[_Union[RoomState, _Mapping]] = ..., voice_setup: _Optional[_Union[VoiceSetup, _Mapping]] = ..., voice_active_room: _Optional[_Union[VoiceActiveRoom, _Mapping]] = ..., voice_tunnel: _Optional[_Union[VoiceTunnel, _Mapping]] = ..., voice_stats: _Optional[_Union[VoiceStats, _Mapping]] = ..., voice_transport: _Optional[_Union[VoiceTransportChoice, _Mapping]] = ..., voice_loss_report: _Optional[_Union[VoiceLossReport, _Mapping]] = ..., voice_loss_feedback: _Optional[_Union[VoiceLossFeedback, _Mapping]] = ..., call_request: _Optional[_Union[CallRequest, _Mapping]] = ..., call_state: _Optional[_Union[CallState, _Mapping]] = ..., call_answer: _Optional[_Union[CallAnswer, _Mapping]] = ..., call_hangup: _Optional[_Union[CallHangup, _Mapping]] = ..., mod_action: _Optional[_Union[ModAction, _Mapping]] = ..., mod_result: _Optional[_Union[ModResult, _Mapping]] = ..., moderated: _Optional[_Union[Moderated, _Mapping]] = ..., session_resumed: _Optional[_Union[SessionResumed, _Mapping]] = ...) -> None: ...
