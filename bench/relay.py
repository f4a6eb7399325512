"""Voice relay benchmark: `python -m bench.relay --users N --seconds S [--saturate]`.

Starts the real server (`echomesh-serve`, i.e. `python -m echomesh_trio.cli`) in a child
process, then this process logs N users in over the control channel (plain TCP, bounded
concurrency), puts them in rooms of 5 (the first of each five creates the room, the others
join), reads each VoiceSetup and does the UDP hello. Two forked processes then play the N
talking users (a paced sender and a receiver, see bench.relay_load) over 127.0.0.1, while
this one keeps the control connections alive with a Ping every 10 s. Server CPU is the whole
server process's utime+stime from /proc/<pid>/stat over the send window (control plane
idle + relay). Relay counters come from each user's VoiceStatsReport, taken before and
after the window; kernel drops on the relay socket from /proc/net/udp.

`--standalone` runs only the relay (bench.relay_server: `server.voice_udp.serve_udp`, users
registered in-process), to isolate the relay from the control plane and to lift the
per-user rate limit. Latency is receive time minus send time for a sample of packets: an
upper bound on what the relay adds (both kernel hops and the load generator's scheduling).
Everything is bounded in time. The last output line is one JSON object.
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
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from bench.common import free_port, percentile, proc_cpu_split_s, wait_listening
from bench.relay_load import User, run_receiver, run_sender
from bench.relay_server import ROOM_SIZE
from echomesh_trio.client.control import ControlConnection
from echomesh_trio.protocol import events as ev
from echomesh_trio.voice.client import HelloAcknowledged, VoiceSession
from echomesh_trio.voice.seal import DEFAULT_CIPHER

MAX_SECONDS = 120.0
SETUP_SECONDS = 180.0
LOGIN_CONCURRENCY = 32
PING_EVERY = 10.0  # the server closes a connection idle for 30 s
DEFAULT_RATE = 100  # the relay's default per-user packets/s limit


def _udp_drops(port: int) -> int:
    """Kernel drops (receive buffer full) of the UDP socket bound to 127.0.0.1:port."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == local:
                return int(fields[-1])
    return 0


def _user_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def _hello_all(users: list[User], server: tuple[str, int]) -> None:
    """Hello binds each address; wait for every hello-ack (bounded)."""
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
            got = pending.pop(fd, None)
            if got is None:
                continue
            event = got.session.receive_untrusted(got.sock.recv(2048), time.monotonic_ns())
            assert isinstance(event, HelloAcknowledged)
    ep.close()
    if pending:
        raise SystemExit(f"{len(pending)} users got no hello-ack")


# ---- the server ----


def _server_command(args: argparse.Namespace, port: int, data_dir: Path) -> list[str]:
    flags = [
        "--plaintext",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--data-dir={data_dir}",
        "--password-cost=10",
        "--log-level=warning",
        f"--max-connections={max(10_000, args.users + 100)}",
        f"--max-connections-per-address={max(10_000, args.users + 100)}",
        "--chat-rate=1000",
        "--chat-burst=1000",
        f"--voice-cipher={args.cipher}",
        f"--voice-rate={args.rate}",
        "--admin-port=0",  # the side door runs, as in production, on a free port
    ]
    return [sys.executable, "-m", "echomesh_trio.cli", *flags]


class Client:
    def __init__(self, index: int, conn: ControlConnection, setup: ev.VoiceSetupInfo) -> None:
        self.index = index
        self.conn = conn
        self.setup = setup


async def _login(port: int, i: int) -> Client:
    conn = await ControlConnection.connect("127.0.0.1", port)
    result = await conn.login(f"talker{i}", "benchmark")
    if not result.ok:
        raise SystemExit(f"login of talker{i} failed: {result}")
    return Client(i, conn, await conn.receive_matching(ev.VoiceSetupInfo))


async def _enter_room(c: Client) -> None:
    room = f"room-{c.index // ROOM_SIZE}"
    first = c.index % ROOM_SIZE == 0
    await c.conn.send(ev.CreateRoom(room) if first else ev.JoinRoom(room))
    snapshot = changed = False
    while not (snapshot and changed):  # both arrive; the order is the server's business
        notice = (await c.conn.receive()).event
        if isinstance(notice, ev.RoomSnapshot) and notice.room_id == room:
            snapshot = True
        elif isinstance(notice, ev.VoiceRoomChanged) and notice.room_id == room:
            changed = True
        elif isinstance(notice, ev.ErrorReply):
            raise SystemExit(f"talker{c.index}: {notice}")


async def _each(clients: list[Client], fn: Any) -> None:
    limiter = trio.CapacityLimiter(LOGIN_CONCURRENCY)

    async def one(c: Client) -> None:
        async with limiter:
            await fn(c)

    async with trio.open_nursery() as nursery:
        for c in clients:
            nursery.start_soon(one, c)


