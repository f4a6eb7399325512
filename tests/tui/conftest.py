"""Fixtures for the TUI tests (asyncio, not trio mode: Textual's Pilot needs asyncio).

The server runs as a child process (``python -m echomesh_trio.cli``) on a free port of
127.0.0.1: an in-process Trio server could not share Textual's asyncio loop.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.common import free_port


@dataclass
class Server:
    port: int
    data_dir: Path
    plaintext: bool = True
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "echomesh_trio.cli", "--host=127.0.0.1",
            f"--port={self.port}", f"--data-dir={self.data_dir}", "--password-cost=10",
            "--log-level=info", "--admin-port=0",
        ]  # fmt: skip
        return [*cmd, "--plaintext"] if self.plaintext else cmd

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECHOMESH_")}
        self.log = self.data_dir / "server.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=out, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def fingerprint(self) -> str:
        """As the client shows it: "SHA256:" and the hex pairs the server logs."""
        for line in self.log.read_text().splitlines():
            if "SHA-256 fingerprint: " in line:
                return "SHA256:" + line.split("SHA-256 fingerprint: ", 1)[1].split()[0]
        raise AssertionError("no fingerprint in the server log")


def _server(tmp_path: Path, plaintext: bool) -> Iterator[Server]:
    data = tmp_path / "server"
    data.mkdir()
    server = Server(free_port(udp_too=True), data, plaintext)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from _server(tmp_path, True)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Server]:
    yield from _server(tmp_path, False)


@pytest.fixture(autouse=True)
def _config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of the person running the tests is read or written."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
