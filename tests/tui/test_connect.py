"""Connecting: the connect screen, remembered servers, and trust on first use."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

from echomesh_trio.client.events import ConnectionState as CS
from tests.tui.conftest import Server
from tests.tui.helpers import Bot, scripted, until
from tui_client import settings
from tui_client.app import EchoMeshApp, Launch
from tui_client.screens.connect import ConnectScreen
from tui_client.screens.fingerprint import FingerprintScreen
from tui_client.screens.main import MainScreen
from tui_client.widgets.status import Banner

SIZE = (120, 36)
OTHER = "SHA256:" + ":".join(["AB"] * 32)


def test_connect_screen_connects_and_remembers_the_server_not_the_password(
    server: Server, tmp_path: Path
) -> None:
    servers = tmp_path / "servers.toml"
    app = EchoMeshApp(Launch(servers_file=servers, known_servers=tmp_path / "known.toml",
                             audio_input="null", audio_output="null"))  # fmt: skip

    async def body() -> None:
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, ConnectScreen)
            app.screen.query_one("#server").value = f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]
            app.screen.query_one("#user").value = "carol"  # type: ignore[attr-defined]
            app.screen.query_one("#password").value = "secret"  # type: ignore[attr-defined]
            app.screen.query_one("#plaintext").value = True  # type: ignore[attr-defined]
            app.screen.query_one("#password").focus()
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, MainScreen), "the main screen")
            await until(pilot, lambda: app.model.state is CS.CONNECTED
                        and "lobby" in app.model.rooms, "connected, in the lobby")  # fmt: skip

    asyncio.run(body())
    data = tomllib.loads(servers.read_text())
    assert data["server"] == [
        {"host": "127.0.0.1", "port": server.port, "user": "carol", "plaintext": True}
    ]
    assert "secret" not in servers.read_text()
    assert servers.stat().st_mode & 0o077 == 0
    # the next start offers it, filled in
    again = EchoMeshApp(Launch(servers_file=servers))

    async def second() -> None:
        async with again.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert again.screen.query_one("#server").value == f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]
            assert again.screen.query_one("#user").value == "carol"  # type: ignore[attr-defined]
            assert again.screen.query_one("#password").value == ""  # type: ignore[attr-defined]

    asyncio.run(second())


def test_a_refused_login_goes_back_to_the_connect_screen_and_says_why(
    server: Server, tmp_path: Path
) -> None:
    bot = Bot(server.port, "zed", "lobby", "--seconds", "0.5")  # registers zed / "secret"
    assert bot.proc.wait(30) == 0
    app = EchoMeshApp(Launch(servers_file=tmp_path / "servers.toml", audio_input="null",
                             audio_output="null"))  # fmt: skip

    async def body() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            screen.query_one("#server").value = f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]
            screen.query_one("#user").value = "zed"  # type: ignore[attr-defined]
            screen.query_one("#password").value = "wrong"  # type: ignore[attr-defined]
            screen.query_one("#plaintext").value = True  # type: ignore[attr-defined]
            screen.query_one("#password").focus()
            first = app.screen
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ConnectScreen)
                        and app.screen is not first, "back to a connect screen")  # fmt: skip
            error = app.screen.query_one("#connect-error")
            assert error.display and "login refused" in str(error.render())

    asyncio.run(body())


def test_the_password_is_remembered_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "servers.toml"
    settings.remember(path, settings.ServerEntry("a.example", 1, "ann"))
    settings.remember(path, settings.ServerEntry("b.example", 2, "bob", True, "pw"))
    settings.remember(path, settings.ServerEntry("a.example", 1, "ann"))
    entries = settings.load(path)
    assert [(e.host, e.password) for e in entries] == [("a.example", None), ("b.example", "pw")]


def test_first_contact_shows_the_fingerprint_and_pins_it_when_trusted(
    tls_server: Server, tmp_path: Path
) -> None:
    app = scripted(tls_server.port, "dave", tmp_path, plaintext=False)
    known = tmp_path / "known-dave.toml"

    async def body() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, FingerprintScreen), "the prompt")
            prompt = app.screen
            assert isinstance(prompt, FingerprintScreen)
            assert prompt.fingerprint == tls_server.fingerprint()
            assert tls_server.fingerprint() in str(prompt.query_one("#fingerprint-text").render())
            assert app.model.state is not CS.CONNECTED  # nothing before the answer
            await pilot.press("y")
            await until(pilot, lambda: app.model.state is CS.CONNECTED, "connected")

    asyncio.run(body())
    assert tls_server.fingerprint() in known.read_text()


def test_first_contact_refused_pins_nothing(tls_server: Server, tmp_path: Path) -> None:
    app = scripted(tls_server.port, "erin", tmp_path, plaintext=False)

    async def body() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, FingerprintScreen), "the prompt")
            await pilot.press("n")
            await until(pilot, lambda: app.model.state is CS.OFFLINE, "offline")
            banner = app.screen.query_one(Banner)
            assert banner.display and "not accepted" in banner.text

    asyncio.run(body())
    assert not (tmp_path / "known-erin.toml").exists()


def test_a_changed_certificate_is_refused_with_a_loud_warning(
    tls_server: Server, tmp_path: Path
) -> None:
    known = tmp_path / "known-fred.toml"
    known.write_text(f'[servers]\n"127.0.0.1:{tls_server.port}" = "{OTHER}"\n')
    app = scripted(tls_server.port, "fred", tmp_path, plaintext=False)

    async def body() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.model.state is CS.OFFLINE, "refused")
            assert not isinstance(app.screen, FingerprintScreen)  # never a question
            banner = app.screen.query_one(Banner)
            assert banner.display and banner.has_class("danger")
            assert "HAS CHANGED - CONNECTION REFUSED" in banner.text
            assert tls_server.fingerprint() in banner.text and OTHER in banner.text

    asyncio.run(body())
    assert OTHER in known.read_text()  # the pin is untouched
