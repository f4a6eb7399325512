"""Control-plane load test: many logged-in connections, room fan-out latency, server memory.

``python -m bench.control --clients N`` starts ``echomesh-serve`` as a subprocess in a
temporary data directory, connects N clients from this one Trio process over loopback,
logs them in (the first login registers the name), puts ``--room-size`` of them in one big
room and the rest in rooms of ten, then has a few members of the big room post chat at
``--rate`` messages per second for ``--seconds``. For every (message, member) pair it
records the delay from the sender's send time to the arrival at the member; all clients
share one process, so one monotonic clock serves both ends.

Server memory is VmRSS from /proc: once after warm-up (a few clients that log in, chat
and leave) and once with all N clients in their rooms. Progress goes to stderr; the last
stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from bench.common import (
    free_port,
    machine_cpu,
    percentile,
    proc_cpu_s,
    proc_rss_kib,
    wait_listening,
)
from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol import message_pb2 as pb
from echomesh_trio.protocol.codec import request_frame
from echomesh_trio.protocol.framing import FrameDecoder
from echomesh_trio.server.tlscert import pinned_client_context

PASSWORD = "bench-password"
PASSWORD_COST = 10  # scrypt log2(n): ~1 ms per login instead of ~40 ms at the default 14
PING_INTERVAL = 10.0  # the server closes connections silent for --idle-timeout (30 s)
BIG_ROOM = "bench-big"
SMALL_ROOM_SIZE = 10
WARMUP_CLIENTS = 20

_quiet = False


def note(message: str) -> None:
    if not _quiet:
        print(f"[bench.control {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr)


# ------------------------------------------------------------------ the server process


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    tls: bool

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return pinned_client_context(self.data_dir / "tls" / "server-cert.pem")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(data_dir: Path, args: argparse.Namespace) -> ServerProcess:
    port = free_port()
    limit = args.clients + WARMUP_CLIENTS + 100
    profile = ["-m", "pyinstrument", "-o", str(args.profile_server)] if args.profile_server else []
    cmd = [
        sys.executable,
        *profile,
        "-m",
        "echomesh_trio.cli",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--password-cost",
        str(PASSWORD_COST),
        "--log-level",
        "warning",
        "--max-connections",
        str(limit),
        "--max-connections-per-address",
        str(limit),
        "--admin-port",
        "0",
    ]
    if not args.tls:
        cmd.append("--plaintext")
    cmd += args.server_arg
    note("server: " + " ".join(cmd[1:]))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    wait_listening(proc, port)
    note(f"server pid {proc.pid} listening on 127.0.0.1:{port}")
    return ServerProcess(proc, port, data_dir, args.tls)


# ------------------------------------------------------------------ the clients


@dataclass
class Stats:
    sent: dict[str, float] = field(default_factory=dict)  # client_msg_id -> send time
    arrivals: dict[str, list[float]] = field(default_factory=dict)  # -> each member's delay
    delays: list[float] = field(default_factory=list)
    rejected: int = 0
    unexpected_errors: list[str] = field(default_factory=list)
    closed: int = 0
    goodbyes: list[str] = field(default_factory=list)
    frames: int = 0  # what the read loops received, pongs aside
    target: int = 1 << 62  # deliveries expected; all_arrived is set on reaching it
    all_arrived: trio.Event = field(default_factory=trio.Event)


class Client:
    """One bench connection: a stream, a frame decoder and its setup/read loop."""

    __slots__ = (
        "decoder",
        "index",
        "last_sent",
        "lock",
        "name",
        "pending",
        "ready",
        "room",
        "stream",
    )

    def __init__(self, index: int, room: str) -> None:
        self.index = index
        self.name = f"bench{index:05d}"
        self.room = room
        self.stream: trio.abc.Stream | None = None
        self.decoder = FrameDecoder()
        self.pending: deque[Any] = deque()
        self.lock = trio.Lock()  # the pinger and a chat sender may share a stream
        self.last_sent = 0.0
        self.ready = False  # logged in and in its room

    async def send(self, request: ev.ClientRequest) -> None:
        assert self.stream is not None
        async with self.lock:
            await self.stream.send_all(request_frame(request))
        self.last_sent = time.monotonic()

    async def next_message(self) -> Any:
        assert self.stream is not None
        while not self.pending:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError(f"{self.name}: the server closed the connection")
            for body in self.decoder.feed(data):
                msg = pb.EchoMsg()
                msg.ParseFromString(body)
                self.pending.append(msg)
        return self.pending.popleft()

    async def until(self, *types: int) -> Any:
        while True:
            msg = await self.next_message()
            if msg.type in types:
                return msg

    async def setup(self, host: str, port: int, ctx: ssl.SSLContext | None) -> None:
        tcp = await trio.open_tcp_stream(host, port)
        if ctx is not None:
            tls = trio.SSLStream(tcp, ctx, server_hostname=host)
            await tls.do_handshake()
            self.stream = tls
        else:
            self.stream = tcp
        await self.send(ev.Login(self.name, PASSWORD, "bench.control"))
        reply = (await self.until(pb.MT_LOGIN_RESPONSE)).login_response
        if reply.status_code != 200:
            raise RuntimeError(f"{self.name}: login failed: {reply.status_code} {reply.message}")
        await self.enter_room()

    async def enter_room(self) -> None:
        """Join the room, creating it when it does not exist yet (races are fine)."""
        request: ev.ClientRequest = ev.JoinRoom(self.room)
        for _ in range(10):
            await self.send(request)
            msg = await self.until(pb.MT_ROOM_STATE, pb.MT_ERROR)
            if msg.type == pb.MT_ROOM_STATE and msg.room_state.room_id == self.room:
                return
            code = msg.error.code
            if code == pb.ERR_UNKNOWN_ROOM:
                request = ev.CreateRoom(self.room)
            elif code == pb.ERR_ROOM_EXISTS:
                request = ev.JoinRoom(self.room)
            else:
                raise RuntimeError(f"{self.name}: cannot enter {self.room}: {msg.error.message}")
        raise RuntimeError(f"{self.name}: could not enter {self.room}")

    async def read_loop(self, stats: Stats) -> None:
        """Consume everything; time chat in the big room against the sender's clock."""
        sent = stats.sent
        delays = stats.delays
        try:
            while True:
                msg = await self.next_message()
                kind = msg.type
                if kind == pb.MT_PONG:
                    continue
                stats.frames += 1
                if kind == pb.MT_CHAT_MSG:
                    msg_id = msg.chat_msg.client_msg_id
                    t0 = sent.get(msg_id)
                    if t0 is not None:
                        delay = time.monotonic() - t0
                        delays.append(delay)
                        stats.arrivals[msg_id].append(delay)
                        if len(delays) >= stats.target:
                            stats.all_arrived.set()
                elif kind == pb.MT_ERROR:
                    if msg.error.code == pb.ERR_RATE_LIMITED:
                        stats.rejected += 1
                    else:
                        stats.unexpected_errors.append(f"{self.name}: {msg.error.message}")
                elif kind == pb.MT_GOODBYE:
                    stats.goodbyes.append(f"{self.name}: {msg.goodbye.message}")
        except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
            stats.closed += 1


