"""What the screen shows, as plain data with no I/O: rooms, conversations, members, talk.

The app feeds it client events (``apply``) and hands its parts down to the widgets. Keys
of conversations: a room id, or ``"@" + username`` for direct messages.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from echomesh_trio.client import events as ce
from echomesh_trio.protocol import events as ev

LOG_LINES: Final = 1_000
"""Lines kept per conversation (the server's history on join is 50)."""
TYPING_FOR_S: Final = 6.0
"""A typing notice counts this long unless renewed or withdrawn (the server relays them at
most every few seconds)."""


@dataclass(frozen=True, slots=True)
class LogLine:
    timestamp_ms: int
    who: str
    text: str
    kind: str = "chat"
    """chat, me (an /me action), own, history, system, error, direct"""


@dataclass(slots=True)
class Conversation:
    key: str
    lines: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    unread: int = 0
    total: int = 0
    """Lines ever added (``lines`` keeps the last LOG_LINES)."""
    members: dict[str, ev.Member] = field(default_factory=dict)
    typing: dict[str, float] = field(default_factory=dict)
    """username -> until when (monotonic)."""

    @property
    def is_direct(self) -> bool:
        return self.key.startswith("@")


@dataclass(frozen=True, slots=True)
class Link:
    """The status bar's link figures."""

    transport: str = ""
    rtt_ms: float | None = None
    loss: float = 0.0
    delay_ms: float = 0.0
    send_kbps: float = 0.0
    receive_kbps: float = 0.0


@dataclass(frozen=True, slots=True)
class Call:
    """Our one call: ringing (either way) or connected since ``since`` (monotonic)."""

    call_id: int
    peer: str
    incoming: bool
    connected: bool = False
    since: float = 0.0


def me_text(text: str) -> tuple[str, bool]:
    """An action (``/me waves``) travels as the plain text "/me waves", readable by any
    client; shown as an action. Returns (text, is_action)."""
    if text.startswith("/me "):
        return text[4:], True
    return text, False


class Model:
    def __init__(self, username: str = "") -> None:
        self.username = username
        self.conversations: dict[str, Conversation] = {}
        self.current = ""
        self.active_room = ""
        self.room_counts: dict[str, int] = {}
        """Member counts of rooms we are not necessarily in (from list_rooms)."""
        self.speaking: set[str] = set()
        self.transmitting = False
        self.muted = False
        self.deafened = False
        self.level_dbfs = -96.0
        self.voice = False
        self.state = ce.ConnectionState.CONNECTING
        self.reason = ""
        self.retry_in_s = 0.0
        self.link = Link()
        self._early: list[LogLine] = []
        self.call: Call | None = None

    # ------------------------------------------------------------------ views
    @property
    def rooms(self) -> list[str]:
        return [k for k, c in self.conversations.items() if not c.is_direct]

    @property
    def directs(self) -> list[str]:
        return [k for k, c in self.conversations.items() if c.is_direct]

    def conversation(self, key: str) -> Conversation:
        if key not in self.conversations:
            self.conversations[key] = Conversation(key)
        return self.conversations[key]

    def select(self, key: str) -> None:
        self.current = key
        conv = self.conversation(key)
        conv.unread = 0
        if self._early:
            conv.lines.extendleft(reversed(self._early))
            conv.total += len(self._early)
            self._early = []

    def typing_in(self, key: str, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        conv = self.conversations.get(key)
        if conv is None:
            return []
        return sorted(u for u, until in conv.typing.items() if until > now)

    def known_users(self) -> list[str]:
        names = {m.username for c in self.conversations.values() for m in c.members.values()}
        names.update(k[1:] for k in self.directs)
        names.discard(self.username)
        return sorted(names)

    def all_text(self) -> list[str]:
        """Every line's text, shown or still waiting for a first conversation."""
        return [line.text for line in self._early] + [
            line.text for c in self.conversations.values() for line in c.lines
        ]

    def say(self, text: str, kind: str = "system", key: str | None = None) -> None:
        """A line from the client itself (errors, help), in the current conversation."""
        line = LogLine(int(time.time() * 1000), "", text, kind)
        where = key if key is not None else self.current
        if not where:  # nothing on screen yet: shown in the first conversation
            self._early.append(line)
            return
        target = self.conversation(where)
        target.lines.append(line)
        target.total += 1

    # ------------------------------------------------------------------ events
    def _add(self, key: str, line: LogLine) -> None:
        conv = self.conversation(key)
        conv.lines.append(line)
        conv.total += 1
        if key != self.current and line.kind not in ("own", "history", "system"):
            conv.unread += 1

    def apply(self, event: ce.ClientEvent, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        match event:
            case ce.ConnectionChanged():
                self.state, self.reason, self.retry_in_s = (
                    event.state, event.reason, event.retry_in_s
                )  # fmt: skip
            case ce.LoggedIn():
                self.username = event.username
            case ce.RoomJoined():
                conv = self.conversation(event.room_id)
                conv.members = {m.username: m for m in event.members}
                self.room_counts[event.room_id] = len(conv.members)
                if not self.current or self.conversations.get(self.current) is None:
                    self.select(event.room_id)
            case ce.RoomLeft():
                self.conversations.pop(event.room_id, None)
                self.room_counts.pop(event.room_id, None)
                if self.current == event.room_id:
                    self.current = next(iter(self.conversations), "")
            case ce.ActiveRoomChanged():
                self.active_room = event.room_id
            case ev.MemberJoined():
                conv = self.conversation(event.room_id)
                conv.members[event.member.username] = event.member
                self.room_counts[event.room_id] = len(conv.members)
            case ev.MemberLeft():
                conv = self.conversation(event.room_id)
                conv.members.pop(event.member.username, None)
                conv.typing.pop(event.member.username, None)
                self.room_counts[event.room_id] = len(conv.members)
            case ev.RoomDeleted():
                self.apply(ce.RoomLeft(event.room_id, f"deleted by {event.by.username}"), now)
            case ce.ChatReceived(message=m):
                text, action = me_text(m.content)
                kind = "history" if event.history else "own" if event.own else "chat"
                if action:
                    kind = "me"
                self._add(m.room_id, LogLine(m.timestamp_ms, m.username, text, kind))
                self.conversation(m.room_id).typing.pop(m.username, None)
            case ce.DirectReceived(message=m):
                peer = m.to_username if event.own else m.from_username
                kind = "own" if event.own else "direct"
                self._add("@" + peer, LogLine(m.timestamp_ms, m.from_username, m.content, kind))
            case ev.TypingNotice():
                conv = self.conversation(event.room_id)
                if event.active:
                    conv.typing[event.username] = now + TYPING_FOR_S
                else:
                    conv.typing.pop(event.username, None)
            case ce.RoomList():
                self.room_counts.update({r.room_id: r.member_count for r in event.rooms})
            case ce.TalkChanged():
                if event.speaking:
                    self.speaking.add(event.username)
                else:
                    self.speaking.discard(event.username)
            case ce.TransmitChanged():
                self.transmitting = event.transmitting
                self.muted, self.deafened = event.muted, event.deafened
            case ce.InputLevel():
                self.level_dbfs, self.voice = event.dbfs, event.voice
            case ce.LinkStatistics():
                self.link = link_of(event)
            case ev.CallRinging():
                incoming = event.callee.username == self.username
                peer = event.caller.username if incoming else event.callee.username
                if self.call is None or self.call.call_id != event.call_id:
                    self.call = Call(event.call_id, peer, incoming)
                    self.say(f"{peer} is calling you: /answer or /reject" if incoming
                             else f"calling {peer}…")  # fmt: skip
            case ev.CallConnected():
                incoming = event.callee.username == self.username
                peer = event.caller.username if incoming else event.callee.username
                self.call = Call(event.call_id, peer, incoming, True, now)
                self.say(f"in a call with {peer}: your voice goes to them only (/hangup)")
            case ev.CallEnded():
                if self.call is not None and self.call.call_id == event.call_id:
                    self.say(f"call with {self.call.peer} ended: "
                             f"{event.reason.name.lower().replace('_', ' ')}")  # fmt: skip
                    self.call = None
            case ev.Moderated():
                what = MODERATED.get(event.kind, "did something to you in")
                where = f" #{event.room_id}" if event.room_id else " the server"
                why = f": {event.reason}" if event.reason else ""
                self.say(f"{event.by.username} {what}{where}{why}", "error")
            case ev.ModerationDone():
                self.say(event.message or f"done: {event.kind.name.lower()} {event.username}")
            case ce.MessageFailed():
                self.say(f"message not sent: {event.reason} ({event.code.name})", "error")
            case ce.ServerError():
                self.say(f"{event.request}: {event.message} ({event.code.name})", "error")


MODERATED: Final = {
    ev.ModerationKind.KICK: "kicked you out of",
    ev.ModerationKind.MUTE: "muted you in",
    ev.ModerationKind.UNMUTE: "unmuted you in",
    ev.ModerationKind.OP: "made you an owner of",
    ev.ModerationKind.DEOP: "took your ownership of",
}


def link_of(stats: ce.LinkStatistics) -> Link:
    speakers = list(stats.speakers.values())
    loss = max((s.loss for s in speakers), default=0.0)
    delay = max((s.delay_ms for s in speakers), default=0.0)
    transport = {ev.VoiceTransport.UDP: "UDP", ev.VoiceTransport.TCP_TUNNEL: "TCP"}.get(
        stats.transport, ""
    )
    rtt = stats.udp_rtt_ms if transport == "UDP" else stats.tcp_rtt_ms
    if rtt is None:
        rtt = stats.tcp_rtt_ms
    return Link(transport, rtt, loss, delay, stats.send_kbps, stats.receive_kbps)
