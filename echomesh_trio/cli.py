"""``echomesh-serve``: run the server, manage its users, back up its database.

Every failure to start is one line on stderr and exit code 1 (a usage error is argparse's
two lines and exit code 2); a traceback means a bug of ours. Errors raised inside the
server's nurseries arrive wrapped in exception groups: ``_one_line`` looks inside.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import trio

from echomesh_trio import __version__
from echomesh_trio.server import datadir
from echomesh_trio.server.config import ConfigError, Settings, build_parser, load_settings
from echomesh_trio.server.names import username_problem
from echomesh_trio.server.passwords import hash_password
from echomesh_trio.server.store import Database, NameUnavailable, StoreError, backup_database

PROG = "echomesh-serve"
COMMANDS = {
    "adduser": "register a user (the way in when registration is closed)",
    "passwd": "set a user's password",
    "deluser": "delete a user (chat history stays; takes effect at its next login)",
    "list-users": "list the registered users",
    "backup": "copy the database to a new file with SQLite's online backup",
}
# Settings that the subcommands use; accepted before or after the subcommand.
GLOBAL_SETTINGS = ("data_dir", "config", "password_cost", "log_level")


class _Failure(Exception):
    """A subcommand cannot do what was asked: one line, exit code 1."""


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="EchoMesh server: TLS control channel, UDP voice relay, SQLite store, and"
        " an HTTP side door for health and metrics. Every setting is a flag, an ECHOMESH_*"
        " environment variable and a key of the --config TOML file (flags win, then the"
        " environment, then the file). SIGINT, SIGTERM and SIGHUP shut it down in order.",
        epilog="Subcommands ("
        + PROG
        + " COMMAND --help for each): "
        + "; ".join(f"{name}: {text}" for name, text in COMMANDS.items()),
    )
    parser.add_argument("--version", action="version", version=f"echomesh {__version__}")
    build_parser(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text + ".")
        if name in ("adduser", "passwd", "deluser"):
            p.add_argument("name", help="user name")
        if name in ("adduser", "passwd"):
            p.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from standard input (one line) instead of asking",
            )
        if name == "backup":
            p.add_argument("path", type=Path, help="the new file to write (must not exist)")
        _add_global_flags(p)
    return parser


def _add_global_flags(parser: argparse.ArgumentParser) -> None:
    """The settings a subcommand uses, again after it; SUPPRESS keeps a value given
    before the subcommand when the flag is not repeated after it."""
    scratch = argparse.ArgumentParser(add_help=False)
    build_parser(scratch)
    for action in scratch._actions:
        if action.dest in GLOBAL_SETTINGS:
            parser.add_argument(
                *action.option_strings,
                dest=action.dest,
                default=argparse.SUPPRESS,
                metavar=action.metavar,
                help=action.help,
            )


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _one_line(exc: BaseException) -> str | None:
    """The operator's message for a failure to start, or None for a bug (re-raised)."""
    from echomesh_trio.server.app import StartupError

    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, StartupError | StoreError | ConfigError):
            return str(leaf)
    for leaf in leaves:
        if isinstance(leaf, OSError):
            return f"cannot start: {leaf}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args)
        if args.command is not None:
            return _subcommand(args, settings)
    except (ConfigError, StoreError, _Failure) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    _configure_logging(settings.log_level)
    try:
        trio.run(_run, settings)
    except KeyboardInterrupt:  # before the signal handlers are in place
        return 130
    except BaseException as exc:
        message = _one_line(exc)
        if message is None:
            raise
        logging.getLogger("echomesh.server").debug("start-up failed", exc_info=exc)
        print(f"{PROG}: {message}", file=sys.stderr)
        return 1
    return 0


async def _run(settings: Settings) -> None:
    from echomesh_trio.server.app import EchoMeshServer, run_until_signalled
    from echomesh_trio.server.gc_policy import maintain_gc
    from echomesh_trio.server.voice_control import RelayControl
    from echomesh_trio.voice.relay import VoiceRelay

    relay = VoiceRelay(cipher=settings.voice_cipher, max_packets_per_second=settings.voice_rate)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(maintain_gc)
        await run_until_signalled(EchoMeshServer(settings, voice=RelayControl(relay)))
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------- subcommands
def _subcommand(args: argparse.Namespace, settings: Settings) -> int:
    command = args.command
    if command == "backup":
        return _backup(settings, args.path)
    if command in ("adduser", "passwd"):
        password = _read_password(args.name, args.password_stdin)
        if command == "adduser":
            return _adduser(settings, args.name, password)
        return _passwd(settings, args.name, password)
    with _open_existing(settings) as db:
        if command == "list-users":
            users = db.list_users()
            for user_id, name, created_ms in users:
                created = datetime.fromtimestamp(created_ms / 1000, UTC)
                print(f"{user_id:>6}  {name:<32}  {created:%Y-%m-%d %H:%M} UTC")
            print(f"{len(users)} users", file=sys.stderr)
            return 0
        user = db.get_user(args.name)
        if user is None or user.username != args.name:
            raise _Failure(f"no user named exactly {args.name!r} (see list-users)")
        db.delete_user(user.user_id)
        print(f"deleted user {user.username} (id {user.user_id})")
        return 0


def _read_password(name: str, from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        if not sys.stdin.isatty():
            raise _Failure(
                "no terminal to ask for the password on: pipe it in with --password-stdin"
            )
        password = getpass.getpass(f"Password for {name}: ")
        if password != getpass.getpass("Again: "):
            raise _Failure("the passwords differ")
    if not password:
        raise _Failure("the password is empty")
    return password


class _open_existing:
    """The database of ``settings.data_dir``, which must exist already."""

    def __init__(self, settings: Settings) -> None:
        path = settings.data_dir / datadir.DATABASE_NAME
        if not path.is_file():
            raise _Failure(f"no database at {path}: is --data-dir right?")
        self.db = Database(path)

    def __enter__(self) -> Database:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def _adduser(settings: Settings, name: str, password: str) -> int:
    problem = username_problem(name)
    if problem:
        raise _Failure(problem)
    db = Database(datadir.prepare(settings.data_dir))
    try:
        user = db.create_user(
            name, hash_password(password, settings.password_cost), int(time.time() * 1000)
        )
    except NameUnavailable as exc:
        raise _Failure(f"cannot add {name!r}: {exc}") from None
    finally:
        db.close()
    print(f"added user {user.username} (id {user.user_id})")
    return 0


def _passwd(settings: Settings, name: str, password: str) -> int:
    with _open_existing(settings) as db:
        user = db.get_user(name)
        if user is None or user.username != name:
            raise _Failure(f"no user named exactly {name!r} (see list-users)")
        db.set_password(user.user_id, hash_password(password, settings.password_cost))
    print(f"password of {user.username} changed (sessions already open stay open)")
    return 0


def _backup(settings: Settings, target: Path) -> int:
    source = settings.data_dir / datadir.DATABASE_NAME
    counts = backup_database(source, target)
    summary = ", ".join(f"{n} {table}" for table, n in counts.items())
    print(f"backed up {source} to {target} ({summary})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