async def pinger(ready: deque[Client]) -> None:
    """Ping each ready client about every PING_INTERVAL, spread out in time."""
    nonce = 0
    while True:
        await trio.sleep(0.05)
        now = time.monotonic()
        while ready and now - ready[0].last_sent >= PING_INTERVAL:
            client = ready.popleft()
            nonce += 1
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await client.send(ev.Ping(nonce, int(time.time() * 1000)))
            ready.append(client)


async def chat_sender(
    client: Client, stats: Stats, rate: float, seconds: float, offset: float
) -> int:
    """Send to the big room at ``rate`` per second for ``seconds``; return the count sent."""
    await trio.sleep(offset)
    start = trio.current_time()
    count = 0
    while True:
        due = start + count / rate
        if due - start >= seconds:
            return count
        await trio.sleep_until(due)
        msg_id = f"{client.index}-{count}"
        stats.arrivals[msg_id] = []
        stats.sent[msg_id] = time.monotonic()
        await client.send(ev.SendChat(BIG_ROOM, f"fan-out probe {msg_id}", msg_id))
        count += 1


async def quiesce(stats: Stats, quiet: float = 1.0, budget: float = 120.0) -> None:
    """Wait until no client has received anything but pongs for ``quiet`` seconds."""
    with trio.move_on_after(budget):
        while True:
            before = stats.frames
            await trio.sleep(quiet)
            if stats.frames == before:
                return


def room_for(index: int, room_size: int) -> str:
    if index < room_size:
        return BIG_ROOM
    return f"bench-r{(index - room_size) // SMALL_ROOM_SIZE:04d}"


