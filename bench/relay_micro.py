"""In-process cost of the relay's hot path per incoming packet, variants back to back.

`python -m bench.relay_micro [--rounds R]`: a VoiceRelay attached to a real UDP socket, 100
users in rooms of 5, each with its own UDP socket. Each chunk: the users send 64 sealed
voice datagrams to the relay (not timed); then, timed with this thread's CPU clock (user +
kernel, including the loopback receive path that `sendto` runs), the relay's own drain
(`recvfrom`, `receive_datagram`, the fan-out to 4 with `sendto`); then the users' sockets are
emptied (not timed). No Trio, so no wake-up cost. Variants (ciphers) alternate chunk by
chunk, so a noisy neighbour hits all alike; the figure per variant is
the median over chunks. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import time
from typing import Any

from echomesh_trio.voice.client import VoiceSession
from echomesh_trio.voice.packet import MAX_DATAGRAM_SIZE
from echomesh_trio.voice.relay import VoiceRelay

USERS = 100
ROOM = 5
CHUNK = 64


class Rig:
    def __init__(self, cipher: str) -> None:
        self.relay = VoiceRelay(cipher=cipher, max_packets_per_second=10**9)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()
        self.relay.attach(self.sock.sendto, self.addr[1])
        self.users: list[tuple[socket.socket, VoiceSession]] = []
        for i in range(USERS):
            setup = self.relay.register()
            self.relay.set_active_room(setup.source_id, f"r{i // ROOM}")
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            session = VoiceSession.from_setup(setup)
            s.sendto(session.hello(time.monotonic_ns()), self.addr)
            self.users.append((s, session))
        self.drain()
        self.empty_users()
        self.seq = 0
        self.next_user = 0

    def send_chunk(self) -> None:
        self.seq += 1
        for _ in range(CHUNK):
            s, session = self.users[self.next_user]
            self.next_user = (self.next_user + 1) % USERS
            s.sendto(session.voice(b"\x55" * 60, sequence=self.seq, timestamp=0), self.addr)

    def drain(self) -> int:
        recvfrom = self.sock.recvfrom
        receive = self.relay.receive_datagram
        clock = time.monotonic_ns
        n = 0
        while True:
            try:
                data, addr = recvfrom(MAX_DATAGRAM_SIZE + 1)
            except BlockingIOError:
                break
            receive(data, addr, clock())
            n += 1
        return n

    def empty_users(self) -> None:
        for s, _ in self.users:
            while True:
                try:
                    s.recv(2048)
                except BlockingIOError:
                    break


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--ciphers", default="chacha20-poly1305,aes-256-gcm")
    args = p.parse_args(argv)
    rigs = {cipher: Rig(cipher) for cipher in args.ciphers.split(",")}
    samples: dict[Any, list[float]] = {k: [] for k in rigs}
    for _ in range(args.rounds):
        for key, rig in rigs.items():
            rig.send_chunk()
            time.sleep(0.0005)  # let loopback deliver
            t0 = time.thread_time_ns()
            n = rig.drain()
            dt = time.thread_time_ns() - t0
            if n == CHUNK:
                samples[key].append(dt / n / 1000)
            rig.empty_users()
    result = {cipher: round(statistics.median(v), 2) for cipher, v in samples.items() if v}
    for key, rig in rigs.items():
        s = rig.relay.statistics()
        assert s.packets_out == (s.packets_in - USERS) * (ROOM - 1) + USERS, (
            key,
            s,
        )  # + hello-acks
        assert not s.dropped, (key, s)
    print(json.dumps({"us_per_packet_median": result, "chunk": CHUNK}), flush=True)


if __name__ == "__main__":
    main()
