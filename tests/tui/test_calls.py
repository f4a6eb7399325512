"""Calls and moderation between two real clients (issue 10's TUI part)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from echomesh_trio.client.events import ConnectionState as CS
from tests.tui.conftest import Server
from tests.tui.helpers import AppThread, log_text, members_shown, scripted, submit, until
from tui_client.screens.call import CallScreen


def bar(app: object) -> str:
    widget = app.screen.query_one("#call-bar")  # type: ignore[attr-defined]
    return str(widget.render()) if widget.display else ""


def test_a_call_rings_connects_shows_its_bar_and_ends(server: Server, tmp_path: Path) -> None:
    alice = scripted(server.port, "alice", tmp_path)
    bob = scripted(server.port, "bob", tmp_path)

    async def body() -> None:
        async with alice.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: alice.model.state is CS.CONNECTED, "alice connected")
            with AppThread(bob) as other:
                await until(pilot, lambda: "bob" in members_shown(alice), "bob is here")
                await submit(pilot, "/call bob")
                await until(pilot, lambda: "calling bob" in bar(alice), "alice's ringing bar")
                await other.until(lambda: isinstance(bob.screen, CallScreen), "bob's prompt")
                assert other.call(lambda: bob.screen.caller) == "alice"  # type: ignore[attr-defined]
                other.call(lambda: other.pilot.press("y"))  # type: ignore[union-attr]
                await until(pilot, lambda: "in a call with bob" in bar(alice), "alice in call")
                await other.until(lambda: "in a call with alice" in bar(bob), "bob in call")
                await submit(pilot, "/hangup")
                await until(pilot, lambda: bar(alice) == "", "alice's bar gone")
                await other.until(lambda: bar(bob) == "", "bob's bar gone")
                assert any("call with bob ended: hung up" in x for x in log_text(alice))
                # a refused call
                await submit(pilot, "/call bob")
                await other.until(lambda: isinstance(bob.screen, CallScreen), "rings again")
                other.call(lambda: other.pilot.press("n"))  # type: ignore[union-attr]
                await until(pilot, lambda: any("ended: rejected" in x for x in log_text(alice)),
                            "rejected")  # fmt: skip

    asyncio.run(body())


def test_a_room_owner_kicks(server: Server, tmp_path: Path) -> None:
    alice = scripted(server.port, "alice", tmp_path, room="den")  # creates it: its owner
    bob = scripted(server.port, "bob", tmp_path, room="den")

    async def body() -> None:
        async with alice.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: "den" in alice.model.rooms, "alice in den")
            with AppThread(bob) as other:
                await until(pilot, lambda: "bob" in members_shown(alice), "bob is here")
                await submit(pilot, "/kick bob")
                await until(pilot, lambda: "bob" not in members_shown(alice), "bob is out")
                await other.until(lambda: "den" not in bob.model.rooms, "bob left den")
                await other.until(
                    lambda: any("alice kicked you out of #den" in x for x in bob.model.all_text()),
                    "bob is told",
                )
                other.call(lambda: submit(other.pilot, "/kick alice"))  # type: ignore[arg-type]
                await other.until(
                    lambda: any("kick alice" in x and "FORBIDDEN" in x
                                for x in bob.model.all_text()),
                    "bob may not kick",
                )  # fmt: skip

    asyncio.run(body())