async def connect_all(
    clients: list[Client],
    server: ServerProcess,
    concurrency: int,
    nursery: trio.Nursery,
    stats: Stats,
    ready: deque[Client],
) -> None:
    """Set every client up, ``concurrency`` at a time; each then reads in the background."""
    ctx = server.ssl_context()
    limiter = trio.CapacityLimiter(concurrency)
    done = 0
    failures: list[str] = []

    async def one(client: Client) -> None:
        nonlocal done
        async with limiter:
            try:
                await client.setup("127.0.0.1", server.port, ctx)
            except (OSError, RuntimeError, EOFError, trio.BrokenResourceError) as exc:
                failures.append(f"{client.name}: {exc!r}")
                return
        done += 1
        if done % 1000 == 0:
            note(f"  {done} clients logged in and in their rooms")
        client.ready = True
        ready.append(client)
        nursery.start_soon(client.read_loop, stats)

    async with trio.open_nursery() as setup:
        for client in clients:
            setup.start_soon(one, client)
    if failures:
        note(f"{len(failures)} clients failed to set up; first: {failures[0]}")


async def close_all(clients: list[Client]) -> None:
    for client in clients:
        if client.stream is not None:
            await trio.aclose_forcefully(client.stream)


# ------------------------------------------------------------------ the run


async def run(args: argparse.Namespace, server: ServerProcess) -> dict[str, Any]:
    stats = Stats()
    ready: deque[Client] = deque()
    result: dict[str, Any] = {}
    client_cpu0 = time.process_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger, ready)

        # Warm-up: let the server import, start its worker threads and touch its caches.
        warm = [Client(100_000 + i, "bench-warmup") for i in range(WARMUP_CLIENTS)]
        await connect_all(warm, server, 10, nursery, Stats(), deque())
        await warm[0].send(ev.SendChat("bench-warmup", "warm-up", ""))
        await trio.sleep(0.5)
        await close_all(warm)
        await trio.sleep(2.0)
        rss0 = proc_rss_kib(server.pid)
        note(f"baseline server RSS {rss0 / 1024:.1f} MiB after {WARMUP_CLIENTS} warm-up clients")

        clients = [Client(i, room_for(i, args.room_size)) for i in range(args.clients)]
        cpu0, t0 = proc_cpu_s(server.pid), time.monotonic()
        await connect_all(clients, server, args.concurrency, nursery, stats, ready)
        login_seconds = time.monotonic() - t0
        login_cpu = proc_cpu_s(server.pid) - cpu0
        logged_in = sum(c.ready for c in clients)
        # The load generator's own cyclic GC would walk every client object in the middle
        # of the measurement (hundreds of ms at 5,000 clients): freeze what exists now and
        # keep the collector off while timing, so pauses measured are the server's.
        gc.collect()
        gc.freeze()
        gc.disable()
        note(f"{logged_in} clients logged in and in rooms in {login_seconds:.1f} s")
        await quiesce(stats)  # let the room-join notices drain before measuring
        rss1 = proc_rss_kib(server.pid)
        per_client = (rss1 - rss0) / max(1, logged_in)
        note(f"loaded server RSS {rss1 / 1024:.1f} MiB: {per_client:.1f} KiB per client")

        members = [c for c in clients if c.room == BIG_ROOM and c.ready]
        senders = members[: args.senders]
        stats.delays.clear()
        note(
            f"fan-out: {len(senders)} senders, {args.rate:g} msg/s in total for "
            f"{args.seconds:g} s to a room of {len(members)}"
        )
        cpu1, ccpu1, t1 = proc_cpu_s(server.pid), time.process_time(), time.monotonic()
        machine1 = machine_cpu()
        sent_counts: list[int] = []

        async def send_part(client: Client, offset: float) -> None:
            sent_counts.append(
                await chat_sender(client, stats, args.rate / len(senders), args.seconds, offset)
            )

        async with trio.open_nursery() as chat:
            for k, sender in enumerate(senders):
                chat.start_soon(send_part, sender, k / args.rate)
        expected = (sum(sent_counts) - stats.rejected) * len(members)
        stats.target = expected
        if len(stats.delays) >= expected:
            stats.all_arrived.set()
        with trio.move_on_after(10):  # the rest must arrive within 10 s or count as missing
            await stats.all_arrived.wait()
        wall = time.monotonic() - t1
        machine2 = machine_cpu()
        cores = os.cpu_count() or 1
        busy = (machine2[0] - machine1[0]) / max(1, machine2[1] - machine1[1]) * 100 * cores
        fan_cpu = proc_cpu_s(server.pid) - cpu1
        fan_client_cpu = time.process_time() - ccpu1
        rss2 = proc_rss_kib(server.pid)
        gc.enable()
        delays = sorted(stats.delays)
        # Per message: delay to its first recipient (send path, database write) and
        # from first to last recipient (the fan-out loop and the writers).
        firsts = sorted(min(a) for a in stats.arrivals.values() if a)
        spreads = sorted(max(a) - min(a) for a in stats.arrivals.values() if a)
        note(f"fan-out done: {len(delays)} of {expected} deliveries")

        result = {
            "clients": args.clients,
            "logged_in": logged_in,
            "tls": args.tls,
            "password_cost": PASSWORD_COST,
            "rss_baseline_mib": round(rss0 / 1024, 1),
            "rss_loaded_mib": round(rss1 / 1024, 1),
            "rss_after_fanout_mib": round(rss2 / 1024, 1),
            "rss_per_client_kib": round(per_client, 2),
            "login_seconds": round(login_seconds, 2),
            "login_server_cpu_s": round(login_cpu, 2),
            "room_size": len(members),
            "senders": len(senders),
            "rate": args.rate,
            "seconds": args.seconds,
            "messages": sum(sent_counts),
            "rejected": stats.rejected,
            "deliveries": len(delays),
            "expected": expected,
            "missing": expected - len(delays),
            "fanout_p50_ms": round(percentile(delays, 0.50) * 1000, 2),
            "fanout_p90_ms": round(percentile(delays, 0.90) * 1000, 2),
            "fanout_p99_ms": round(percentile(delays, 0.99) * 1000, 2),
            "fanout_max_ms": round(percentile(delays, 1.0) * 1000, 2),
            "first_recipient_p50_ms": round(percentile(firsts, 0.50) * 1000, 2),
            "first_recipient_p99_ms": round(percentile(firsts, 0.99) * 1000, 2),
            "spread_p50_ms": round(percentile(spreads, 0.50) * 1000, 2),
            "spread_p99_ms": round(percentile(spreads, 0.99) * 1000, 2),
            "fanout_server_cpu_pct": round(100 * fan_cpu / wall, 1),
            "fanout_client_cpu_pct": round(100 * fan_client_cpu / wall, 1),
            "fanout_machine_cpu_pct": round(busy, 1),  # all processes; 100 per core
            "fanout_wall_s": round(wall, 2),
            "cores": cores,
            "server_cpu_s": round(proc_cpu_s(server.pid), 2),
            "client_cpu_s": round(time.process_time() - client_cpu0, 2),
            "closed_by_server": stats.closed,
            "errors": len(stats.unexpected_errors),
            "goodbyes": len(stats.goodbyes),
        }
        for problem in (stats.unexpected_errors + stats.goodbyes)[:5]:
            note(f"  unexpected: {problem}")
        await close_all(clients)
        nursery.cancel_scope.cancel()
    return result


