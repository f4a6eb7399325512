"""The chat input: chat text and slash commands, with Tab completing commands, rooms and
users; reports typing (at most every few seconds) and submitted lines."""

from __future__ import annotations

import time
from typing import Final

from textual.binding import Binding
from textual.widgets import Input

from tui_client.commands import complete
from tui_client.messages import LineEntered, TypingChanged

TYPING_EVERY_S: Final = 3.0


class ChatInput(Input):
    BINDINGS = [Binding("tab", "complete", "Complete", show=False)]

    def __init__(self, **kw: object) -> None:
        super().__init__(placeholder="Message, or /help", **kw)  # type: ignore[arg-type]
        self.rooms: list[str] = []
        self.users: list[str] = []
        self._typing_at = -1e9
        self._choices: list[str] = []
        self._choice = 0

    def action_complete(self) -> None:
        if self._choices and self.value in self._choices:
            self._choice = (self._choice + 1) % len(self._choices)
        else:
            self._choices = complete(self.value, self.rooms, self.users)
            self._choice = 0
        if self._choices:
            self.value = self._choices[self._choice]
            self.cursor_position = len(self.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        now = time.monotonic()
        text = event.value
        if text and not text.startswith("/") and now - self._typing_at > TYPING_EVERY_S:
            self._typing_at = now
            self.post_message(TypingChanged(True))
        elif not text and self._typing_at > 0:
            self._typing_at = -1e9
            self.post_message(TypingChanged(False))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        self.value = ""
        self._choices = []
        if text:
            self.post_message(LineEntered(text))
