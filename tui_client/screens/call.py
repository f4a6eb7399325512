"""An incoming call: who calls, take it or refuse it."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class CallScreen(ModalScreen[bool]):
    """Dismissed with True (answer) or False (reject)."""

    BINDINGS = [
        Binding("y,a", "answer(True)", "Answer"),
        Binding("n,r,escape", "answer(False)", "Reject"),
    ]

    def __init__(self, caller: str) -> None:
        super().__init__()
        self.caller = caller

    def compose(self) -> ComposeResult:
        with Vertical(id="call-dialog"):
            yield Static(f"📞  {self.caller} is calling you", classes="dialog-title")
            yield Static("While the call lasts, your voice goes to them only.")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Answer (y)", variant="success", id="answer")
                yield Button("Reject (n)", variant="error", id="reject")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "answer")
