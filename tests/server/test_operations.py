"""An operator's tools: settings, the data directory, backup, schema upgrades, signals and
user administration (real servers, real SQLite files, the real CLI)."""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from echomesh_trio.cli import _parser
from echomesh_trio.cli import main as cli_main
from echomesh_trio.client.control import ControlConnection
from echomesh_trio.protocol import events as ev
from echomesh_trio.server.app import EchoMeshServer
from echomesh_trio.server.config import (
    ConfigError,
    Settings,
    build_parser,
    env_name,
    load_settings,
)
from echomesh_trio.server.store import _SCHEMA_V1, Database, StoreError
from tests.server.helpers import join, login, make_settings, start_server

SERVE = (sys.executable, "-m", "echomesh_trio.cli", "--port", "0", "--admin-port", "0")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ECHOMESH_")}


# ---------------------------------------------------------------- settings
def test_toml_top_level_and_server_table_are_merged(tmp_path: Path) -> None:
    toml = tmp_path / "echomesh.toml"
    toml.write_text('port = 9000\n[server]\nregistration = "closed"\n')
    s = load_settings(None, environ={"ECHOMESH_CONFIG": str(toml)})
    assert s.port == 9000 and s.registration == "closed"  # neither is dropped
    toml.write_text("port = 9000\n[server]\nport = 9001\n")
    with pytest.raises(ConfigError, match="both at the top level and in"):
        load_settings(None, environ={"ECHOMESH_CONFIG": str(toml)})
    toml.write_text("[srever]\nport = 9000\n")
    with pytest.raises(ConfigError, match=r"unknown table \[srever\]"):
        load_settings(None, environ={"ECHOMESH_CONFIG": str(toml)})
    toml.write_text("prot = 9000\n")
    with pytest.raises(ConfigError, match="did you mean 'port'"):
        load_settings(None, environ={"ECHOMESH_CONFIG": str(toml)})
    toml.write_text("port = 9000.5\n")
    with pytest.raises(ConfigError, match="whole number"):
        load_settings(None, environ={"ECHOMESH_CONFIG": str(toml)})


def test_environment_and_non_finite_numbers() -> None:
    with pytest.raises(ConfigError, match="ECHOMESH_CHAT_RTAE"):
        load_settings(None, environ={"ECHOMESH_CHAT_RTAE": "5"})
    for value in ("nan", "inf", "-inf", "NaN"):
        with pytest.raises(ConfigError, match="finite"):
            load_settings(None, environ={"ECHOMESH_CHAT_RATE": value})
    with pytest.raises(ConfigError, match="finite"):
        Settings(idle_timeout=float("nan"))
    s = load_settings(None, environ={"ECHOMESH_ADMIN_TOKEN": "tok", "ECHOMESH_ADMIN": "off"})
    assert s.admin_token == "tok" and s.admin is False
    assert load_settings(None, environ={"ECHOMESH_ADMIN_TOKEN": ""}).admin_token is None


