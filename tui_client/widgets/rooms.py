"""The conversation list: rooms with member counts, unread markers, the voice room, and
direct conversations."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui_client.messages import ConversationSelected


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    """A room id, or "@user"."""
    members: int = 0
    unread: int = 0
    voice: bool = False
    """Our active voice room."""


class RoomList(OptionList):
    """Posts ConversationSelected when a conversation is picked."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self._shown: tuple[tuple[Entry, ...], str] | None = None

    def show(self, entries: list[Entry], current: str) -> None:
        key = (tuple(entries), current)
        if key == self._shown:
            return
        self._shown = key
        self.set_options(Option(label(e), id=e.key) for e in entries)
        for index, e in enumerate(entries):
            if e.key == current:
                self.highlighted = index

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(ConversationSelected(event.option.id))


def label(e: Entry) -> Text:
    text = Text()
    text.append("🔊 " if e.voice else "  ")
    if e.key.startswith("@"):
        text.append(e.key, style="italic")
    else:
        text.append("#" + e.key)
        text.append(f" ({e.members})", style="dim")
    if e.unread:
        text.append(f" •{e.unread}", style="bold yellow")
    return text
