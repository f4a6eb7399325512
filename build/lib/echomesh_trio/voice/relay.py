"""The voice relay: a selective forwarding unit for sealed Opus datagrams.

`VoiceRelay` holds all state (members, rooms, keys, counters) and the per-datagram hot path
`receive_datagram`, which needs no Trio and is what the property tests drive. `serve_udp` is
the thin Trio adapter: it binds a non-blocking socket, waits for readability, then drains up
to `_BATCH` datagrams without awaiting (docs/VOICE.md explains why, with measurements).

Everything runs on the Trio thread, so a control-plane call such as `set_active_room` can
never interleave with the forwarding of a packet: once it returns, the change holds for the
next datagram.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any, Final

import trio
from cryptography.exceptions import InvalidTag

from .packet import (
    HEADER,
    HEADER_SIZE,
    MAX_DATAGRAM_SIZE,
    MIN_DATAGRAM_SIZE,
    PROBE,
    VERSION,
    DropReason,
    Kind,
)
from .replay import REPLAY_WINDOW_SIZE
from .seal import (
    CLIENT_TO_SERVER,
    DEFAULT_CIPHER,
    NONCE,
    SERVER_TO_CLIENT,
    AeadFn,
    make_aead,
    new_key,
)
from .stats import RelayStatistics, Transport, VoiceCredentials, VoiceUserStatistics

__all__ = ["DEFAULT_PING_INTERVAL", "SendTo", "TunnelSend", "VoiceRelay"]

Address = Any  # what socket.recvfrom returns: (host, port) or (host, port, flow, scope)
SendTo = Callable[[bytes, Address], object]
TunnelSend = Callable[[bytes], bool | None]
"""Hands a datagram to a session's control connection; returns False if it dropped it."""

DEFAULT_PING_INTERVAL: Final = 5.0
_BATCH: Final = 256
"""Datagrams drained per wake-up before yielding to other Trio tasks (bounds the latency
that voice adds to the control plane to ~256 x the per-packet cost, a few ms at worst)."""
_SOCKET_BUFFER: Final = 1024 * 1024
"""Receive/send buffer asked of the kernel (capped at net.core.rmem_max). A small ~100-byte
datagram costs ~1 KiB of buffer (skb truesize), so this is ~1,000 packets: 20 ms at 50k/s,
enough to ride out a scheduler time slice on a busy host while bounding the standing delay
an overload can build (4 MiB measured ~0.5 s of queued voice; late voice is useless)."""
_VF: Final = VERSION << 4
_RATE_PERIOD_NS: Final = 1_000_000_000
_TUNNEL_ERRORS: Final = (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError)
_REASONS: Final = tuple(DropReason)


def _no_socket(data: bytes, addr: Address) -> None:
    raise BlockingIOError("serve_udp is not running")


class _Member:
    """One voice session. Slots, and plain attributes read directly by the hot path."""

    __slots__ = (
        "addr",
        "client_rtt_ms",
        "decrypt",
        "dropped",
        "encrypt",
        "packets_in",
        "packets_out",
        "rate_count",
        "rate_start",
        "room",
        "rtt_ms",
        "rx_bits",
        "rx_top",
        "source_id",
        "targets",
        "tunnel",
        "tx_counter",
        "user_id",
    )

    def __init__(self, source_id: int, user_id: int, decrypt: AeadFn, encrypt: AeadFn) -> None:
        self.source_id = source_id
        self.user_id = user_id
        self.decrypt = decrypt  # client key: opens what this member sealed
        self.encrypt = encrypt  # server key: seals what we send to this member
        self.rx_top = 0  # replay window over the member's counter (see replay.py)
        self.rx_bits = 0
        self.tx_counter = 0  # our counter under the member's server key
        self.addr: Address | None = None
        self.tunnel: TunnelSend | None = None
        self.room: str | None = None
        self.targets: tuple[_Member, ...] = ()  # the other members of `room`
        self.rate_start = 0
        self.rate_count = 0
        self.packets_in = 0
        self.packets_out = 0
        self.dropped = dict.fromkeys(_REASONS, 0)
        self.rtt_ms: float | None = None  # measured by our pings
        self.client_rtt_ms: float | None = None  # reported in the member's pings


