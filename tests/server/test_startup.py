"""Every start-up failure is one line on stderr and exit code 1, never a traceback.

Each case runs the real ``echomesh-serve`` (``python -m echomesh_trio.cli``) in a child
process, as an operator would, and reads what it prints.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from echomesh_trio.server.tlscert import ensure_self_signed

SERVE = (sys.executable, "-m", "echomesh_trio.cli", "--port", "0", "--admin-port", "0")


def _serve(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run echomesh-serve until it exits (it must: each case fails to start)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ECHOMESH_")}
    environ.update(env or {})
    proc = subprocess.run(
        [*SERVE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )
    return proc.returncode, proc.stderr.splitlines()


def _fails_in_one_line(*args: str, says: str, env: dict[str, str] | None = None) -> str:
    code, lines = _serve(*args, env=env)
    assert code == 1, (code, lines)
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    assert lines[0].startswith("echomesh-serve: ")
    assert says in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def busy_port() -> int:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_in_use(tmp_path: Path, busy_port: int) -> None:
    line = _fails_in_one_line(
        "--data-dir", str(tmp_path), "--port", str(busy_port), says=f"127.0.0.1:{busy_port}"
    )
    assert "another echomesh-serve" in line and "--port" in line
    assert not (tmp_path / "echomesh.sqlite3").stat().st_size  # nothing written yet


def test_admin_port_in_use(tmp_path: Path, busy_port: int) -> None:
    line = _fails_in_one_line(
        "--data-dir", str(tmp_path), "--admin-port", str(busy_port), says="admin HTTP"
    )
    assert "--admin-port" in line


def test_unresolvable_host(tmp_path: Path) -> None:
    _fails_in_one_line(
        "--data-dir", str(tmp_path), "--host", "no-such-host.invalid", says="cannot resolve"
    )


def test_data_dir_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    _fails_in_one_line("--data-dir", str(tmp_path / "file"), says="is a file")


def test_data_dir_cannot_be_created_or_written(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    _fails_in_one_line("--data-dir", str(tmp_path / "file" / "sub"), says="cannot create")
    _fails_in_one_line("--data-dir", "/proc/self", says="/proc/self")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes everywhere")
def test_data_dir_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    _fails_in_one_line("--data-dir", str(locked), says="not writable")


def test_corrupt_or_foreign_database(tmp_path: Path) -> None:
    (tmp_path / "echomesh.sqlite3").write_bytes(b"this is not SQLite\n" * 100)
    (tmp_path / "echomesh.sqlite3").chmod(0o600)  # else a warning says it was readable
    _fails_in_one_line("--data-dir", str(tmp_path), says="file is not a database")


def test_database_from_a_newer_version(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "echomesh.sqlite3")
    db.execute("PRAGMA user_version=99")
    db.close()
    (tmp_path / "echomesh.sqlite3").chmod(0o600)
    line = _fails_in_one_line("--data-dir", str(tmp_path), says="schema 99")
    assert "newer EchoMesh" in line


def test_missing_cert_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    _fails_in_one_line(
        "--data-dir",
        str(tmp_path),
        "--cert",
        str(missing),
        "--key",
        str(missing),
        says=str(missing),
    )


def test_swapped_cert_and_key_and_garbage_pem(tmp_path: Path) -> None:
    cert, key = ensure_self_signed(tmp_path / "tls")
    line = _fails_in_one_line(
        "--data-dir", str(tmp_path), "--cert", str(key), "--key", str(cert), says="cannot use"
    )
    assert "swapped" in line
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    _fails_in_one_line(
        "--data-dir", str(tmp_path), "--cert", str(garbage), "--key", str(key), says=str(garbage)
    )


def test_config_is_a_directory(tmp_path: Path) -> None:
    _fails_in_one_line("--config", str(tmp_path), says="is a directory")


def test_bad_values_read_well(tmp_path: Path) -> None:
    _fails_in_one_line("--port", "abc", says="port must be a whole number, not 'abc'")
    _fails_in_one_line("--chat-rate", "nan", says="chat_rate must be a finite number")
    _fails_in_one_line("--idle-timeout", "inf", says="idle_timeout must be a finite number")
    _fails_in_one_line(
        "--plaintext", "--cert", "c.pem", "--key", "k.pem", says="plaintext serves no TLS"
    )
    _fails_in_one_line("--admin-host", "0.0.0.0", says="admin token")


def test_misspelt_environment_variable(tmp_path: Path) -> None:
    _fails_in_one_line(
        "--data-dir",
        str(tmp_path),
        says="unknown environment variable ECHOMESH_PROT (did you mean ECHOMESH_PORT?)",
        env={"ECHOMESH_PROT": "9000"},
    )


def test_second_server_on_the_same_data_dir_names_the_holder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHOMESH_")}
    first = subprocess.Popen(
        [*SERVE, "--plaintext", "--data-dir", str(tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert first.stderr is not None
        for line in first.stderr:
            if "listening on" in line:
                break
        else:
            raise AssertionError(f"the first server did not start ({first.wait()})")
        line = _fails_in_one_line("--plaintext", "--data-dir", str(tmp_path), says="in use by")
        assert f"pid {first.pid}" in line
    finally:
        first.terminate()
        first.wait(10)


def test_voice_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        line = _fails_in_one_line(
            "--data-dir", str(tmp_path), "--udp-port", str(port), says=f"127.0.0.1:{port}"
        )
    assert "UDP voice" in line and "--udp-port" in line