async def _stats(clients: list[Client]) -> tuple[int, int, Counter[str]]:
    """Sum of the users' VoiceStatsReport: (packets in, packets out, drops by reason)."""
    total_in = total_out = 0
    dropped: Counter[str] = Counter()

    async def one(c: Client) -> None:
        nonlocal total_in, total_out
        await c.conn.send(ev.RequestVoiceStats(), c.index + 1)
        report = await c.conn.receive_matching(ev.VoiceStatsReport)
        total_in += report.packets_in
        total_out += report.packets_out
        dropped.update(report.dropped)

    await _each(clients, one)
    return total_in, total_out, dropped


async def _keep_alive(clients: list[Client]) -> None:
    while True:
        await trio.sleep(PING_EVERY)
        for c in clients:
            await c.conn.send(ev.Ping(nonce=1, sent_ms=int(time.time() * 1000)))


async def _connect_all(port: int, n: int) -> list[Client]:
    clients: list[Client | None] = [None] * n
    limiter = trio.CapacityLimiter(LOGIN_CONCURRENCY)

    async def login(i: int) -> None:
        async with limiter:
            clients[i] = await _login(port, i)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(login, i)
    done = [c for c in clients if c is not None]
    creators = [c for c in done if c.index % ROOM_SIZE == 0]
    await _each(creators, _enter_room)
    await _each([c for c in done if c.index % ROOM_SIZE], _enter_room)
    return done


# ---- the run ----


def _load(
    args: argparse.Namespace, users: list[User], server: tuple[str, int], pid: int
) -> tuple[dict[str, Any], float]:
    """Fork the sender and receiver, return their results and server CPU over the window."""
    ctx = multiprocessing.get_context("fork")  # children inherit the sockets
    seconds = min(args.seconds, MAX_SECONDS)
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
    user0, sys0 = proc_cpu_split_s(pid)
    drops0 = _udp_drops(server[1])
    if not tx_parent.poll(seconds + 30):
        sender.kill()
        raise SystemExit("the sender did not finish")
    sent, send_errors, late_ms, sender_cpu = tx_parent.recv()
    sender.join(10)
    time.sleep(0.2)  # let the relay finish what is queued
    user1, sys1 = proc_cpu_split_s(pid)
    drops1 = _udp_drops(server[1])
    wall = (time.monotonic_ns() - start_ns) / 1e9
    if not rx_parent.poll(30):
        receiver.kill()
        raise SystemExit("the receiver did not finish")
    received, latencies, receiver_cpu = rx_parent.recv()
    receiver.join(10)
    return {
        "seconds": seconds,
        "sent": sent,
        "send_errors": send_errors,
        "late_ms": late_ms,
        "received": received,
        "latencies": latencies,
        "load_cpu_s": sender_cpu + receiver_cpu,
        "cpu_user": user1 - user0,
        "cpu_sys": sys1 - sys0,
        "socket_drops": drops1 - drops0,
    }, wall


def _run_real_server(args: argparse.Namespace) -> tuple[dict[str, Any], Counter[str], int, int]:
    port = free_port(udp_too=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(_server_command(args, port, Path(tmp)), text=True)
        try:
            wait_listening(proc, port)
            result: dict[str, Any] = {}

            async def main() -> None:
                with trio.fail_after(SETUP_SECONDS):
                    clients = await _connect_all(port, args.users)
                users = []
                for c in clients:
                    s = c.setup
                    session = VoiceSession.from_setup(s)
                    users.append(User(_user_socket(), session))
                server = ("127.0.0.1", clients[0].setup.udp_port)
                _hello_all(users, server)
                in0, out0, dropped0 = await _stats(clients)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_keep_alive, clients)
                    load, wall = await trio.to_thread.run_sync(_load, args, users, server, proc.pid)
                    nursery.cancel_scope.cancel()
                in1, out1, dropped1 = await _stats(clients)
                dropped1.subtract(dropped0)
                result.update(
                    load=load,
                    wall=wall,
                    cipher=clients[0].setup.cipher,
                    relayed_in=in1 - in0,
                    forwarded=out1 - out0,
                    dropped={k: v for k, v in dropped1.items() if v},
                )
                for c in clients:
                    await c.conn.aclose()

            trio.run(main)
        finally:
            proc.terminate()
            proc.wait(30)
    load = result["load"]
    load["wall"] = result["wall"]
    return load, Counter(result["dropped"]), result["relayed_in"], result["forwarded"]


