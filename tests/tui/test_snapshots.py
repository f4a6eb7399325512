"""What the screens look like (pytest-textual-snapshot; ``--snapshot-update`` after a
deliberate change, then look at the SVGs in __snapshots__/).

Deterministic: a fixed terminal size, no cursor blink, fixed timestamps shown in UTC, and
the main screen fed a fixed set of client events instead of a live server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from echomesh_trio.client import events as ce
from echomesh_trio.protocol import events as ev
from tui_client.app import EchoMeshApp, Launch
from tui_client.screens.main import MainScreen
from tui_client.settings import ServerEntry, remember

SIZE = (120, 34)
T0 = 1_764_633_600_000  # 2025-12-02 00:00 UTC


def still(pilot: Pilot[None]) -> None:
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False


def main_screen_events() -> list[ce.ClientEvent]:
    def m(name: str, uid: int) -> ev.Member:
        return ev.Member(uid, name, uid)

    def chat(mid: int, who: str, text: str, minute: int, **kw: bool) -> ce.ChatReceived:
        msg = ev.ChatMessage(mid, "lobby", 1, who, text, T0 + minute * 60_000 + 9 * 3_600_000)
        return ce.ChatReceived(msg, **kw)

    return [
        ce.ConnectionChanged(ce.ConnectionState.CONNECTED),
        ce.LoggedIn(1, "alice", "0.2.0", False),
        ce.RoomJoined("lobby", (m("alice", 1), m("bob", 2), m("carol", 3), m("dave", 4))),
        ce.RoomJoined("ops", (m("alice", 1), m("erin", 5))),
        ce.ActiveRoomChanged("lobby"),
        chat(1, "bob", "morning! standup in 5", 1, history=True),
        chat(2, "carol", "joining from the train, audio may drop", 2, history=True),
        chat(3, "alice", "hi all", 3, own=True),
        chat(4, "dave", "/me pours coffee", 4),
        ce.ChatReceived(ev.ChatMessage(5, "ops", 5, "erin", "deploy done", T0 + 9 * 3_600_000)),
        ce.DirectReceived(ev.DirectMessage(6, 2, "bob", 1, "got a minute after?", T0)),
        ev.TypingNotice("lobby", 3, "carol", True),
        ce.TalkChanged(2, 2, "bob", True),
        ce.InputLevel(-31.0, True),
        ce.LinkStatistics(
            ev.VoiceTransport.UDP,
            0.8,
            1.1,
            26.0,
            51.0,
            {2: ce.SpeakerLink("bob", 0.004, 0.0, 40.0, 0)},
        ),
    ]


async def show_main(pilot: Pilot[None]) -> None:
    app: Any = pilot.app
    app.server = "chat.example.org:8888"
    await app.push_screen(MainScreen())
    for event in main_screen_events():
        app.model.apply(event, now=0.0)
    app.model.select("lobby")
    app.model.conversations["lobby"].typing["carol"] = float("inf")
    app.refresh_view()
    await pilot.pause()
    still(pilot)
    await pilot.pause()


def test_connect_screen(snap_compare: Any, tmp_path: Path) -> None:
    servers = tmp_path / "servers.toml"
    remember(servers, ServerEntry("chat.example.org", 8888, "alice"))
    remember(servers, ServerEntry("127.0.0.1", 7777, "alice", plaintext=True))
    app = EchoMeshApp(Launch(servers_file=servers))

    async def before(pilot: Pilot[None]) -> None:
        await pilot.pause()
        still(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_main_screen(snap_compare: Any, tmp_path: Path) -> None:
    app = EchoMeshApp(Launch(servers_file=tmp_path / "servers.toml"))
    assert snap_compare(app, terminal_size=SIZE, run_before=show_main)


def test_main_screen_on_air_and_reconnecting(snap_compare: Any, tmp_path: Path) -> None:
    app = EchoMeshApp(Launch(servers_file=tmp_path / "servers.toml"))

    async def before(pilot: Pilot[None]) -> None:
        await show_main(pilot)
        app.model.apply(ce.TransmitChanged(True, False, False))
        app.model.apply(ce.ConnectionChanged(ce.ConnectionState.RECONNECTING,
                                             "the server closed the connection", 2.4))  # fmt: skip
        app.refresh_view()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_the_readme_screenshots_are_the_snapshots() -> None:
    """docs/screenshots/ are copies of the accepted snapshots (copy them after
    ``--snapshot-update``)."""
    root = Path(__file__).resolve().parents[2]
    snaps = Path(__file__).parent / "__snapshots__" / "test_snapshots"
    for doc, snap in [
        ("main.svg", "test_main_screen.raw"),
        ("connect.svg", "test_connect_screen.raw"),
        ("on-air-reconnecting.svg", "test_main_screen_on_air_and_reconnecting.raw"),
    ]:
        assert (root / "docs" / "screenshots" / doc).read_bytes() == (snaps / snap).read_bytes(), (
            doc
        )
