"""The audio device picker: the sound cards PortAudio lists, plus tone, WAV and null."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui_client.messages import DeviceChosen

BUILTIN_INPUTS = [("null", "silence"), ("tone:440", "a 440 Hz tone")]
BUILTIN_OUTPUTS = [("null", "discard")]


def device_options(devices: list[dict[str, Any]], kind: str) -> list[tuple[str, str]]:
    """(spec, label) of each device of ``kind`` ("input" or "output"), then the built-ins."""
    channels = "max_input_channels" if kind == "input" else "max_output_channels"
    found = [
        (str(d.get("index", i)), f"{d.get('name', '?')} ({d.get(channels)} ch)")
        for i, d in enumerate(devices)
        if d.get(channels, 0) > 0
    ]
    return found + (BUILTIN_INPUTS if kind == "input" else BUILTIN_OUTPUTS)


class DevicesScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def __init__(self, devices: list[dict[str, Any]], current: tuple[str, str], note: str):
        super().__init__()
        self.devices, self.current, self.note = devices, current, note

    def compose(self) -> ComposeResult:
        with Vertical(id="devices-dialog"):
            yield Static("Audio devices", classes="dialog-title")
            yield Static(
                f"now: input {self.current[0]}, output {self.current[1]}"
                + (f"\n{self.note}" if self.note else ""),
                id="devices-note",
            )
            for kind in ("input", "output"):
                yield Static(kind.capitalize(), classes="dialog-subtitle")
                yield OptionList(
                    *(Option(f"{label}  [{spec}]", id=f"{kind}|{spec}")
                      for spec, label in device_options(self.devices, kind)),
                    id=f"{kind}-devices",
                )  # fmt: skip
            yield Static("Enter chooses (the client reconnects with it); Esc closes.")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            kind, _, spec = event.option.id.partition("|")
            self.app.post_message(DeviceChosen(kind, spec))
            self.dismiss()
