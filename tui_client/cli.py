"""``echomesh-tui``: the terminal client.

    echomesh-tui                       the connect screen (remembered servers)
    echomesh-tui --server HOST:PORT --user NAME --password PW --room ROOM
                 [--plaintext] [--fingerprint SHA256] [--input SPEC] [--output SPEC]
                 [--ptt-socket PATH]
                                       connect, log in, join (or create) ROOM, no prompt

The password may come from $ECHOMESH_PASSWORD instead of the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from echomesh_trio import __version__
from echomesh_trio.audio.sender import GateMode
from echomesh_trio.client.bot import _fingerprint, parse_server
from tui_client.keyboard import DEFAULT_TALK_KEY, release_aware_driver

PROG: Final = "echomesh-tui"
MODES: Final = {
    "ptt": GateMode.PUSH_TO_TALK,
    "vad": GateMode.VOICE_ACTIVATION,
    "continuous": GateMode.CONTINUOUS,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="EchoMesh in the terminal: voice and chat.")
    p.add_argument("--server", type=parse_server, metavar="HOST:PORT")
    p.add_argument("--user")
    p.add_argument(
        "--password", default=os.environ.get("ECHOMESH_PASSWORD"),
        help="the password (default: $ECHOMESH_PASSWORD)",
    )  # fmt: skip
    p.add_argument("--room", help="joined, and created when it does not exist")
    p.add_argument("--plaintext", action="store_true", help="no TLS (only when asked)")
    p.add_argument(
        "--fingerprint",
        type=_fingerprint,
        metavar="SHA256",
        help="accept exactly this server certificate (and pin it)",
    )
    p.add_argument(
        "--known-servers",
        type=Path,
        metavar="PATH",
        help="the pin file (default: known_servers.toml in the config directory)",
    )
    p.add_argument(
        "--servers-file",
        type=Path,
        metavar="PATH",
        help="remembered servers (default: servers.toml in the config directory)",
    )
    p.add_argument(
        "--input",
        default="default",
        metavar="SPEC",
        help="microphone: default, a device number or name, FILE.wav, tone[:HZ], null",
    )
    p.add_argument(
        "--output",
        default="default",
        metavar="SPEC",
        help="speaker: default, a device number or name, FILE.wav, null",
    )
    p.add_argument(
        "--mode",
        choices=sorted(MODES),
        default="ptt",
        help="how you transmit at start (default: ptt, push-to-talk)",
    )
    p.add_argument(
        "--ptt-socket",
        type=Path,
        metavar="PATH",
        help="a Unix socket taking 'down' and 'up' lines (hold-to-talk hotkeys)",
    )
    p.add_argument(
        "--talk-key", default=DEFAULT_TALK_KEY, metavar="KEY",
        help="held to talk where the terminal reports key releases, else a toggle "
        f"(default {DEFAULT_TALK_KEY}; F2 always toggles)",
    )  # fmt: skip
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from tui_client.app import EchoMeshApp, Launch

    args = build_parser().parse_args(argv)
    host, port = args.server if args.server else ("", 0)
    launch = Launch(
        host=host,
        port=port,
        user=args.user or "",
        password=args.password,
        room=args.room,
        plaintext=args.plaintext,
        fingerprint=args.fingerprint,
        known_servers=args.known_servers,
        servers_file=args.servers_file,
        audio_input=args.input,
        audio_output=args.output,
        ptt_socket=args.ptt_socket,
        mode=MODES[args.mode],
        talk_key=args.talk_key,
    )
    if args.server and not launch.scripted:
        missing = [n for n, v in (("--user", args.user), ("--password", args.password),
                                  ("--room", args.room)) if not v]  # fmt: skip
        build_parser().error(f"--server needs {', '.join(missing)} too (or none of them)")
    try:
        driver = release_aware_driver(talk_key=args.talk_key)
    except ValueError as exc:
        build_parser().error(f"--talk-key: {exc}")
    app = EchoMeshApp(launch, driver_class=driver)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
