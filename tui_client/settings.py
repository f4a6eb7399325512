"""Remembered servers, in ``servers.toml`` under the user's config directory.

    [[server]]
    host = "chat.example.org"
    port = 8888
    user = "alice"
    plaintext = false
    # password = "..."   only when the person ticked "remember the password"

Read with ``tomllib``, written with ``tomlkit`` (comments a person adds survive), written
atomically and, since it may hold a password, readable by its owner only.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import platformdirs
import tomlkit

FILE_NAME: Final = "servers.toml"
MAX_REMEMBERED: Final = 20


@dataclass(frozen=True, slots=True)
class ServerEntry:
    host: str
    port: int
    user: str
    plaintext: bool = False
    password: str | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def default_path() -> Path:
    return platformdirs.user_config_path("echomesh") / FILE_NAME


def load(path: Path) -> list[ServerEntry]:
    """The remembered servers, most recent first; an unreadable file counts as empty."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return []
    entries = []
    for item in data.get("server", []):
        if not isinstance(item, dict):
            continue
        try:
            password = item.get("password")
            entries.append(
                ServerEntry(
                    str(item["host"]), int(item["port"]), str(item.get("user", "")),
                    bool(item.get("plaintext", False)),
                    str(password) if password is not None else None,
                )
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            continue
    return entries


def remember(path: Path, entry: ServerEntry) -> None:
    """Put ``entry`` first (replacing the same host, port and user)."""
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = tomlkit.document()
        doc.add(tomlkit.comment("EchoMesh: servers this client connected to (echomesh-tui)."))
    old = doc.get("server")
    servers = tomlkit.aot()
    table = tomlkit.table()
    table["host"], table["port"], table["user"] = entry.host, entry.port, entry.user
    table["plaintext"] = entry.plaintext
    if entry.password is not None:
        table["password"] = entry.password
    servers.append(table)
    for item in old if old is not None else []:
        same = (item.get("host"), item.get("port"), item.get("user")) == (
            entry.host, entry.port, entry.user,
        )  # fmt: skip
        if not same and len(servers) < MAX_REMEMBERED:
            servers.append(item)
    doc["server"] = servers
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".servers.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(tomlkit.dumps(doc))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
