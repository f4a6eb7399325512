"""The blocking-socket example client against a real ``echomesh-serve --plaintext``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "chat_client.py"


@pytest.fixture
def server_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()  # the server process must be told its port
    cmd = [sys.executable, "-m", "echomesh_trio.cli", "--plaintext", "--port", str(port)]
    cmd += ["--data-dir", str(tmp_path / "data"), "--password-cost", "10", "--admin-port", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, proc.communicate()[1].decode()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _run(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(SCRIPT), "--port", str(port), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_create_room_send_and_see_the_echo(server_port: int) -> None:
    first = _run(
        server_port,
        "--user",
        "alice",
        "--password",
        "pw1",
        "--room",
        "lobby",
        "--message",
        "hello from the test",
    )
    assert first.returncode == 0, first.stderr
    assert "MT_CHAT_MSG" in first.stdout
    assert 'content: "hello from the test"' in first.stdout
    assert "pw1" not in first.stdout
    # The room exists now: a second client joins it instead of creating it.
    second = _run(
        server_port, "--user", "bob", "--password", "pw2", "--room", "lobby", "--message", "second"
    )
    assert second.returncode == 0, second.stderr
    assert "ERR_ROOM_EXISTS" in second.stdout
    assert "MT_HISTORY" in second.stdout and "hello from the test" in second.stdout
    assert 'content: "second"' in second.stdout


def test_wrong_password_fails_clearly(server_port: int) -> None:
    ok = _run(server_port, "--user", "carol", "--password", "right", "--message", "hi")
    assert ok.returncode == 0, ok.stderr
    bad = _run(server_port, "--user", "carol", "--password", "wrong", "--message", "hi")
    assert bad.returncode == 1
    assert "login failed (401)" in bad.stderr
    assert "MT_CHAT_MSG" not in bad.stdout