def test_flags_for_admin(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    build_parser(parser)
    args = parser.parse_args(["--no-admin", "--admin-port", "9999", "--admin-host", "::1"])
    s = load_settings(args, environ={})
    assert (s.admin, s.admin_port, s.admin_host) == (False, 9999, "::1")
    assert load_settings(parser.parse_args([]), environ={}).admin is True


def test_settings_log_line_masks_secrets() -> None:
    line = Settings(admin_token="hunter2-token", admin_host="0.0.0.0").describe()
    assert "hunter2" not in line and "admin_token=***" in line
    assert "admin_host=0.0.0.0" in line and "port=8888" in line


def test_help_shows_every_setting_with_default_and_environment_variable() -> None:
    text = " ".join(_parser().format_help().split())
    for name, default in Settings.__dataclass_fields__.items():
        flag = ("--no-" if default.default is True else "--") + name.replace("_", "-")
        assert flag in text, flag
        assert env_name(name) in text, name
    assert "(default 8888; ECHOMESH_PORT)" in text
    for command in ("adduser", "passwd", "deluser", "list-users", "backup"):
        assert command in text


def test_readme_table_lists_every_setting() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    for name in Settings.__dataclass_fields__:
        assert f"`{name}`" in table, name


# ---------------------------------------------------------------- data directory
async def test_data_dir_lock_and_private_files(nursery: trio.Nursery, tmp_path: Path) -> None:
    data = tmp_path / "data"
    _, info = await start_server(nursery, make_settings(data))
    alice = await login(info, "alice")
    await join(alice, "r", create=True)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("echomesh.sqlite3", "echomesh.sqlite3-wal", "echomesh.lock"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    second = EchoMeshServer(make_settings(data))
    with pytest.raises(StoreError, match=rf"in use by echomesh-serve pid {os.getpid()}"):
        await second.serve()


def _world_readable_database(data_dir: Path) -> None:
    """A data directory as an earlier EchoMesh left it: the database readable by all."""
    data_dir.chmod(0o700)
    Database(data_dir / "echomesh.sqlite3").close()
    (data_dir / "echomesh.sqlite3").chmod(0o644)


async def test_an_old_world_readable_database_is_made_private(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _world_readable_database(tmp_path)
    server, _ = await start_server(nursery, make_settings(tmp_path))
    assert stat.S_IMODE((tmp_path / "echomesh.sqlite3").stat().st_mode) == 0o600
    server.request_shutdown()


async def test_backup_of_a_live_database_holds_the_messages(
    nursery: trio.Nursery, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    _, info = await start_server(nursery, make_settings(data))
    alice = await login(info, "alice")
    await join(alice, "r", create=True)
    for text in ("one", "two", "three"):
        await alice.send(ev.SendChat("r", text))
        await alice.receive_matching(ev.ChatMessage)
    target = tmp_path / "backup.sqlite3"
    argv = ["backup", str(target), "--data-dir", str(data)]
    assert await trio.to_thread.run_sync(cli_main, argv) == 0  # while the server runs
    assert "3 chat" in capsys.readouterr().out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one file
    assert [r[0] for r in copy.execute("SELECT content FROM chat ORDER BY id")] == [
        "one",
        "two",
        "three",
    ]
    copy.close()
    # The copy is a data directory's database as it is.
    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    target.rename(restored / "echomesh.sqlite3")
    _, info2 = await start_server(nursery, make_settings(restored))
    bob = await login(info2, "bob")
    await join(bob, "r")
    history = await bob.receive_matching(ev.HistoryBatch)
    assert [m.content for m in history.messages] == ["one", "two", "three"]
    # An existing file is never overwritten.
    (tmp_path / "taken").write_text("mine")
    assert cli_main(["--data-dir", str(data), "backup", str(tmp_path / "taken")]) == 1
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "mine"


def test_an_older_schema_is_migrated_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "echomesh.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(f"BEGIN; {_SCHEMA_V1} PRAGMA user_version=1; COMMIT;")
    old.execute("INSERT INTO users (username, password_hash, created_ms) VALUES ('old', 'x', 1)")
    old.close()
    with caplog.at_level(logging.INFO, logger="echomesh.server"):
        db = Database(path)
    assert db.get_user("OLD") is not None  # canonical names work after the migration
    db.close()
    assert any(
        re.search(r"migrated database .* from schema 1 to 3", r.getMessage())
        for r in caplog.records
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="echomesh.server"):
        Database(path).close()
    assert not any("migrated" in r.getMessage() for r in caplog.records)  # once only


# ---------------------------------------------------------------- signals
def test_sighup_shuts_down_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*SERVE, "--plaintext", "--password-cost", "10", "--data-dir", str(tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(),
    )
    try:
        assert proc.stderr is not None
        port = 0
        for line in proc.stderr:
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port, f"the server did not start ({proc.wait()})"

        async def client() -> ev.Goodbye:
            conn = await ControlConnection.connect("127.0.0.1", port)
            assert (await conn.login("alice", "pw")).ok
            proc.send_signal(signal.SIGHUP)
            with trio.fail_after(10):
                return await conn.receive_matching(ev.Goodbye)

        goodbye = trio.run(client)
        assert goodbye.reason == ev.GoodbyeReason.SHUTDOWN
        assert proc.wait(10) == 0
        log = proc.stderr.read()
        assert "received SIGHUP" in log and "database closed" in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- user administration
def test_user_administration_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path)
    cost = ["--password-cost", "10"]
    monkeypatch.setattr("sys.stdin", io.StringIO("pw1\n"))
    assert cli_main(["--data-dir", data, *cost, "adduser", "ann", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("pw2\n"))
    assert cli_main(["adduser", "bob", "--password-stdin", "--data-dir", data, *cost]) == 0
    capsys.readouterr()
    assert cli_main(["list-users", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    assert re.search(r"1\s+ann", out) and re.search(r"2\s+bob", out)

    monkeypatch.setattr("sys.stdin", io.StringIO("new-password\n"))
    assert cli_main(["--data-dir", data, "passwd", "ann", "--password-stdin", *cost]) == 0
    db = Database(tmp_path / "echomesh.sqlite3")
    from echomesh_trio.server.passwords import verify_password

    ann = db.get_user("ann")
    assert ann is not None and verify_password("new-password", ann.password_hash)
    db.close()

    assert cli_main(["deluser", "bob", "--data-dir", data]) == 0
    assert cli_main(["deluser", "bob", "--data-dir", data]) == 1
    assert "no user named exactly 'bob'" in capsys.readouterr().err
    assert cli_main(["--data-dir", data, "list-users"]) == 0
    assert "bob" not in capsys.readouterr().out
    assert cli_main(["list-users", "--data-dir", str(tmp_path / "empty")]) == 1
    assert "no database" in capsys.readouterr().err


def test_adduser_without_a_terminal_says_so(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "echomesh_trio.cli", "adduser", "ann", "--data-dir", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "echomesh-serve: no terminal to ask for the password on: pipe it in with --password-stdin"
    ]


async def test_refused_login_under_closed_registration_is_logged_like_a_wrong_password(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, registration="closed"))
    with caplog.at_level(logging.INFO, logger="echomesh.server"):
        conn = await ControlConnection.connect("127.0.0.1", info.port)
        result = await conn.login("stranger", "pw")
    assert result.status_code == ev.LoginStatus.WRONG_PASSWORD
    assert any("failed login for 'stranger'" in r.getMessage() for r in caplog.records)
