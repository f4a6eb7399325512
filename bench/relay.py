"""Voice relay benchmark: `python -m bench.relay --users N --seconds S [--saturate]`.

Starts the relay in a child process (bench.relay_server), then N simulated talking users in
rooms of 5 in two more processes (a paced sender and a receiver, see bench.relay_load), all
over 127.0.0.1. Server CPU comes from /proc/<pid>/stat. Latency is receive time minus send
time for a sample of packets, so it is an upper bound on what the relay adds (it includes
both kernel hops and the load generator's own scheduling delay). Everything is bounded in
time. The last output line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.relay_load import User, run_receiver, run_sender
from bench.relay_server import ROOM_SIZE
from echomesh_trio.voice.client import HelloAcknowledged, VoiceSession

MAX_SECONDS = 120.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK  # utime, stime


def _start_server(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen[str], dict]:
    creds_path = tmp / "credentials.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.relay_server",
        f"--users={args.users}",
        f"--credentials={creds_path}",
        f"--rate={10**9 if args.saturate else args.rate}",
        f"--cipher={args.cipher}",
    ]
    if args.profile:
        cmd.append(f"--profile={args.profile}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not creds_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("relay server did not start")
        time.sleep(0.05)
    return proc, json.loads(creds_path.read_text())


def _connect_users(info: dict[str, Any], server: tuple[str, int]) -> list[User]:
    users = []
    for u in info["users"]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        session = VoiceSession(
            u["source_id"],
            bytes.fromhex(u["client_key"]),
            bytes.fromhex(u["server_key"]),
            u["cipher"],
        )
        users.append(User(sock, session))
    # Hello binds each address; wait for every hello-ack (bounded).
    pending = {u.sock.fileno(): u for u in users}
    ep = select.epoll()
    for fd in pending:
        ep.register(fd, select.EPOLLIN)
    deadline = time.monotonic() + 20
    for i, u in enumerate(users):
        u.sock.sendto(u.session.hello(time.monotonic_ns()), server)
        if i % 50 == 49:
            time.sleep(0.002)  # stay under the relay's socket buffer
    while pending and time.monotonic() < deadline:
        for fd, _ in ep.poll(0.1):
            u = pending.pop(fd, None)
            if u is None:
                continue
            ev = u.session.receive_untrusted(u.sock.recv(2048), time.monotonic_ns())
            assert isinstance(ev, HelloAcknowledged)
    ep.close()
    if pending:
        raise SystemExit(f"{len(pending)} users got no hello-ack")
    return users


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.users % ROOM_SIZE:
        raise SystemExit(f"--users must be a multiple of {ROOM_SIZE}")
    seconds = min(args.seconds, MAX_SECONDS)
    with tempfile.TemporaryDirectory() as tmpdir:
        proc, info = _start_server(args, Path(tmpdir))
        try:
            server = ("127.0.0.1", info["port"])
            users = _connect_users(info, server)
            ctx = multiprocessing.get_context("fork")  # children inherit the sockets
            start_ns = time.monotonic_ns() + 300_000_000
            end_rx_ns = start_ns + int((seconds + 1.0) * 1e9)
            rx_parent, rx_child = ctx.Pipe(duplex=False)
            tx_parent, tx_child = ctx.Pipe(duplex=False)
            receiver = ctx.Process(
                target=run_receiver, args=(users, end_rx_ns, args.sample_every, rx_child)
            )
            sender = ctx.Process(
                target=run_sender,
                args=(users, server, start_ns, seconds, args.frame_bytes, args.saturate, tx_child),
            )
            receiver.start()
            sender.start()
            while time.monotonic_ns() < start_ns:
                time.sleep(0.001)
            user0, sys0 = _cpu_seconds(proc.pid)
            sent, send_errors, late_ms, sender_cpu = tx_parent.recv()
            sender.join(10)
            time.sleep(0.2)  # let the relay finish what is queued
            user1, sys1 = _cpu_seconds(proc.pid)
            wall = (time.monotonic_ns() - start_ns) / 1e9
            received, latencies, receiver_cpu = rx_parent.recv()
            receiver.join(10)
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
    server_stats = json.loads(out.strip().splitlines()[-1])
    n = args.users
    relayed_in = server_stats["packets_in"] - n  # minus the hellos
    forwarded = server_stats["packets_out"] - n  # minus the hello-acks (and a few pings)
    socket_drops = server_stats["socket_drops"] or 0
    dropped = sum(server_stats["dropped"].values()) + socket_drops
    cpu = (user1 - user0) + (sys1 - sys0)
    return {
        "users": n,
        "mode": "saturate" if args.saturate else "paced",
        "cipher": args.cipher,
        "seconds": seconds,
        "sent_pps": round(sent / seconds),
        "incoming_pps": round(relayed_in / seconds),
        "forwarded_pps": round(forwarded / seconds),
        "delivered_pps": round(received / seconds),
        "cpu_us_per_packet": round(cpu / max(relayed_in, 1) * 1e6, 1),
        "server_cpu_share": round(cpu / wall, 2),
        # What one full core would carry at this CPU cost (the box is shared, see docs).
        "ceiling_in_pps_per_core": round(relayed_in / max(cpu, 1e-9)),
        "ceiling_users_per_core": round(relayed_in / max(cpu, 1e-9) / 50),
        "server_kernel_fraction": round((sys1 - sys0) / max(cpu, 1e-9), 2),
        "p50_ms": round(statistics.median(latencies), 3) if latencies else None,
        "p99_ms": round(_percentile(latencies, 0.99), 3) if latencies else None,
        "max_ms": round(max(latencies), 3) if latencies else None,
        "latency_samples": len(latencies),
        "dropped": dropped,
        "dropped_by_reason": {**server_stats["dropped"], "socket_full": socket_drops},
        "lost": max(0, sent * (ROOM_SIZE - 1) - received),
        "not_read_by_relay": max(0, sent - relayed_in),
        "sender_late_ms_max": round(late_ms, 1),
        "send_errors": send_errors,
        "load_cpu_s": round(sender_cpu + receiver_cpu, 2),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--saturate", action="store_true", help="send as fast as possible")
    p.add_argument("--rate", type=int, default=100, help="relay's per-user packets/s limit")
    p.add_argument("--cipher", default="chacha20-poly1305")
    p.add_argument("--frame-bytes", type=int, default=60, help="Opus frame size (>= 8)")
    p.add_argument("--sample-every", type=int, default=8, help="latency sample: 1 in N")
    p.add_argument("--profile", help="pyinstrument text profile of the relay, to this file")
    result = run(p.parse_args(argv))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
