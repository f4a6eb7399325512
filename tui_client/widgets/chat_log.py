"""The chat log of one conversation, with timestamps; only new lines are written."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.text import Text
from textual.widgets import RichLog

from tui_client.model import LogLine

STYLES = {
    "chat": "bold cyan",
    "own": "bold green",
    "history": "cyan",
    "direct": "bold magenta",
    "me": "italic",
    "system": "dim",
    "error": "bold red",
}


class ChatLog(RichLog):
    def __init__(self, **kw: object) -> None:
        # min_width: RichLog renders at least 78 cells wide by default, cutting lines off
        super().__init__(wrap=True, markup=False, highlight=False, min_width=20, **kw)  # type: ignore[arg-type]
        self._key: str | None = None
        self._written = 0
        self.plain_lines: list[str] = []
        """What was written, as plain text (for tests and screen readers)."""

    def show(self, key: str, lines: Sequence[LogLine], total: int) -> None:
        """Show conversation ``key`` whose last ``lines`` are its ``total`` lines so far."""
        if key != self._key:
            self.clear()
            self.plain_lines = []
            self._key, self._written = key, total - len(lines)
        new = total - self._written
        if new <= 0:
            return
        for line in list(lines)[-new:] if new < len(lines) else lines:
            text = render(line)
            self.plain_lines.append(text.plain)
            self.write(text)
        self._written = total


def clock(timestamp_ms: int) -> str:
    return time.strftime("%H:%M", time.localtime(timestamp_ms / 1000))


def render(line: LogLine) -> Text:
    text = Text(clock(line.timestamp_ms) + " ", style="dim")
    style = STYLES.get(line.kind, "")
    if line.kind == "me":
        text.append(f"* {line.who} {line.text}", style=style)
    elif not line.who:
        text.append(line.text, style=style)
    else:
        text.append(line.who, style=style)
        text.append(": " + line.text, style="dim" if line.kind == "history" else "")
    return text