def _run_standalone(args: argparse.Namespace) -> tuple[dict[str, Any], Counter[str], int, int]:
    with tempfile.TemporaryDirectory() as tmpdir:
        creds_path = Path(tmpdir) / "credentials.json"
        cmd = [sys.executable, "-m", "bench.relay_server", "standalone"]
        cmd += [f"--users={args.users}", f"--credentials={creds_path}"]
        cmd += [f"--rate={10**9 if args.saturate else args.rate}", f"--cipher={args.cipher}"]
        if args.profile:
            cmd.append(f"--profile={args.profile}")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not creds_path.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("relay server did not start")
                time.sleep(0.05)
            info = json.loads(creds_path.read_text())
            server = ("127.0.0.1", info["port"])
            users = []
            for u in info["users"]:
                keys = bytes.fromhex(u["client_key"]), bytes.fromhex(u["server_key"])
                users.append(User(_user_socket(), VoiceSession(u["source_id"], *keys, u["cipher"])))
            _hello_all(users, server)
            load, wall = _load(args, users, server, proc.pid)
            load["wall"] = wall
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
    stats = json.loads(out.strip().splitlines()[-1])
    n = args.users
    # minus the hellos and hello-acks (and the few pings)
    return load, Counter(stats["dropped"]), stats["packets_in"] - n, stats["packets_out"] - n


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.users % ROOM_SIZE:
        raise SystemExit(f"--users must be a multiple of {ROOM_SIZE}")
    if args.standalone:
        load, dropped, relayed_in, forwarded = _run_standalone(args)
    else:
        load, dropped, relayed_in, forwarded = _run_real_server(args)
    seconds, sent, received, latencies = (
        load[k] for k in ("seconds", "sent", "received", "latencies")
    )
    cpu = load["cpu_user"] + load["cpu_sys"]
    socket_drops = load["socket_drops"]
    return {
        "users": args.users,
        "server": "standalone-relay" if args.standalone else "echomesh-serve",
        "mode": "saturate" if args.saturate else "paced",
        "cipher": args.cipher,
        "seconds": seconds,
        "sent_pps": round(sent / seconds),
        "incoming_pps": round(relayed_in / seconds),
        "forwarded_pps": round(forwarded / seconds),
        "delivered_pps": round(received / seconds),
        "cpu_us_per_packet": round(cpu / max(relayed_in, 1) * 1e6, 1),
        "server_cpu_share": round(cpu / load["wall"], 2),
        # What one full core would carry at this CPU cost (the box is shared, see docs).
        "ceiling_in_pps_per_core": round(relayed_in / max(cpu, 1e-9)),
        "ceiling_users_per_core": round(relayed_in / max(cpu, 1e-9) / 50),
        "server_kernel_fraction": round(load["cpu_sys"] / max(cpu, 1e-9), 2),
        "p50_ms": round(statistics.median(latencies), 3) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 3) if latencies else None,
        "max_ms": round(max(latencies), 3) if latencies else None,
        "latency_samples": len(latencies),
        "dropped": sum(dropped.values()) + socket_drops,
        "dropped_by_reason": {**dropped, "socket_full": socket_drops},
        "lost": max(0, sent * (ROOM_SIZE - 1) - received),
        "not_read_by_relay": max(0, sent - relayed_in),
        "sender_late_ms_max": round(load["late_ms"], 1),
        "send_errors": load["send_errors"],
        "load_cpu_s": round(load["load_cpu_s"], 2),
        "cpus": os.cpu_count(),
    }


def summary(r: dict[str, Any]) -> str:
    """A few lines for people, with units; the JSON line after it is for tools."""
    latency = (
        f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms"
        f" ({r['latency_samples']} samples)"
        if r["latency_samples"]
        else "no samples"
    )
    reasons = ", ".join(f"{k} {v}" for k, v in r["dropped_by_reason"].items() if v) or "none"
    return "\n".join(
        [
            f"{r['users']} users in rooms of {ROOM_SIZE}, {r['mode']}, {r['cipher']},"
            f" {r['seconds']:g} s against {r['server']}",
            f"  packets/s   sent {r['sent_pps']}, read by the relay {r['incoming_pps']},"
            f" forwarded {r['forwarded_pps']}, delivered {r['delivered_pps']}",
            f"  server CPU  {r['cpu_us_per_packet']} us per incoming packet"
            f" ({r['server_cpu_share']:.0%} of one core, {r['server_kernel_fraction']:.0%} in"
            f" the kernel): ~{r['ceiling_users_per_core']} talkers per core",
            f"  latency     {latency}",
            f"  dropped     {r['dropped']} ({reasons}); lost deliveries {r['lost']}",
            "  legend: a talker sends 50 packets/s; latency is send to receive, both kernel"
            " hops and the load generator included (an upper bound on what the relay adds);"
            " CPU is the server process's user+system time over the send window",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.relay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--saturate", action="store_true", help="send as fast as possible")
    p.add_argument(
        "--rate", type=int, default=DEFAULT_RATE, help="relay's per-user packets/s limit"
    )
    p.add_argument("--cipher", default=DEFAULT_CIPHER)
    p.add_argument("--standalone", action="store_true", help="the relay alone, no control plane")
    p.add_argument("--frame-bytes", type=int, default=60, help="Opus frame size (>= 8)")
    p.add_argument("--sample-every", type=int, default=8, help="latency sample: 1 in N")
    p.add_argument("--profile", help="(--standalone) pyinstrument text profile of the relay")
    result = run(p.parse_args(argv))
    print(summary(result))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
