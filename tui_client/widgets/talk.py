"""Talking: the on-air indicator, the transmit mode and the microphone level meter."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

METER_CELLS = 12
"""With " -31 dB" and "mic " it fits the sidebar's 24 cells on one line."""
FLOOR_DBFS = -60.0


class OnAir(Static):
    """Unmissable when our voice goes out: a red block; a quiet line otherwise."""

    def __init__(self, **kw: object) -> None:
        super().__init__("", **kw)  # type: ignore[arg-type]
        self.state: tuple[bool, str, bool, bool] | None = None

    def show(self, transmitting: bool, mode: str, muted: bool, deafened: bool) -> None:
        state = (transmitting, mode, muted, deafened)
        if state == self.state:
            return
        self.state = state
        self.set_class(transmitting, "on-air")
        if transmitting:
            self.update(f"● ON AIR  ({mode})")
        elif deafened:
            self.update("deafened: you hear nothing and send nothing (F4)")
        elif muted:
            self.update("muted (F3)")
        elif mode == "push-to-talk":
            self.update("off air: F2 to talk")
        else:
            self.update(f"off air ({mode})")


def meter(dbfs: float, threshold: float | None, cells: int = METER_CELLS) -> Text:
    def cell(level: float) -> int:
        return round(cells * min(1.0, max(0.0, (level - FLOOR_DBFS) / -FLOOR_DBFS)))

    lit = cell(dbfs)
    text = Text("mic ")
    mark = cell(threshold) if threshold is not None else None
    for i in range(cells):
        char = "|" if i == mark else "█" if i < lit else "·"
        style = "green" if i < lit else "dim"
        text.append(char, style="bold yellow" if i == mark else style)
    text.append(f" {max(dbfs, -96):3.0f} dB")
    if threshold is not None:
        text.append(f"\nVAD threshold {threshold:.0f} dB", style="dim")
    return text


class LevelMeter(Static):
    def __init__(self, **kw: object) -> None:
        super().__init__("", **kw)  # type: ignore[arg-type]
        self._shown: tuple[int, float | None] | None = None

    def show(self, dbfs: float, threshold: float | None) -> None:
        key = (round(dbfs), threshold)
        if key != self._shown:
            self._shown = key
            self.update(meter(dbfs, threshold))
