"""The real ``echomesh-tui`` binary in a real terminal (tmux): what it draws, read back with
``tmux capture-pane``, and a message typed into it, received by an ``echomesh-bot``.

tmux is installed by ``make setup`` (scripts/bootstrap.sh); without it this test fails
and says so, rather than skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.conftest import Server
from tests.tui.helpers import BUDGET_S, Bot

TUI = Path(sys.executable).with_name("echomesh-tui")


class Tmux:
    """One tmux server of our own (-L), so nobody else's sessions are touched."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"echomesh-test-{os.getpid()}-{tmp.name}"

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            check=True, capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "tui")

    def wait_for(self, text: str, budget: float = BUDGET_S) -> str:
        deadline = time.monotonic() + budget
        while True:
            shown = self.screen()
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on the screen within {budget} s:\n{shown}")
            time.sleep(0.1)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    assert shutil.which("tmux"), "tmux is missing: run `make setup` (or apt-get install tmux)"
    t = Tmux(tmp_path)
    try:
        yield t
    finally:
        t.kill()


def test_echomesh_tui_in_tmux(server: Server, tmux: Tmux, tmp_path: Path) -> None:
    listener = Bot(server.port, "reader", "lobby")
    try:
        env = (
            # COLUMNS and LINES (set by some shells and pytest runs) would override the size
            f"env -u COLUMNS -u LINES XDG_CONFIG_HOME={tmp_path / 'config'} TZ=UTC "
            "ECHOMESH_PASSWORD=secret TERM=xterm-256color"
        )
        command = (
            f"{env} {TUI} --server 127.0.0.1:{server.port} --plaintext --user tina "
            "--room lobby --input null --output null"
        )
        tmux("new-session", "-d", "-s", "tui", "-x", "100", "-y", "30", command)
        screen = tmux.wait_for("connected")
        assert "#lobby" in screen and "Members" in screen
        tmux.wait_for("reader")  # the bot, in the member list
        tmux("send-keys", "-t", "tui", "-l", "hello tmux")
        tmux("send-keys", "-t", "tui", "Enter")
        screen = tmux.wait_for("tina: hello tmux")
        deadline = time.monotonic() + BUDGET_S
        while not listener.said("[lobby] tina: hello tmux"):
            assert time.monotonic() < deadline, listener.lines
            time.sleep(0.05)
        tmux("send-keys", "-t", "tui", "F2")  # push-to-talk on: the on-air block
        tmux.wait_for("ON AIR")
        tmux("send-keys", "-t", "tui", "C-q")
        deadline = time.monotonic() + BUDGET_S
        while "tui" in tmux("list-sessions", "-F", "#{session_name}"):
            assert time.monotonic() < deadline, "echomesh-tui did not quit on Ctrl+Q"
            time.sleep(0.1)
    except subprocess.CalledProcessError as exc:
        if "no server running" not in (exc.stderr or ""):
            raise  # the session (and the server) ended: the app quit
    finally:
        listener.stop()
