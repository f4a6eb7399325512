"""The status bar (connection, transport, link figures) and the reconnect banner."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from echomesh_trio.client.events import ConnectionState as CS
from tui_client.model import Link


def status_text(state: CS, server: str, link: Link) -> Text:
    style = {CS.CONNECTED: "green", CS.OFFLINE: "bold red"}.get(state, "yellow")
    text = Text()
    text.append(f" {state.value} ", style=f"reverse {style}")
    text.append(f" {server}")
    if state is CS.CONNECTED and link.transport:
        via = link.transport if link.transport == "UDP" else "TCP fallback"
        text.append(f"  voice {via}")
        if link.rtt_ms is not None:
            text.append(f"  rtt {link.rtt_ms:.0f} ms")
        text.append(f"  loss {100 * link.loss:.1f} %")
        text.append(f"  buffer {link.delay_ms:.0f} ms")
        text.append(f"  ↑{link.send_kbps:.0f} ↓{link.receive_kbps:.0f} kbit/s")
    return text


class StatusBar(Static):
    def __init__(self, **kw: object) -> None:
        super().__init__("", **kw)  # type: ignore[arg-type]
        self._shown: object = None

    def show(self, state: CS, server: str, link: Link) -> None:
        key = (state, server, link)
        if key != self._shown:
            self._shown = key
            self.update(status_text(state, server, link))


class Banner(Static):
    """Shown while reconnecting (with the next attempt) or offline (with why)."""

    def __init__(self, **kw: object) -> None:
        super().__init__("", **kw)  # type: ignore[arg-type]
        self.display = False
        self.text = ""

    def show(self, state: CS, reason: str, retry_in_s: float) -> None:
        if state is CS.RECONNECTING:
            text = f"Connection lost ({reason}). Reconnecting in {retry_in_s:.1f} s…"
        elif state is CS.CONNECTING and reason:
            text = f"Connection lost ({reason}). Reconnecting now…"
        elif state is CS.OFFLINE:
            text = f"OFFLINE: {reason}" if reason else "OFFLINE"
        else:
            text = ""
        self.set_class(state is CS.OFFLINE, "danger")
        self.display = bool(text)
        if text != self.text:
            self.text = text
            self.update(text)
