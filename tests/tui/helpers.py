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


class AppThread:
    """A second app, run with ``run_test`` on its own asyncio loop in its own thread (one
    Trio guest run per thread). ``call`` runs a function on that loop and returns its
    result, so the test reads and drives the app where it lives."""

    def __init__(self, app: EchoMeshApp, size: tuple[int, int] = (120, 36)) -> None:
        import threading

        self.app = app
        self.size = size
        self.pilot: Pilot[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> AppThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the second app did not start")
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        async with self.app.run_test(size=self.size) as pilot:
            self.pilot = pilot
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()

    def call(self, fn: Callable[[], object], timeout: float = BUDGET_S) -> object:
        assert self._loop is not None

        async def run() -> object:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    async def until(self, condition: Callable[[], object], what: str) -> None:
        """Poll ``condition`` on the app's own loop from the test's loop."""
        await until_async(lambda: self.call(condition), what)


async def submit(pilot: Pilot[None], text: str) -> None:
    """Type a line into the chat input and press Enter (the value is set at once: Pilot
    waits for an idle process after every key, and a voice client is never quite idle)."""
    from tui_client.widgets.chat_input import ChatInput

    chat_input = pilot.app.screen.query_one(ChatInput)
    chat_input.focus()
    chat_input.value = text
    await pilot.press("enter")


def log_text(app: EchoMeshApp) -> list[str]:
    from tui_client.widgets.chat_log import ChatLog

    try:
        return list(app.screen.query_one(ChatLog).plain_lines)
    except Exception:
        return []


def members_shown(app: EchoMeshApp) -> list[str]:
    from tui_client.widgets.members import MemberList

    try:
        return [r.username for r in app.screen.query_one(MemberList).rows]
    except Exception:
        return []


def lit(app: EchoMeshApp) -> frozenset[str]:
    from tui_client.widgets.members import MemberList

    try:
        return app.screen.query_one(MemberList).lit
    except Exception:
        return frozenset()


class Bot:
    """``echomesh-bot`` in a child process, its output lines collected."""

    def __init__(self, port: int, user: str, room: str, *args: str) -> None:
        import os
        import subprocess
        import sys
        import threading

        env = {k: v for k, v in os.environ.items() if k != "ECHOMESH_PASSWORD"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "echomesh_trio.client.bot", "--plaintext",
             f"--server=127.0.0.1:{port}", f"--user={user}", "--password=secret",
             f"--room={room}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
