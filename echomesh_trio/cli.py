"""``echomesh-serve``: run the server, or manage users with ``echomesh-serve adduser NAME``."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import time
from collections.abc import Sequence

import trio

from echomesh_trio import __version__
from echomesh_trio.server.config import ConfigError, Settings, build_parser, load_settings
from echomesh_trio.server.names import username_problem
from echomesh_trio.server.passwords import hash_password
from echomesh_trio.server.store import Database, NameUnavailable, StoreError


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="echomesh-serve",
        description="EchoMesh server: TLS control channel, UDP voice relay, SQLite store. "
        "Settings come from flags, ECHOMESH_* variables or a TOML file (--config). "
        "Subcommand: 'echomesh-serve adduser NAME' registers a user.",
    )
    parser.add_argument("--version", action="version", version=f"echomesh {__version__}")
    build_parser(parser)
    return parser


def _adduser(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="echomesh-serve adduser", description="Register a user.")
    parser.add_argument("name")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    parser.add_argument("--data-dir", default=None, metavar="VALUE")
    parser.add_argument("--config", default=None, metavar="VALUE")
    args = parser.parse_args(argv)
    settings = load_settings(args)
    problem = username_problem(args.name)
    if problem:
        print(f"echomesh-serve: {problem}", file=sys.stderr)
        return 2
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if password != getpass.getpass("Again: "):
            print("echomesh-serve: passwords differ", file=sys.stderr)
            return 2
    if not password:
        print("echomesh-serve: the password is empty", file=sys.stderr)
        return 2
    db = Database(settings.data_dir / "echomesh.sqlite3")
    try:
        user = db.create_user(
            args.name, hash_password(password, settings.password_cost), int(time.time() * 1000)
        )
    except NameUnavailable as exc:
        print(f"echomesh-serve: cannot add {args.name!r}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"added user {user.username} (id {user.user_id})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "adduser":
            return _adduser(argv[1:])
        args = _serve_parser().parse_args(argv)
        settings = load_settings(args)
    except (ConfigError, StoreError) as exc:
        print(f"echomesh-serve: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    try:
        trio.run(_run, settings)
    except StoreError as exc:
        print(f"echomesh-serve: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"echomesh-serve: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
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


if __name__ == "__main__":
    raise SystemExit(main())
