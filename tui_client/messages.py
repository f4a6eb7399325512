"""The app's messages, in one place: what widgets report (up), and what the Trio side hands
the app (client events, one at a time or as a coalesced batch)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from echomesh_trio.client import events as ce


# ---------------------------------------------------------------------- from widgets
@dataclass
class ConnectRequested(Message):
    """The connect screen's form was submitted."""

    host: str
    port: int
    user: str
    password: str
    plaintext: bool = False
    remember_password: bool = False


@dataclass
class ConversationSelected(Message):
    """A room or a direct conversation was picked ("@user" for direct ones)."""

    key: str


@dataclass
class LineEntered(Message):
    """A line was submitted in the chat input (chat text or a slash command)."""

    text: str


@dataclass
class TypingChanged(Message):
    """The person started or stopped typing in the chat input."""

    active: bool


@dataclass
class TalkRequested(Message):
    """Push-to-talk down or up from outside the keyboard (the control socket)."""

    down: bool


@dataclass
class DeviceChosen(Message):
    """The device picker chose an input or output device spec."""

    kind: str
    """"input" or "output"."""
    spec: str


# ---------------------------------------------------------------------- from Trio
@dataclass
class ClientUpdate(Message):
    """One client event that must be seen (chat, membership, connection state...)."""

    event: ce.ClientEvent


@dataclass
class StateBatch(Message):
    """The newest of each fast-changing state (talk, levels, link statistics), at most
    ``session.STATE_EVERY_S`` apart."""

    events: list[ce.ClientEvent]


@dataclass
class SessionEnded(Message):
    """The client stopped (closed, or went offline for good)."""

    reason: str
