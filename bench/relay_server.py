"""The relay side of `python -m bench.relay`: a VoiceRelay on UDP with N users registered.

Until the control server carries VoiceSetup (phase 2), the benchmark cannot log in; this
entry registers users 0..N-1 deterministically, puts user i in room "room-{i // 5}", and
writes their credentials to a JSON file. It serves until SIGTERM/SIGINT, then prints its
statistics as one JSON line. Phase 2 replaces it with `echomesh-serve` plus logins.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import trio

from echomesh_trio.voice import DEFAULT_CIPHER, VoiceRelay

ROOM_SIZE = 5


async def serve(args: argparse.Namespace) -> None:
    relay = VoiceRelay(max_packets_per_second=args.rate, cipher=args.cipher)
    users = []
    for i in range(args.users):
        creds = relay.register(i)
        room = f"room-{i // ROOM_SIZE}"
        relay.set_active_room(creds.source_id, room)
        users.append(
            {
                "source_id": creds.source_id,
                "client_key": creds.client_key.hex(),
                "server_key": creds.server_key.hex(),
                "cipher": creds.cipher,
                "room": room,
            }
        )
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(relay.serve_udp, "127.0.0.1", 0)
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--credentials", required=True, help="where to write the users' keys")
    p.add_argument("--rate", type=int, default=100, help="max packets/s per user")
    p.add_argument("--cipher", default=DEFAULT_CIPHER)
    p.add_argument("--profile", help="write a pyinstrument HTML profile here")
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


if __name__ == "__main__":
    main()
