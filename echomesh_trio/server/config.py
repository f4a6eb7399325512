"""Server settings: embedded defaults, then a TOML file, then ECHOMESH_* variables, then flags.

Every setting has one name used everywhere: ``data_dir`` is ``data_dir = "..."`` (or
``data-dir``) in TOML, ``ECHOMESH_DATA_DIR`` in the environment and ``--data-dir`` on the
command line.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from echomesh_trio.voice.seal import CIPHERS, DEFAULT_CIPHER


class ConfigError(Exception):
    """The operator's configuration is invalid; the message says which setting and why."""


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

    def __post_init__(self) -> None:
        if self.registration not in ("open", "closed"):
            raise ConfigError(f"registration must be 'open' or 'closed', not {self.registration!r}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f"log_level must be debug, info, warning or error: {self.log_level!r}"
            )
        for name in ("port", "udp_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"{name} must be between 0 and 65535, not {value}")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("cert and key must be given together")
        if self.voice_cipher not in CIPHERS:
            raise ConfigError(f"voice_cipher must be one of {', '.join(CIPHERS)}")
        if not 10 <= self.password_cost <= 20:
            raise ConfigError("password_cost must be between 10 and 20")
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
        if self.typing_interval < 0:
            raise ConfigError("typing_interval must not be negative")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")


_FIELDS = {f.name: f for f in fields(Settings)}


def _convert(name: str, raw: Any) -> Any:
    """Turn a TOML, environment or flag value into the field's type."""
    default: Any = _FIELDS[name].default
    kind = type(default) if default is not None else Path
    if isinstance(default, tuple):  # names: a TOML array, or "a,b" in the environment/flags
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{name} must be a list of names, not {raw!r}")
        return tuple(i.strip() for i in items if i.strip())
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name} must be true or false, not {raw!r}")
    try:
        if isinstance(default, Path) or kind is Path:
            return Path(str(raw)).expanduser()
        return kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a {kind.__name__}, not {raw!r}") from None


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    table = data.get("server", data)  # accept a [server] table or top-level keys
    out = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in _FIELDS or name == "config":
            raise ConfigError(f"{path}: unknown setting {key!r}")
        out[name] = _convert(name, value)
    return out


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out = {}
    for name in _FIELDS:
        value = environ.get("ECHOMESH_" + name.upper())
        if value is not None:
            out[name] = _convert(name, value)
    return out


_HELP = {
    "host": "address to listen on (default 127.0.0.1)",
    "port": "TCP control port (default 8888)",
    "udp_port": "UDP voice port (default: same as --port)",
    "data_dir": "where the database and TLS certificate live (default ./var)",
    "config": "TOML file with settings",
    "plaintext": "serve plain TCP instead of TLS (local development, old clients)",
    "registration": "open: first login registers the name; closed: only `adduser`",
    "log_level": "debug, info, warning or error",
    "admins": "comma-separated usernames who may kick, mute and ban server-wide",
}


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Flags for every setting; all default to None so that unset flags do not override."""
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        help_text = _HELP.get(f.name, f"(default {f.default})")
        if isinstance(f.default, bool):
            parser.add_argument(
                flag, action="store_const", const=True, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, default=None, metavar="VALUE", help=help_text)


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
