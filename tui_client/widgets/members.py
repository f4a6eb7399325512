"""Members of the current room, each with a live talk indicator."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True, slots=True)
class Row:
    username: str
    speaking: bool = False
    you: bool = False
    muted: bool = False
    deafened: bool = False


class MemberList(Static):
    def __init__(self, **kw: object) -> None:
        super().__init__("", **kw)  # type: ignore[arg-type]
        self.rows: tuple[Row, ...] = ()

    @property
    def lit(self) -> frozenset[str]:
        """Who shows as speaking right now."""
        return frozenset(r.username for r in self.rows if r.speaking)

    def show(self, rows: list[Row]) -> None:
        if tuple(rows) == self.rows:
            return
        self.rows = tuple(rows)
        text = Text()
        for row in rows:
            if row.speaking:
                text.append(" ◉ ", style="bold black on green")
            else:
                text.append(" ○ ", style="dim")
            text.append(" " + row.username, style="bold green" if row.speaking else "")
            marks = [m for m, on in (("you", row.you), ("muted", row.muted),
                                     ("deafened", row.deafened)) if on]  # fmt: skip
            if marks:
                text.append(f" ({', '.join(marks)})", style="dim")
            text.append("\n")
        self.update(text)
