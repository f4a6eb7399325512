"""The relay-only server for `python -m bench.relay --standalone`.

`standalone`: only the relay (`VoiceRelay` on `server.voice_udp.serve_udp`), with users
0..N-1 registered in-process, user i in room "room-{i // 5}", their keys written to a JSON
file. It isolates the relay from the control plane and can lift the per-user rate limit
(saturation). Serves until SIGTERM/SIGINT, then prints its statistics as one JSON line.

The default benchmark runs the real `echomesh-serve` instead (its `--voice-cipher` and
`--voice-rate` settings configure the relay).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import trio

from echomesh_trio.server.voice_udp import serve_udp
from echomesh_trio.voice.relay import VoiceRelay
from echomesh_trio.voice.seal import DEFAULT_CIPHER

ROOM_SIZE = 5


async def serve(args: argparse.Namespace) -> None:
    relay = VoiceRelay(max_packets_per_second=args.rate, cipher=args.cipher)
    users = []
    for i in range(args.users):
        setup = relay.register()
        room = f"room-{i // ROOM_SIZE}"
        relay.set_active_room(setup.source_id, room)
        users.append(
            {
                "source_id": setup.source_id,
                "client_key": setup.client_key.hex(),
                "server_key": setup.server_key.hex(),
                "cipher": setup.cipher,
                "room": room,
            }
        )
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_udp, relay, "127.0.0.1", 0)
            tmp = Path(args.credentials).with_suffix(".tmp")
            tmp.write_text(json.dumps({"port": port, "pid": os.getpid(), "users": users}))
            tmp.replace(args.credentials)  # atomic: the reader never sees half a file
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
    s = relay.statistics()
    print(
        json.dumps(
            {
                "packets_in": s.packets_in,
                "packets_out": s.packets_out,
                "datagrams_received": s.datagrams_received,
                "dropped": dict(s.dropped),
                "socket_drops": s.socket_drops,
            }
        ),
        flush=True,
    )


def standalone(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="bench.relay_server standalone")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--credentials", required=True, help="where to write the users' keys")
    p.add_argument("--rate", type=int, default=100, help="max packets/s per user")
    p.add_argument("--cipher", default=DEFAULT_CIPHER)
    p.add_argument("--profile", help="write a pyinstrument text profile here")
    args = p.parse_args(argv)
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        try:
            trio.run(serve, args)
        finally:
            profiler.stop()
            Path(args.profile).write_text(profiler.output_text(unicode=True, show_all=False))
    else:
        trio.run(serve, args)
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "standalone":
        raise SystemExit("usage: python -m bench.relay_server standalone ...")
    standalone(argv[1:])


if __name__ == "__main__":
    main()
