"""The main screen: conversations, the chat log and input, members and talk, status."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui_client.model import Model
from tui_client.widgets.chat_input import ChatInput
from tui_client.widgets.chat_log import ChatLog
from tui_client.widgets.members import MemberList, Row
from tui_client.widgets.rooms import Entry, RoomList
from tui_client.widgets.status import Banner, StatusBar
from tui_client.widgets.talk import LevelMeter, OnAir


class MainScreen(Screen[None]):
    # The actions are the app's (it owns the client); ids let a keymap rebind them.
    BINDINGS = [
        # F12 is also the hold-to-talk key where the terminal reports releases
        # (tui_client/keyboard.py); elsewhere it arrives as a press and toggles.
        Binding("f2,f12", "app.talk", "Talk", id="talk"),
        Binding("f3", "app.mute", "Mute", id="mute"),
        Binding("f4", "app.deafen", "Deafen", id="deafen"),
        Binding("f5", "app.cycle_mode", "Mode", id="mode"),
        Binding("f6", "app.vad_step(-1)", "VAD-", id="vad-down"),
        Binding("f7", "app.vad_step(1)", "VAD+", id="vad-up"),
        Binding("ctrl+n", "app.next_conversation", "Next room", id="next"),
        Binding("ctrl+o", "app.devices", "Devices", id="devices"),
    ]

    def compose(self) -> ComposeResult:
        yield Banner(id="banner")
        yield Static("", id="call-bar")
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Static("Conversations", classes="pane-title")
                yield RoomList(id="rooms")
                yield OnAir(id="on-air")
                yield LevelMeter(id="level")
            with Vertical(id="center"):
                yield Static("", id="conversation-title", classes="pane-title")
                yield ChatLog(id="log")
                yield Static("", id="typing")
                yield ChatInput(id="input")
            with Vertical(id="members-pane"):
                yield Static("Members", classes="pane-title")
                yield MemberList(id="members")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ChatInput).focus()
        self.app.call_later(getattr(self.app, "refresh_view", lambda: None))

    def show(
        self, model: Model, *, server: str, mode: str, threshold: float | None,
        now: float | None = None,
    ) -> None:  # fmt: skip
        """Hand every widget what it shows now (each redraws only what changed)."""
        now = time.monotonic() if now is None else now
        key = model.current
        self.query_one(Banner).show(model.state, model.reason, model.retry_in_s)
        self.query_one(StatusBar).show(model.state, server, model.link)
        bar = self.query_one("#call-bar", Static)
        bar.display = model.call is not None
        _set(bar, call_text(model, now))
        entries = [
            Entry(k, len(c.members), c.unread, k == model.active_room)
            for k, c in model.conversations.items()
            if k
        ]
        self.query_one(RoomList).show(entries, key)
        conv = model.conversations.get(key)
        if conv is None:
            title = "no room: /join ROOM"
        elif conv.is_direct:
            title = f"direct messages with {key[1:]}"
        else:
            voice = "  (your voice room)" if key == model.active_room else "  (/voice to talk here)"
            title = f"#{key}{voice}"
        _set(self.query_one("#conversation-title", Static), title)
        if conv is not None:
            self.query_one(ChatLog).show(key, conv.lines, conv.total)
        typing = model.typing_in(key, now)
        _set(self.query_one("#typing", Static), typing_text(typing))
        rows = []
        if conv is not None and not conv.is_direct:
            for name in sorted(conv.members, key=str.lower):
                you = name == model.username
                speaking = model.transmitting if you else name in model.speaking
                rows.append(Row(name, speaking, you, you and model.muted, you and model.deafened))
        self.query_one(MemberList).show(rows)
        self.query_one(OnAir).show(model.transmitting, mode, model.muted, model.deafened)
        self.set_class(model.transmitting, "transmitting")
        self.query_one(LevelMeter).show(model.level_dbfs, threshold)
        chat_input = self.query_one(ChatInput)
        chat_input.rooms = model.rooms
        chat_input.users = model.known_users()


def _set(static: Static, text: str) -> None:
    """Update only on a change: an update re-renders, and state comes 20 times a second."""
    if getattr(static, "_shown_text", None) != text:
        static._shown_text = text  # type: ignore[attr-defined]
        static.update(text)


def call_text(model: Model, now: float) -> str:
    call = model.call
    if call is None:
        return ""
    if not call.connected:
        return (f"📞 {call.peer} is calling: /answer or /reject" if call.incoming
                else f"📞 calling {call.peer}… (/hangup)")  # fmt: skip
    seconds = max(0, int(now - call.since))
    return f"📞 in a call with {call.peer}  {seconds // 60:02d}:{seconds % 60:02d}  (/hangup)"


def typing_text(names: list[str]) -> str:
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing…"
    if len(names) <= 3:
        return f"{', '.join(names[:-1])} and {names[-1]} are typing…"
    return "several people are typing…"