async def run_bounded(args: argparse.Namespace, server: ServerProcess) -> dict[str, Any]:
    with trio.fail_after(args.seconds + 900):  # never run unbounded
        return await run(args, server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.control", description=__doc__)
    parser.add_argument("--clients", type=int, default=1000, help="connections (default 1000)")
    parser.add_argument("--room-size", type=int, default=1000, help="big room (default 1000)")
    parser.add_argument("--rate", type=float, default=20.0, help="chat msg/s to the big room")
    parser.add_argument("--seconds", type=float, default=10.0, help="fan-out phase length")
    parser.add_argument("--senders", type=int, default=4, help="members posting (default 4)")
    parser.add_argument("--concurrency", type=int, default=100, help="clients set up at once")
    parser.add_argument("--tls", action="store_true", help="TLS with the pinned self-signed cert")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra echomesh-serve argument (repeatable), e.g. --server-arg=--chat-rate=50",
    )
    parser.add_argument(
        "--profile-server",
        type=Path,
        metavar="HTML",
        help="run the server under pyinstrument and write its profile here",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 15_000:
        parser.error("--clients must be between 1 and 15000")
    args.room_size = min(args.room_size, args.clients)
    args.senders = max(1, min(args.senders, args.room_size))
    global _quiet
    _quiet = args.json_only
    raise_fd_limit()
    note(
        f"{args.clients} clients, password cost {PASSWORD_COST} (scrypt log2 n; the server "
        f"default is 14), {'TLS' if args.tls else 'plaintext'}, loopback only"
    )
    with tempfile.TemporaryDirectory(prefix="echomesh-bench-") as tmp:
        server = start_server(Path(tmp), args)
        try:
            result = trio.run(run_bounded, args, server)
        finally:
            status = server.stop()
        result["server_exit"] = status
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
