"""Server settings: embedded defaults, then a TOML file, then ECHOMESH_* variables, then flags.

Every setting has one name used everywhere: ``data_dir`` is ``data_dir = "..."`` (or
``data-dir``) in TOML, ``ECHOMESH_DATA_DIR`` in the environment and ``--data-dir`` on the
command line.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from echomesh_trio.voice.seal import CIPHERS, DEFAULT_CIPHER


class ConfigError(Exception):
    """The operator's configuration is invalid; the message says which setting and why."""


SECRETS = frozenset({"admin_token"})
"""Settings whose values are never logged (start-up shows them as ``***``)."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8888  # the original EchoMesh port
    udp_port: int = 0  # 0: the same number as the TCP port
    data_dir: Path = Path("var")
    config: Path | None = None
    plaintext: bool = False
    cert: Path | None = None
    key: Path | None = None
    registration: str = "open"  # open | closed
    log_level: str = "info"
    admin: bool = True  # the HTTP side door: /health, /metrics, /api/*
    admin_host: str = "127.0.0.1"
    admin_port: int = 8889
    admin_token: str | None = None  # bearer token; required beyond loopback
    max_connections: int = 10_000
    max_connections_per_address: int = 10_000
    idle_timeout: float = 30.0  # seconds without any frame before a connection is closed
    frame_timeout: float = 10.0  # seconds a started frame has to arrive whole
    outgoing_queue: int = 1024  # frames queued for one slow client before it is dropped
    history_on_join: int = 50
    max_chat_chars: int = 5_000
    chat_rate: float = 10.0  # messages per second per user ...
    chat_burst: int = 20  # ... with bursts up to this many
    room_action_rate: float = 1.0  # joins and leaves per second per user ...
    room_action_burst: int = 20  # ... with bursts up to this many
    rooms_per_user_per_hour: float = 10.0  # room creations per user (also the burst)
    max_rooms: int = 1_000  # persistent rooms on the server
    typing_interval: float = 1.0  # seconds between forwarded typing notices (user, room)
    password_cost: int = 14  # scrypt log2(n)
    voice_cipher: str = DEFAULT_CIPHER  # AEAD for voice datagrams (see docs/PROTOCOL.md)
    voice_rate: int = 100  # voice packets per second per user before drops (50 is normal)
    shutdown_grace: float = 1.0  # seconds to flush goodbyes on shutdown
    # Moderation and calls (docs/PROTOCOL.md, "Calls" and "Moderation").
    admins: tuple[str, ...] = ()  # usernames with server-wide moderation rights
    call_ring_timeout: float = 30.0  # seconds a call rings before it ends unanswered
    resume_grace: float = 10.0  # seconds a lost connection's session waits to be resumed

    def __post_init__(self) -> None:
        if self.registration not in ("open", "closed"):
            raise ConfigError(f"registration must be 'open' or 'closed', not {self.registration!r}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f"log_level must be debug, info, warning or error: {self.log_level!r}"
            )
        for name in ("port", "udp_port", "admin_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"{name} must be between 0 and 65535, not {value}")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("cert and key must be given together")
        if self.plaintext and self.cert is not None:
            raise ConfigError(
                "plaintext serves no TLS, so cert and key would be ignored: drop one or the other"
            )
        if self.voice_cipher not in CIPHERS:
            raise ConfigError(f"voice_cipher must be one of {', '.join(CIPHERS)}")
        if not 10 <= self.password_cost <= 20:
            raise ConfigError("password_cost must be between 10 and 20")
        if self.admin and not self.admin_token and not is_loopback(self.admin_host):
            raise ConfigError(
                f"admin_host {self.admin_host} is reachable beyond this machine: set an admin"
                " token (ECHOMESH_ADMIN_TOKEN), use a loopback admin_host, or --no-admin"
            )
        positive = (
            "max_connections",
            "max_connections_per_address",
            "outgoing_queue",
            "voice_rate",
            "idle_timeout",
            "frame_timeout",
            "chat_rate",
            "chat_burst",
            "max_chat_chars",
            "room_action_rate",
            "room_action_burst",
            "rooms_per_user_per_hour",
            "max_rooms",
            "call_ring_timeout",
        )
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, not {value}")
        for name in ("typing_interval", "resume_grace"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if self.shutdown_grace < 0:
            raise ConfigError("shutdown_grace must not be negative")
        if self.history_on_join < 0:
            raise ConfigError("history_on_join must not be negative")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")

    def describe(self) -> str:
        """The settings in effect, one ``name=value`` each, secrets masked (for the log)."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRETS and value:
                value = "***"
            elif isinstance(value, tuple):
                value = ",".join(value)
            parts.append(f"{f.name}={value}")
        return " ".join(parts)


