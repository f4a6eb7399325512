"""Slash commands, pure: parsing what was typed, and completing room and user names.

``parse`` turns a line into a ``Command`` (or a chat ``Say``) or raises ``CommandError``
with a message for the person; the app turns commands into client calls. The command
palette offers the same table (``COMMANDS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final


class CommandError(ValueError):
    """The line is not a valid command; the message says what would be."""


@dataclass(frozen=True, slots=True)
class Say:
    """Chat text for the current conversation (``action`` for /me)."""

    text: str
    action: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Spec:
    usage: str
    help: str
    min_args: int = 0
    max_args: int = 0
    rest: bool = False
    """The last argument takes the rest of the line (a message)."""


COMMANDS: Final[dict[str, Spec]] = {
    "join": Spec("/join ROOM", "join a room (created when it does not exist)", 1, 1),
    "leave": Spec("/leave [ROOM]", "leave a room (the current one by default)", 0, 1),
    "create": Spec("/create ROOM", "create a room and join it", 1, 1),
    "msg": Spec("/msg USER TEXT", "send a direct message", 2, 2, rest=True),
    "me": Spec("/me ACTION", "say what you do (shown as an action)", 1, 1, rest=True),
    "voice": Spec("/voice [ROOM]", "make a room your voice room (the current one)", 0, 1),
    "mute": Spec(
        "/mute [USER [ROOM|-]]",
        "mute or unmute yourself; with USER: server-mute them here (- everywhere)",
        0,
        2,
    ),
    "unmute": Spec("/unmute USER [ROOM|-]", "lift a server mute (owners, admins)", 1, 2),
    "deafen": Spec("/deafen", "deafen (hear nothing, and mute) or undeafen"),
    "ptt": Spec("/ptt", "push-to-talk: switch your transmission on or off"),
    "vad": Spec("/vad [DBFS|off]", "voice activation (threshold in dBFS, e.g. -40)", 0, 1),
    "continuous": Spec("/continuous", "transmit all the time"),
    "volume": Spec("/volume USER GAIN", "a speaker's volume (1 normal, 0 silent, up to 4)", 2, 2),
    "devices": Spec("/devices", "list and choose audio devices"),
    "noise": Spec("/noise on|off", "noise suppression of the microphone (RNNoise)", 1, 1),
    "call": Spec("/call USER", "call someone, one to one", 1, 1),
    "answer": Spec("/answer", "take the incoming call"),
    "reject": Spec("/reject", "refuse the incoming call"),
    "hangup": Spec("/hangup", "end the call"),
    "kick": Spec(
        "/kick USER [ROOM|-]", "out of the room, this one by default (- the server)", 1, 2
    ),
    "ban": Spec(
        "/ban USER [MINUTES]", "refuse their logins (admins; no time: until unbanned)", 1, 2
    ),
    "unban": Spec("/unban USER", "lift a ban (admins)", 1, 1),
    "op": Spec("/op USER [ROOM]", "make USER an owner of the room (the current one)", 1, 2),
    "deop": Spec("/deop USER [ROOM]", "take ownership away", 1, 2),
    "rooms": Spec("/rooms", "list the server's rooms with their member counts"),
    "help": Spec("/help", "this list"),
    "quit": Spec("/quit", "leave EchoMesh"),
}

MAX_GAIN: Final = 4.0


def parse(line: str) -> Say | Command:
    text = line.strip()
    if not text.startswith("/") or text.startswith("//"):
        return Say(text[1:] if text.startswith("//") else text)
    head, _, tail = text[1:].partition(" ")
    name = head.lower()
    spec = COMMANDS.get(name)
    if spec is None:
        raise CommandError(f"unknown command /{head}; /help lists them")
    parts = tail.split(None, spec.max_args - 1) if spec.rest and spec.max_args else tail.split()
    if not spec.min_args <= len(parts) <= spec.max_args:
        raise CommandError(f"usage: {spec.usage}")
    if name == "me":
        return Say(parts[0], action=True)
    if name == "volume":
        volume_gain(parts[1])
    if name == "vad" and parts:
        vad_threshold(parts[0])
    if name == "noise" and parts[0].lower() not in ("on", "off"):
        raise CommandError(f"usage: {spec.usage}")
    if name == "ban" and len(parts) == 2:
        ban_minutes(parts[1])
    return Command(name, tuple(parts))


def volume_gain(text: str) -> float:
    try:
        gain = float(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a gain (1 normal, 0 silent)") from None
    if not (math.isfinite(gain) and 0 <= gain <= MAX_GAIN):
        raise CommandError(f"the gain must be between 0 and {MAX_GAIN:g}")
    return gain


def ban_minutes(text: str) -> float:
    try:
        minutes = float(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a number of minutes") from None
    if not (math.isfinite(minutes) and minutes > 0):
        raise CommandError("the ban's minutes must be a positive number")
    return minutes


def vad_threshold(text: str) -> float | None:
    """dBFS, or None for "off" (voice activation with its default threshold)."""
    if text.lower() in ("off", "default"):
        return None
    try:
        dbfs = float(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a level in dBFS (e.g. -40)") from None
    if not (math.isfinite(dbfs) and -96 <= dbfs <= 0):
        raise CommandError("the threshold must be between -96 and 0 dBFS")
    return dbfs


ROOM_ARGS: Final = frozenset({"join", "leave", "create", "voice"})
USER_ARGS: Final = frozenset(
    {"msg", "volume", "call", "kick", "mute", "unmute", "ban", "unban", "op", "deop"}
)


def complete(line: str, rooms: list[str], users: list[str]) -> list[str]:
    """Completions of the line's last word: command names after "/", then room names for
    room commands, user names for user commands and, in chat text, "@" user names. Each
    completion is the whole new line."""
    if line.startswith("/") and " " not in line:
        word = line[1:].lower()
        return [f"/{name} " for name in COMMANDS if name.startswith(word)]
    head, _, rest = line.partition(" ")
    before, _, word = line.rpartition(" ")
    candidates: list[str]
    name = head[1:].lower() if head.startswith("/") else ""
    first_arg = name and " " not in rest
    if first_arg and name in ROOM_ARGS:
        candidates = rooms
    elif first_arg and name in USER_ARGS:
        candidates = users
    elif word.startswith("@"):
        return [f"{before} @{u} ".lstrip() for u in users if u.startswith(word[1:])]
    else:
        return []
    return [f"{before} {c} " for c in candidates if c.lower().startswith(word.lower())]


def help_lines() -> list[str]:
    width = max(len(s.usage) for s in COMMANDS.values())
    return [f"{s.usage.ljust(width)}  {s.help}" for s in COMMANDS.values()]
