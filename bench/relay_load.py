"""Simulated talking users for `python -m bench.relay`: a sender and a receiver process.

Both are forked from the benchmark process and share its N UDP sockets (one per user, each
with its own address, as real clients have). The sender seals and sends one 20 ms frame per
user per 20 ms, users spread evenly over 1 ms slots (real talkers are not synchronised); the
frame's first 8 bytes are the send time (CLOCK_MONOTONIC, shared by all processes here). The
receiver counts every datagram and opens one in `sample_every` to measure latency.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

from echomesh_trio.media import FRAME_MS, FRAME_SAMPLES
from echomesh_trio.voice.client import VoiceFrame, VoiceSession
from echomesh_trio.voice.packet import MAX_DATAGRAM_SIZE

SLOT_NS = 1_000_000
SLOTS = FRAME_MS  # 1 ms slots: each user sends in one of 20 slots per frame
_STAMP = struct.Struct(">Q")


@dataclass
class User:
    sock: socket.socket
    session: VoiceSession


def run_sender(
    users: list[User],
    server: tuple[str, int],
    start_ns: int,
    seconds: float,
    frame_bytes: int,
    saturate: bool,
    conn: Connection,
) -> None:
    """Send until `seconds` after start_ns; report (sent, send_errors, late_ms, cpu_s)."""
    pad = b"\x55" * (frame_bytes - _STAMP.size)
    end_ns = start_ns + int(seconds * 1e9)
    slots = [users[i::SLOTS] for i in range(SLOTS)]
    seq = 0
    sent = errors = late_ns = 0
    clock = time.monotonic_ns
    while clock() < start_ns:
        time.sleep(0.001)
    tick = 0
    while True:
        if saturate:
            group = users
            if clock() >= end_ns:
                break
        else:
            due = start_ns + tick * SLOT_NS
            if due >= end_ns:
                break
            now = clock()
            if now < due:
                time.sleep((due - now) / 1e9)
            else:
                late_ns = max(late_ns, now - due)
            group = slots[tick % SLOTS]
            if tick % SLOTS == 0:
                seq += 1
            tick += 1
        if saturate:
            seq += 1
        ts = seq * FRAME_SAMPLES
        for u in group:
            frame = _STAMP.pack(clock()) + pad
            try:
                u.sock.sendto(u.session.voice(frame, sequence=seq, timestamp=ts), server)
                sent += 1
            except BlockingIOError:
                errors += 1
    conn.send((sent, errors, late_ns / 1e6, time.process_time()))
    conn.close()


def run_receiver(users: list[User], end_ns: int, sample_every: int, conn: Connection) -> None:
    """Receive until end_ns; report (received, latencies_ms, cpu_s)."""
    by_fd = {u.sock.fileno(): u for u in users}
    ep = select.epoll()
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)
    received = 0
    latencies: list[float] = []
    clock = time.monotonic_ns
    size = MAX_DATAGRAM_SIZE + 1
    while clock() < end_ns:
        for fd, _ in ep.poll(0.05):
            u = by_fd[fd]
            recv = u.sock.recv
            while True:
                try:
                    data = recv(size)
                except BlockingIOError:
                    break
                if data[1] != 1:  # count voice only (Kind 1), not the relay's pings
                    continue
                received += 1
                # Sample by the sender's sequence number in the clear header.
                if int.from_bytes(data[6:10], "big") % sample_every == 0:
                    now = clock()
                    ev = u.session.receive_untrusted(data, now)
                    if isinstance(ev, VoiceFrame):
                        latencies.append((now - _STAMP.unpack_from(ev.frame)[0]) / 1e6)
    ep.close()
    conn.send((received, latencies, time.process_time()))
    conn.close()
