"""First contact with a TLS server: show its certificate's fingerprint, ask to trust it."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class FingerprintScreen(ModalScreen[bool]):
    """Dismissed with True (trust and pin) or False (refuse)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Trust"),
        Binding("n,escape", "answer(False)", "Refuse"),
    ]

    def __init__(self, host: str, port: int, fingerprint: str) -> None:
        super().__init__()
        self.host, self.port, self.fingerprint = host, port, fingerprint

    def compose(self) -> ComposeResult:
        with Vertical(id="fingerprint-dialog"):
            yield Static("First contact with this server", classes="dialog-title")
            yield Static(
                f"{self.host}:{self.port} presents a certificate with the fingerprint\n\n"
                f"  {self.fingerprint}\n\n"
                "Compare it with the fingerprint the server's log shows at start-up (ask its "
                "operator). If you trust it, it is remembered, and a different certificate "
                "is refused from then on.",
                id="fingerprint-text",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Trust (y)", variant="success", id="trust")
                yield Button("Refuse (n)", variant="error", id="refuse")

    def action_answer(self, trust: bool) -> None:
        self.dismiss(trust)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "trust")
