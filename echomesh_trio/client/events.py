"""What a client tells its application: typed, immutable events from ``Client.events()``.

Server notices that mean the same thing to an application (a member joined, presence, a
room deleted) are passed through as the protocol's own events; everything the client
itself decides (connection state, talk state, link statistics, what happened to a
message the application sent) is defined here. ``ClientEvent`` is the union of both.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from echomesh_trio.protocol import events as ev


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"
    """Given up: a refused login or fingerprint, replaced by another login, or closed."""


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    """The connection's state. ``retry_in_s`` is the delay before the next attempt (while
    reconnecting); ``reason`` says why it is not connected (empty when connected)."""

    state: ConnectionState
    reason: str = ""
    retry_in_s: float = 0.0
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class CertificatePinned:
    """First contact (or an explicit ``fingerprint``): the server's certificate is now
    pinned in ``path`` and every later connection must present the same one."""

    host: str
    port: int
    fingerprint: str
    path: str


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """Logged in (again, after a reconnect: ``resumed`` is True)."""

    user_id: int
    username: str
    server_version: str
    resumed: bool


@dataclass(frozen=True, slots=True)
class RoomJoined:
    """We are in ``room_id`` (after a join, a create, or a rejoin after reconnecting)."""

    room_id: str
    members: tuple[ev.Member, ...]
    rejoined: bool = False


@dataclass(frozen=True, slots=True)
class RoomLeft:
    room_id: str
    reason: str = ""
    """Empty when we asked; otherwise why (the room was deleted, a rejoin was refused)."""


@dataclass(frozen=True, slots=True)
class ActiveRoomChanged:
    """The room our voice goes to and comes from ("" for none)."""

    room_id: str


@dataclass(frozen=True, slots=True)
class ChatReceived:
    """A chat message in a room we are in. ``history`` marks messages from the history sent
    on join (only the ones not already delivered by this client); ``own`` marks our own."""

    message: ev.ChatMessage
    history: bool = False
    own: bool = False


@dataclass(frozen=True, slots=True)
class DirectReceived:
    """A direct message to us (``offline``: it waited on the server while we were away) or
    our own copy of one we sent (``own``)."""

    message: ev.DirectMessage
    own: bool = False


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """The server stored a message we sent (its acknowledgement arrived)."""

    client_msg_id: str
    message_id: int


@dataclass(frozen=True, slots=True)
class MessageFailed:
    """The server refused a message we sent; it will not be sent again."""

    client_msg_id: str
    code: ev.ErrorCode
    reason: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """The server refused a request (other than a message, see MessageFailed)."""

    code: ev.ErrorCode
    message: str
    request: str
    """What was asked, in a few words (e.g. "join 'lobby'")."""


@dataclass(frozen=True, slots=True)
class RoomList:
    rooms: tuple[ev.RoomInfo, ...]


@dataclass(frozen=True, slots=True)
class PresenceList:
    online: tuple[ev.Member, ...]


@dataclass(frozen=True, slots=True)
class TalkChanged:
    """A speaker started or stopped (``user_id`` 0 if the client does not know them yet)."""

    source_id: int
    user_id: int
    username: str
    speaking: bool


@dataclass(frozen=True, slots=True)
class TransmitChanged:
    """Our own voice: whether frames are going out, and why not."""

    transmitting: bool
    muted: bool
    deafened: bool


@dataclass(frozen=True, slots=True)
class InputLevel:
    """The microphone level of the last frame, for a meter (dBFS, -96 for silence), and
    whether voice activation hears speech."""

    dbfs: float
    voice: bool


@dataclass(frozen=True, slots=True)
class SpeakerLink:
    """What we hear of one speaker over the last interval."""

    username: str
    loss: float
    """Fraction of expected packets that never arrived and could not be recovered."""
    late_loss: float
    """Fraction that arrived after their playout time."""
    delay_ms: float
    """The speaker's jitter-buffer delay."""
    concealed: int


@dataclass(frozen=True, slots=True)
class LinkStatistics:
    """About once a second while connected."""

    transport: ev.VoiceTransport
    udp_rtt_ms: float | None
    tcp_rtt_ms: float | None
    send_kbps: float
    receive_kbps: float
    speakers: Mapping[int, SpeakerLink] = field(default_factory=dict)
    """By source id."""
    reported_loss: float = 0.0
    """The loss our listeners report for our own voice (the server's feedback)."""


ClientEvent = (
    ConnectionChanged
    | CertificatePinned
    | LoggedIn
    | RoomJoined
    | RoomLeft
    | ActiveRoomChanged
    | ChatReceived
    | DirectReceived
    | MessageDelivered
    | MessageFailed
    | ServerError
    | RoomList
    | PresenceList
    | TalkChanged
    | TransmitChanged
    | InputLevel
    | LinkStatistics
    | ev.MemberJoined
    | ev.MemberLeft
    | ev.RoomDeleted
    | ev.TypingNotice
    | ev.PresenceChanged
    | ev.CallRinging
    | ev.CallConnected
    | ev.CallEnded
    | ev.Moderated
    | ev.ModerationDone
)


def coalesce_key(event: ClientEvent) -> object | None:
    """Events with the same key may replace each other while unread (only the newest state
    matters); None for events that must each be delivered."""
    if isinstance(event, InputLevel):
        return InputLevel
    if isinstance(event, LinkStatistics):
        return LinkStatistics
    if isinstance(event, TransmitChanged):
        return TransmitChanged
    if isinstance(event, TalkChanged):
        return (TalkChanged, event.source_id)
    if isinstance(event, ev.TypingNotice):
        return (ev.TypingNotice, event.room_id, event.user_id)
    return None