def is_loopback(host: str) -> bool:
    """Whether ``host`` can only be reached from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


_FIELDS = {f.name: f for f in fields(Settings)}
_TYPES: dict[str, type] = {"admin_token": str, "config": Path, "cert": Path, "key": Path}
_TYPE_NAMES = {int: "whole number", float: "number", str: "text", Path: "path"}


def _convert(name: str, raw: Any) -> Any:
    """Turn a TOML, environment or flag value into the field's type."""
    default: Any = _FIELDS[name].default
    if isinstance(default, tuple):  # names: a TOML array, or "a,b" in the environment/flags
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{name} must be a list of names, not {raw!r}")
        return tuple(i.strip() for i in items if i.strip())
    kind = _TYPES.get(name) or type(default)
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name} must be true or false, not {raw!r}")
    if kind is str and name in SECRETS:
        return str(raw) or None  # an empty token is no token
    if kind is int and isinstance(raw, float | bool):  # TOML 1.5 or true is not a port
        raise ConfigError(f"{name} must be a whole number, not {raw!r}")
    try:
        if kind is Path:
            return Path(str(raw)).expanduser()
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name} must be a {_TYPE_NAMES.get(kind, kind.__name__)}, not {raw!r}"
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {raw!r}")
    return value


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; name a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a UTF-8 TOML file") from None
    # Top-level keys and a [server] table are merged; a key in both is refused, never dropped.
    table = {k: v for k, v in data.items() if k != "server"}
    server = data.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"{path}: 'server' must be a table of settings")
    for key, value in server.items():
        if key in table or key.replace("-", "_") in {k.replace("-", "_") for k in table}:
            raise ConfigError(f"{path}: {key!r} is set both at the top level and in [server]")
        table[key] = value
    out = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if isinstance(value, dict):
            raise ConfigError(
                f"{path}: unknown table [{key}] (settings go at the top level or in [server])"
            )
        if name not in _FIELDS or name == "config":
            raise ConfigError(f"{path}: unknown setting {key!r}{_suggest(name)}")
        out[name] = _convert(name, value)
    return out


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, list(_FIELDS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


ENV_PREFIX = "ECHOMESH_"
CLIENT_VARIABLES = frozenset({"ECHOMESH_PASSWORD"})
"""Read by the clients (echomesh-bot, echomesh-tui), not settings: a shell that sets them
for a client must not stop a server started from it."""


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out = {}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or var in CLIENT_VARIABLES:
            continue
        name = var.removeprefix(ENV_PREFIX).lower()
        if name not in _FIELDS:
            close = difflib.get_close_matches(name, list(_FIELDS), n=1)
            hint = f" (did you mean {env_name(close[0])}?)" if close else ""
            raise ConfigError(f"unknown environment variable {var}{hint}")
        out[name] = _convert(name, value)
    return out


_HELP = {
    "host": "address the control channel listens on",
    "port": "TCP control port",
    "udp_port": "UDP voice port (0: the same number as port)",
    "data_dir": "directory of the database (echomesh.sqlite3) and the TLS certificate (tls/)",
    "config": "TOML file with settings (top level or a [server] table)",
    "plaintext": "serve plain TCP instead of TLS: logins and voice keys travel in clear",
    "cert": "your TLS certificate (PEM); default: a self-signed one in data_dir/tls",
    "key": "the private key (PEM) of cert",
    "registration": "open: the first login of a new name registers it; closed: only adduser",
    "log_level": "debug, info, warning or error",
    "admins": "comma-separated usernames who may kick, mute and ban server-wide",
    "call_ring_timeout": "seconds a 1:1 call rings before it ends unanswered",
    "admin": "the HTTP side door (/health, /metrics, /api/*); --no-admin turns it off",
    "admin_host": "address of the HTTP side door; beyond loopback it needs admin_token",
    "admin_port": "TCP port of the HTTP side door",
    "admin_token": "bearer token for /metrics and /api/* (prefer the environment variable)",
    "max_connections": "open connections before new ones are refused",
    "max_connections_per_address": "open connections from one address",
    "idle_timeout": "seconds without a frame before a connection is closed",
    "frame_timeout": "seconds a started frame may take to arrive whole",
    "outgoing_queue": "frames queued for one client before it is dropped as a slow reader",
    "history_on_join": "chat messages sent to a client joining a room",
    "max_chat_chars": "characters in one chat or direct message",
    "chat_rate": "chat and direct messages per second per user",
    "chat_burst": "burst of chat and direct messages per user",
    "room_action_rate": "room joins, leaves and deletes per second per user",
    "room_action_burst": "burst of room actions per user",
    "rooms_per_user_per_hour": "rooms one user may create in an hour",
    "max_rooms": "persistent rooms on the server",
    "typing_interval": "seconds between typing notices forwarded per user and room",
    "resume_grace": "seconds a session outlives its lost connection, so a reconnect resumes it",
    "password_cost": "scrypt cost, log2(n), 10-20",
    "voice_cipher": "AEAD sealing voice datagrams: " + ", ".join(CIPHERS),
    "voice_rate": "voice packets per second per user before the relay drops (a talker sends 50)",
    "shutdown_grace": "seconds clients get to receive the goodbye at shutdown",
}


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Flags for every setting; all default to None so that unset flags do not override.

    Each help line says what the setting means, its default and its environment variable.
    """
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        default = "none" if f.default in (None, ()) else f.default
        help_text = f"{_HELP[f.name]} (default {default}; {env_name(f.name)})"
        help_text = help_text.replace("%", "%%")
        if isinstance(f.default, bool) and f.default:
            parser.add_argument(
                "--no-" + f.name.replace("_", "-"),
                dest=f.name,
                action="store_const",
                const=False,
                default=None,
                help=help_text.replace("(default True;", "(default on;"),
            )
        elif isinstance(f.default, bool):
            parser.add_argument(
                flag,
                action="store_const",
                const=True,
                default=None,
                help=help_text.replace("(default False;", "(default off;"),
            )
        else:
            parser.add_argument(
                flag, default=None, metavar=_METAVARS.get(f.name, "VALUE"), help=help_text
            )


_METAVARS = {
    "host": "ADDRESS",
    "admin_host": "ADDRESS",
    "data_dir": "DIR",
    "config": "FILE",
    "cert": "PEM",
    "key": "PEM",
    "admin_token": "TOKEN",
    "port": "PORT",
    "udp_port": "PORT",
    "admin_port": "PORT",
}


def load_settings(
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Combine the sources in order of precedence: flags > environment > TOML > defaults."""
    environ = os.environ if environ is None else environ
    from_env = _from_env(environ)
    from_flags: dict[str, Any] = {}
    if args is not None:
        for name in _FIELDS:
            value = getattr(args, name, None)
            if value is not None:
                from_flags[name] = _convert(name, value)
    values: dict[str, Any] = {}
    config_path = from_flags.get("config") or from_env.get("config")
    if config_path is not None:
        values.update(_from_toml(Path(config_path)))
        values["config"] = Path(config_path)
    values.update(from_env)
    values.update(from_flags)
    values.update(overrides or {})
    return Settings(**values)
