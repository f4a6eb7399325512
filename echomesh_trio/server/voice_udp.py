"""The voice relay's UDP socket under Trio: the I/O around the pure `VoiceRelay`.

`serve_udp` binds a non-blocking socket, attaches its `sendto` to the relay, then waits for
readability and drains up to `BATCH` datagrams without awaiting, each handed to
`VoiceRelay.receive_datagram`; a second task asks the relay to ping its members every
`ping_interval`. The loop also fills a `LatencyHistogram` with what the relay adds to each
UDP datagram: from the wake-up that read it to the moment its last copy was sent (the wait
behind earlier datagrams of the same batch included, the time in the kernel's queue before
the wake-up not). It costs no extra clock read: the time taken after one datagram is the
`now` of the next. Everything runs on the Trio thread, so the control plane's calls on the
relay never interleave with the forwarding of a packet (docs/VOICE.md, "Hot path").
"""

from __future__ import annotations

import os
import socket
import time
from bisect import bisect_left
from typing import Final

import trio

from echomesh_trio.server.metrics import LatencyHistogram
from echomesh_trio.voice.packet import MAX_DATAGRAM_SIZE
from echomesh_trio.voice.relay import VoiceRelay

__all__ = ["BATCH", "SOCKET_BUFFER", "kernel_drops", "serve_udp"]

BATCH: Final = 256
"""Datagrams drained per wake-up before yielding to other Trio tasks (bounds the latency
that voice adds to the control plane to ~256 x the per-packet cost, a few ms at worst)."""
SOCKET_BUFFER: Final = 1024 * 1024
"""Receive/send buffer asked of the kernel (capped at net.core.rmem_max). A small ~100-byte
datagram costs ~1 KiB of buffer (skb truesize), so this is ~1,000 packets: 20 ms at 50k/s,
enough to ride out a scheduler time slice on a busy host while bounding the standing delay
an overload can build (4 MiB measured ~0.5 s of queued voice; late voice is useless)."""


async def serve_udp(
    relay: VoiceRelay,
    host: str,
    port: int = 0,
    *,
    latency: LatencyHistogram | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bind UDP, report the bound port, relay until cancelled (pings included).

    ``latency`` receives the relay-added latency of every UDP datagram (see above)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        sock.bind((host, port))
        inode = os.fstat(sock.fileno()).st_ino
        bound_port: int = sock.getsockname()[1]
        relay.attach(sock.sendto, bound_port, lambda: kernel_drops(inode))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_ping_loop, relay)
                task_status.started(bound_port)
                await _drain_loop(relay, sock, latency or LatencyHistogram())
        finally:
            relay.detach()


async def _ping_loop(relay: VoiceRelay) -> None:
    while True:
        await trio.sleep(relay.ping_interval)
        relay.ping_members(time.monotonic_ns())


async def _drain_loop(relay: VoiceRelay, sock: socket.socket, latency: LatencyHistogram) -> None:
    # One wake-up per burst, then non-blocking reads until empty: measured ~2x the
    # throughput of `await sock.recvfrom()` per datagram (docs/VOICE.md).
    recvfrom = sock.recvfrom
    receive = relay.receive_datagram
    wait_readable = trio.lowlevel.wait_readable
    clock = time.monotonic_ns
    size = MAX_DATAGRAM_SIZE + 1  # one byte more, so oversize datagrams are seen as such
    counts, bounds = latency.counts, latency.bounds
    while True:
        await wait_readable(sock)
        woke = now = clock()
        total = 0
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(size)
            except BlockingIOError:
                break
            except OSError:  # e.g. an ICMP error surfaced on the socket: not fatal
                continue
            receive(data, addr, now)
            now = clock()
            counts[bisect_left(bounds, now - woke)] += 1
            total += now - woke
        latency.sum_ns += total


def kernel_drops(inode: int) -> int | None:
    """Datagrams the kernel dropped because our receive buffer was full (Linux only).

    They never reach the relay, so only the kernel can count them: the last column of
    /proc/net/udp for our socket's inode. None where that is not available.
    """
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == str(inode):
                        return int(fields[-1])
        except (OSError, ValueError, StopIteration):
            continue
    return None
