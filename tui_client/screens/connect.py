"""The connect screen: server, user, password; remembered servers to pick from."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from echomesh_trio.client.bot import parse_server
from tui_client.messages import ConnectRequested
from tui_client.settings import ServerEntry


class ConnectScreen(Screen[None]):
    def __init__(self, remembered: list[ServerEntry], error: str = "") -> None:
        super().__init__()
        self.remembered = remembered
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="connect-form"):
            yield Static("EchoMesh", id="title")
            yield Static("Voice and text chat for the terminal", id="subtitle")
            if self.remembered:
                yield Label("Remembered servers")
                yield OptionList(
                    *(Option(f"{e.user}@{e.address}", id=str(i))
                      for i, e in enumerate(self.remembered)),
                    id="remembered",
                )  # fmt: skip
            yield Label("Server (HOST:PORT)")
            yield Input(placeholder="chat.example.org:8888", id="server")
            yield Label("User")
            yield Input(placeholder="your name", id="user")
            yield Label("Password")
            yield Input(placeholder="password", password=True, id="password")
            with Horizontal(id="connect-options"):
                yield Checkbox("Plain TCP (no TLS)", id="plaintext")
                yield Checkbox("Remember the password", id="remember-password")
            yield Static(self.error, id="connect-error", markup=False)
            yield Button("Connect", variant="primary", id="connect")
        yield Footer()

    def on_mount(self) -> None:
        if self.remembered:
            self.fill(self.remembered[0])
        self.query_one("#connect-error", Static).display = bool(self.error)
        target = "#password" if self.remembered else "#server"
        self.query_one(target, Input).focus()

    def fill(self, entry: ServerEntry) -> None:
        self.query_one("#server", Input).value = entry.address
        self.query_one("#user", Input).value = entry.user
        self.query_one("#password", Input).value = entry.password or ""
        self.query_one("#plaintext", Checkbox).value = entry.plaintext
        self.query_one("#remember-password", Checkbox).value = entry.password is not None

    @on(OptionList.OptionSelected, "#remembered")
    def _pick(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.fill(self.remembered[int(event.option.id)])
            self.query_one("#password", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#connect")
    def _submit(self) -> None:
        error = self.query_one("#connect-error", Static)
        server = self.query_one("#server", Input).value.strip()
        user = self.query_one("#user", Input).value.strip()
        password = self.query_one("#password", Input).value
        try:
            host, port = parse_server(server if ":" in server else f"{server}:8888")
        except Exception as exc:
            error.update(f"Server: {exc}")
            error.display = True
            return
        if not user or not password:
            error.update("A user name and a password are needed.")
            error.display = True
            return
        error.display = False
        self.post_message(
            ConnectRequested(
                host, port, user, password,
                plaintext=self.query_one("#plaintext", Checkbox).value,
                remember_password=self.query_one("#remember-password", Checkbox).value,
            )
        )  # fmt: skip