class VoiceRelay:
    """Relay state and hot path; see the module docstring and docs/VOICE.md."""

    def __init__(
        self,
        *,
        max_packets_per_second: int = 100,
        cipher: str = DEFAULT_CIPHER,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        sendto: SendTo | None = None,
    ) -> None:
        """`sendto` is for driving the relay without a socket (tests); serve_udp sets it."""
        make_aead(cipher, new_key(cipher))  # fail early on an unknown cipher
        self.cipher = cipher
        self.max_packets_per_second = max_packets_per_second
        self.ping_interval = ping_interval
        self._sendto: SendTo = sendto if sendto is not None else _no_socket
        self._members: dict[int, _Member] = {}
        self._rooms: dict[str, set[int]] = {}
        self._received = 0
        self._packets_in = 0
        self._packets_out = 0
        self._dropped = dict.fromkeys(_REASONS, 0)
        self._socket_inode: int | None = None
        self._socket_drops_at_close: int | None = None
        self.udp_port: int | None = None
        """The bound UDP port while serve_udp runs (what VoiceSetup.udp_port carries)."""

    # ---- control plane (called from the control server's tasks) ----

    def register(self, user_id: int) -> VoiceCredentials:
        """A new voice session with a fresh unique source id and fresh keys."""
        source_id = 0
        while source_id == 0 or source_id in self._members:
            source_id = secrets.randbits(32)
        client_key, server_key = new_key(self.cipher), new_key(self.cipher)
        self._members[source_id] = _Member(
            source_id,
            user_id,
            make_aead(self.cipher, client_key).decrypt,
            make_aead(self.cipher, server_key).encrypt,
        )
        return VoiceCredentials(source_id, client_key, server_key, self.cipher)

    def unregister(self, source_id: int) -> None:
        """Forget a session (on disconnect). Unknown ids are ignored."""
        if source_id in self._members:
            self.set_active_room(source_id, None)
            del self._members[source_id]

    def set_active_room(self, source_id: int, room_id: str | None) -> None:
        """Where this member's voice goes and whose voice it hears; effective at once."""
        m = self._members[source_id]
        old = m.room
        if old == room_id:
            return
        if old is not None:
            members = self._rooms[old]
            members.discard(source_id)
            if not members:
                del self._rooms[old]
            self._rebuild(old)
        m.room = room_id
        m.targets = ()
        if room_id is not None:
            self._rooms.setdefault(room_id, set()).add(source_id)
            self._rebuild(room_id)

    def set_tunnel(self, source_id: int, send_nowait: TunnelSend | None) -> None:
        """Send this member's datagrams through the control connection (None: UDP again)."""
        self._members[source_id].tunnel = send_nowait

    def receive_tunnelled(self, source_id: int, datagram: bytes) -> None:
        """A datagram from a VoiceTunnel message of this session's control connection."""
        if source_id not in self._members:
            raise KeyError(source_id)  # our own misuse: the session is gone
        self._received += 1
        if len(datagram) >= MIN_DATAGRAM_SIZE and HEADER.unpack_from(datagram)[2] != source_id:
            # Claims another source: it cannot authenticate as that one.
            self._drop(self._members[source_id], DropReason.AUTH_FAILED)
            return
        self._receive(datagram, None, time.monotonic_ns())

    def user_statistics(self, source_id: int) -> VoiceUserStatistics:
        m = self._members[source_id]
        addr = m.addr
        return VoiceUserStatistics(
            source_id=m.source_id,
            user_id=m.user_id,
            packets_in=m.packets_in,
            packets_out=m.packets_out,
            dropped=MappingProxyType({k: v for k, v in m.dropped.items() if v}),
            rtt_ms=m.rtt_ms if m.rtt_ms is not None else m.client_rtt_ms,
            transport=Transport.UDP if m.tunnel is None else Transport.TCP_TUNNEL,
            active_room=m.room,
            udp_address=None if addr is None else (addr[0], addr[1]),
        )

    def statistics(self) -> RelayStatistics:
        return RelayStatistics(
            members=len(self._members),
            rooms=len(self._rooms),
            datagrams_received=self._received,
            packets_in=self._packets_in,
            packets_out=self._packets_out,
            dropped=MappingProxyType({k: v for k, v in self._dropped.items() if v}),
            socket_drops=(
                self._socket_drops_at_close
                if self._socket_inode is None
                else _kernel_drops(self._socket_inode)
            ),
        )

    def source_ids(self) -> Iterable[int]:
        return tuple(self._members)

    def _rebuild(self, room_id: str) -> None:
        # Fan-out tuples are rebuilt on membership change so the hot path only iterates.
        ids = self._rooms.get(room_id, ())
        members = [self._members[i] for i in ids]
        for m in members:
            m.targets = tuple(t for t in members if t is not m)

    def _drop(self, m: _Member | None, reason: DropReason) -> None:
        self._dropped[reason] += 1
        if m is not None:
            m.dropped[reason] += 1

    # ---- data plane ----

    def receive_datagram(self, data: bytes, addr: Address, now_ns: int) -> None:
        """Handle one datagram read from the UDP socket (sans-IO entry of the hot path)."""
        self._received += 1
        self._receive(data, addr, now_ns)

    def _receive(self, data: bytes, addr: Address | None, now_ns: int) -> None:
        # The hot path. Locals and inlined checks on purpose: every attribute lookup and
        # call here is paid 50,000 times a second (docs/VOICE.md, "Profile").
        n = len(data)
        if n > MAX_DATAGRAM_SIZE:
            self._drop(None, DropReason.OVERSIZE)
            return
        if n < MIN_DATAGRAM_SIZE:
            self._drop(None, DropReason.MALFORMED)
            return
        vf, kind, source_id, _seq, _ts, counter = HEADER.unpack_from(data)
        m = self._members.get(source_id)
        if m is None:
            self._drop(None, DropReason.UNKNOWN_SOURCE)
            return
        if vf & 0xF0 != _VF or counter == 0:
            self._drop(m, DropReason.MALFORMED)
            return
        top = m.rx_top
        if counter <= top:
            offset = top - counter
            if offset >= REPLAY_WINDOW_SIZE:
                self._drop(m, DropReason.TOO_OLD)
                return
            if (m.rx_bits >> offset) & 1:
                self._drop(m, DropReason.REPLAYED)
                return
        header = data[:HEADER_SIZE]
        try:
            plaintext = m.decrypt(NONCE.pack(CLIENT_TO_SERVER, counter), data[HEADER_SIZE:], header)
        except InvalidTag:
            self._drop(m, DropReason.AUTH_FAILED)
            return
        # Authentic: now it may move the replay window and the address.
        if counter > top:
            shift = counter - top
            m.rx_bits = (
                ((m.rx_bits << shift) | 1) & _WINDOW_MASK if shift < REPLAY_WINDOW_SIZE else 1
            )
            m.rx_top = counter
        else:
            m.rx_bits |= 1 << (top - counter)
        if addr is not None and addr != m.addr:
            m.addr = addr  # learnt from an authenticated datagram: NAT and re-binding work
        if now_ns - m.rate_start >= _RATE_PERIOD_NS:
            m.rate_start = now_ns
            m.rate_count = 1
        else:
            m.rate_count += 1
            if m.rate_count > self.max_packets_per_second:
                self._drop(m, DropReason.RATE_LIMITED)
                return
        m.packets_in += 1
        self._packets_in += 1

        if kind == 1:  # Kind.VOICE
            targets = m.targets
            if not targets:
                if m.room is None:
                    self._drop(m, DropReason.NO_ROOM)
                return
            head = header[:14]  # flags, kind, source id, sequence, timestamp: kept as sent
            sendto = self._sendto
            pack_nonce = NONCE.pack
            sent = 0
            for r in targets:
                tunnel = r.tunnel
                raddr = r.addr
                if tunnel is None and raddr is None:
                    self._drop(r, DropReason.NO_ROUTE)
                    continue
                c = r.tx_counter + 1
                r.tx_counter = c
                cb = c.to_bytes(8, "big")
                out_header = head + cb
                out = out_header + r.encrypt(pack_nonce(SERVER_TO_CLIENT, c), plaintext, out_header)
                if tunnel is None:
                    try:
                        sendto(out, raddr)
                    except OSError:  # BlockingIOError: full buffer; never wait for room
                        self._drop(r, DropReason.SEND_BLOCKED)
                        continue
                else:
                    try:
                        if tunnel(out) is False:
                            self._drop(r, DropReason.SEND_BLOCKED)
                            continue
                    except _TUNNEL_ERRORS:
                        self._drop(r, DropReason.SEND_BLOCKED)
                        continue
                r.packets_out += 1
                sent += 1
            self._packets_out += sent
        elif kind == 4 or kind == 2:  # Kind.PING, Kind.HELLO: answer on the path it came by
            if len(plaintext) != PROBE.size:
                self._drop(m, DropReason.MALFORMED)
                return
            t_ns, rtt_us = PROBE.unpack(plaintext)
            if rtt_us:
                m.client_rtt_ms = rtt_us / 1000
            rtt = m.rtt_ms
            reply = PROBE.pack(t_ns, 0 if rtt is None else int(rtt * 1000))
            self._send_control(m, Kind.PONG if kind == 4 else Kind.HELLO_ACK, reply, addr)
        elif kind == 5:  # Kind.PONG to one of our pings
            if len(plaintext) != PROBE.size:
                self._drop(m, DropReason.MALFORMED)
                return
            t_ns, _ = PROBE.unpack(plaintext)
            if 0 < t_ns <= now_ns:
                m.rtt_ms = (now_ns - t_ns) / 1e6
        else:  # hello-ack: a server never receives one
            self._drop(m, DropReason.MALFORMED)

    def _send_control(self, m: _Member, kind: Kind, payload: bytes, addr: Address | None) -> None:
        c = m.tx_counter + 1
        m.tx_counter = c
        header = HEADER.pack(_VF, kind, m.source_id, 0, 0, c)
        out = header + m.encrypt(NONCE.pack(SERVER_TO_CLIENT, c), payload, header)
        try:
            if addr is None:
                if m.tunnel is None or m.tunnel(out) is False:
                    self._drop(m, DropReason.SEND_BLOCKED)
                    return
            else:
                self._sendto(out, addr)
        except (OSError, *_TUNNEL_ERRORS):
            self._drop(m, DropReason.SEND_BLOCKED)
            return
        m.packets_out += 1
        self._packets_out += 1

    def ping_members(self, now_ns: int) -> None:
        """Send every member a ping over its current path (the server's half of RTT)."""
        for m in tuple(self._members.values()):
            addr = m.addr if m.tunnel is None else None
            if addr is None and m.tunnel is None:
                continue
            rtt = m.client_rtt_ms
            self._send_control(
                m, Kind.PING, PROBE.pack(now_ns, 0 if rtt is None else int(rtt * 1000)), addr
            )

    # ---- Trio adapter ----

    async def serve_udp(
        self,
        host: str,
        port: int = 0,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind UDP, report the bound port, relay until cancelled (pings included)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, _SOCKET_BUFFER)
            sock.bind((host, port))
            self._sendto = sock.sendto
            self._socket_inode = os.fstat(sock.fileno()).st_ino
            self.udp_port = sock.getsockname()[1]
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._ping_loop)
                    task_status.started(self.udp_port)
                    await self._drain_loop(sock)
            finally:
                self._sendto = _no_socket
                self.udp_port = None
                self._socket_drops_at_close = _kernel_drops(self._socket_inode)
                self._socket_inode = None

    async def _ping_loop(self) -> None:
        while True:
            await trio.sleep(self.ping_interval)
            self.ping_members(time.monotonic_ns())

    async def _drain_loop(self, sock: socket.socket) -> None:
        # One wake-up per burst, then non-blocking reads until empty: measured ~2x the
        # throughput of `await sock.recvfrom()` per datagram (docs/VOICE.md).
        recvfrom = sock.recvfrom
        receive = self.receive_datagram
        wait_readable = trio.lowlevel.wait_readable
        clock = time.monotonic_ns
        size = MAX_DATAGRAM_SIZE + 1  # one byte more, so oversize datagrams are seen as such
        while True:
            await wait_readable(sock)
            for _ in range(_BATCH):
                try:
                    data, addr = recvfrom(size)
                except BlockingIOError:
                    break
                except OSError:  # e.g. an ICMP error surfaced on the socket: not fatal
                    continue
                receive(data, addr, clock())


_WINDOW_MASK: Final = (1 << REPLAY_WINDOW_SIZE) - 1


def _kernel_drops(inode: int | None) -> int | None:
    """Datagrams the kernel dropped because our receive buffer was full (Linux only).

    They never reach the relay, so only the kernel can count them: the last column of
    /proc/net/udp for our socket's inode. None where that is not available.
    """
    if inode is None:
        return None
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
