"""Helpers for driving the real app with Pilot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tui_client.app import EchoMeshApp, Launch

BUDGET_S = 20.0
"""How long a condition may take to come true (a hard budget, not a speed goal)."""


def scripted(port: int, user: str, tmp: Path, room: str = "lobby", **kw: object) -> EchoMeshApp:
    launch = Launch(
        host="127.0.0.1", port=port, user=user, password="secret", room=room,
        plaintext=kw.pop("plaintext", True),  # type: ignore[arg-type]
        known_servers=tmp / f"known-{user}.toml", servers_file=tmp / f"servers-{user}.toml",
        audio_input=kw.pop("audio_input", "null"),  # type: ignore[arg-type]
        audio_output="null", **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return EchoMeshApp(launch)


async def until(
    pilot: Pilot[None], condition: Callable[[], object], what: str, budget: float = BUDGET_S
) -> None:
    deadline = time.monotonic() + budget
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {budget} s: {what}")
        await pilot.pause(0.02)


async def until_async(condition: Callable[[], object], what: str, budget: float = BUDGET_S) -> None:
    deadline = time.monotonic() + budget
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {budget} s: {what}")
        await asyncio.sleep(0.02)
