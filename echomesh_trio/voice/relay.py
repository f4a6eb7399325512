"""The voice relay: a selective forwarding unit for sealed Opus datagrams, pure.

`VoiceRelay` holds all state (members, rooms, keys, counters) and the per-datagram hot path
`receive_datagram`. It does no I/O and reads no clock: the datagrams, their source address
and the time come in as arguments, and datagrams go out through the `sendto` callable the
UDP adapter attaches (`echomesh_trio.server.voice_udp`, which owns the socket, the wake-ups
and the ping timer) or through a member's tunnel callable. Tests drive it directly.

What it reports: `register` returns the `VoiceSetupInfo` event the control plane sends as
it is, `user_report` the `VoiceStatsReport` event of one user (both defined once, in
`echomesh_trio.protocol.events`), and `statistics` the relay-wide `RelayStatistics`, which
never goes on the wire.

The adapter calls everything from one thread (Trio's), so a control-plane call such as
`set_active_room` can never interleave with the forwarding of a packet: once it returns,
the change holds for the next datagram.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from cryptography.exceptions import InvalidTag

from echomesh_trio.protocol import events as ev

from .packet import (
    HEADER,
    HEADER_SIZE,
    PROBE,
    VERSION,
    DropReason,
    InvalidDatagram,
    Kind,
    claimed_source_id,
    parse_untrusted_header,
)
from .replay import ReplayWindow
from .seal import (
    CLIENT_TO_SERVER,
    DEFAULT_CIPHER,
    NONCE,
    SERVER_TO_CLIENT,
    AeadFn,
    make_aead,
    new_key,
)

__all__ = [
    "DEFAULT_PING_INTERVAL",
    "RelayStatistics",
    "SendTo",
    "TunnelSend",
    "VoiceRelay",
]

Address = Any  # what socket.recvfrom returns: (host, port) or (host, port, flow, scope)
SendTo = Callable[[bytes, Address], object]
"""Sends one datagram without waiting; raises OSError (BlockingIOError) if it cannot."""
TunnelSend = Callable[[bytes], bool | None]
"""Hands a datagram to a session's control connection without waiting; returns False if it
dropped it (a full queue). It must not raise."""

DEFAULT_PING_INTERVAL: Final = 5.0
_VF: Final = VERSION << 4  # version, no flags: the first byte of what the relay itself seals
_RATE_PERIOD_NS: Final = 1_000_000_000
_REASONS: Final = tuple(DropReason)


def _detached(data: bytes, addr: Address) -> None:
    raise BlockingIOError("no UDP socket attached")


def _empty() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RelayStatistics:
    """Relay-wide counters (Trio's `statistics()` convention); never sent on the wire.

    Per-user counters are `VoiceRelay.user_report`, the event a client asks for.
    """

    members: int
    rooms: int
    datagrams_received: int
    """Everything read from the socket or a tunnel, valid or not."""
    packets_in: int
    packets_out: int
    dropped: Mapping[str, int] = field(default_factory=_empty)
    socket_drops: int | None = None
    """Dropped by the kernel before the relay saw them (receive buffer full); None if the
    platform does not say (only Linux's /proc/net/udp does) or no socket was ever attached."""
    bytes_in: int = 0
    """Bytes of every datagram read, valid or not."""
    bytes_out: int = 0
    """Bytes of every datagram sent (voice copies, pings and pongs)."""

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class _Member(ReplayWindow):
    """One voice session. Slots, and plain attributes read directly by the hot path; it is
    its own replay window over the member's counter (one attribute lookup less per packet)."""

    __slots__ = (
        "addr",
        "client_rtt_ms",
        "decrypt",
        "dropped",
        "encrypt",
        "muted",
        "packets_in",
        "packets_out",
        "rate_count",
        "rate_start",
        "room",
        "rtt_ms",
        "source_id",
        "targets",
        "tunnel",
        "tx_counter",
    )

    def __init__(self, source_id: int, decrypt: AeadFn, encrypt: AeadFn) -> None:
        self.source_id = source_id
        self.decrypt = decrypt  # client key: opens what this member sealed
        self.encrypt = encrypt  # server key: seals what we send to this member
        super().__init__()
        self.tx_counter = 0  # our counter under the member's server key
        self.addr: Address | None = None
        self.tunnel: TunnelSend | None = None
        self.room: str | None = None
        self.targets: tuple[_Member, ...] = ()  # the other members of `room`; () if muted
        self.muted = False
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
    ) -> None:
        make_aead(cipher, new_key(cipher))  # fail early on an unknown cipher
        self.cipher = cipher
        self.max_packets_per_second = max_packets_per_second
        self.ping_interval = ping_interval
        """Seconds between the pings the adapter asks for (`ping_members`)."""
        self.udp_port = 0
        """The UDP port while a socket is attached (what VoiceSetup.udp_port carries)."""
        self._sendto: SendTo = _detached
        self._socket_drops: Callable[[], int | None] | None = None
        self._socket_drops_at_detach: int | None = None
        self._members: dict[int, _Member] = {}
        self._rooms: dict[str, set[int]] = {}
        self._received = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._packets_in = 0
        self._packets_out = 0
        self._dropped = dict.fromkeys(_REASONS, 0)

    # ---- the UDP side (called by the adapter, or by tests with a plain callable) ----

    def attach(
        self,
        sendto: SendTo,
        udp_port: int = 0,
        socket_drops: Callable[[], int | None] | None = None,
    ) -> None:
        """Send UDP datagrams through `sendto`; announce `udp_port` in set-ups from now on.

        `socket_drops` reads what the kernel dropped on the receive side (for statistics).
        """
        self._sendto = sendto
        self.udp_port = udp_port
        self._socket_drops = socket_drops

    def detach(self) -> None:
        """The socket is closing: keep its last kernel drop count, send nothing over UDP."""
        if self._socket_drops is not None:
            self._socket_drops_at_detach = self._socket_drops()
        self._sendto = _detached
        self.udp_port = 0
        self._socket_drops = None

    # ---- control plane ----

    def register(self) -> ev.VoiceSetupInfo:
        """A new voice session with a fresh unique source id and fresh keys: its set-up."""
        source_id = 0
        while source_id == 0 or source_id in self._members:
            source_id = secrets.randbits(32)
        return self._new_member(source_id)

    def rekey(self, source_id: int) -> ev.VoiceSetupInfo:
        """The same voice session for a new connection (a login that resumed the user's
        session): the same source id and active room, fresh keys. The old address, tunnel,
        replay window and counters go with the old keys, so nothing more is sent to the old
        client and nothing it seals is accepted. Listeners keep the source id they know, and
        a server mute stays."""
        old = self._members[source_id]  # KeyError: our own misuse
        room = old.room
        setup = self._new_member(source_id)
        self._members[source_id].room = room
        self._members[source_id].muted = old.muted  # a server mute outlives a reconnect
        if room is not None:
            self._rebuild(room)  # fan-out tuples held the old member object
        return setup

    def _new_member(self, source_id: int) -> ev.VoiceSetupInfo:
        client_key, server_key = new_key(self.cipher), new_key(self.cipher)
        self._members[source_id] = _Member(
            source_id,
            make_aead(self.cipher, client_key).decrypt,
            make_aead(self.cipher, server_key).encrypt,
        )
        return ev.VoiceSetupInfo(
            udp_port=self.udp_port,
            source_id=source_id,
            client_key=client_key,
            server_key=server_key,
            ping_interval_ms=round(self.ping_interval * 1000),
            cipher=self.cipher,
        )

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

    def set_muted(self, source_id: int, muted: bool) -> None:
        """Server-mute a member: its voice goes to nobody (dropped as `muted`), while it
        still hears its room. Effective at once; it lasts until unset, across rooms."""
        m = self._members[source_id]
        if m.muted != muted:
            m.muted = muted
            if m.room is not None:
                self._rebuild(m.room)

    def set_tunnel(self, source_id: int, send_nowait: TunnelSend | None) -> None:
        """Send this member's datagrams through the control connection (None: UDP again)."""
        self._members[source_id].tunnel = send_nowait

    def user_report(self, source_id: int) -> ev.VoiceStatsReport:
        """This user's counters, as the VoiceStats message reports them (rtt 0: unknown)."""
        m = self._members[source_id]
        rtt = m.rtt_ms if m.rtt_ms is not None else m.client_rtt_ms
        return ev.VoiceStatsReport(
            packets_in=m.packets_in,
            packets_out=m.packets_out,
            dropped={k: v for k, v in m.dropped.items() if v},
            rtt_ms=0.0 if rtt is None else rtt,
            transport=ev.VoiceTransport.UDP if m.tunnel is None else ev.VoiceTransport.TCP_TUNNEL,
            active_room=m.room or "",
        )

    def udp_address(self, source_id: int) -> Address | None:
        """Where this member's UDP datagrams go: learnt from its authenticated ones."""
        return self._members[source_id].addr

    def statistics(self) -> RelayStatistics:
        return RelayStatistics(
            members=len(self._members),
            rooms=len(self._rooms),
            datagrams_received=self._received,
            packets_in=self._packets_in,
            packets_out=self._packets_out,
            dropped=MappingProxyType({k: v for k, v in self._dropped.items() if v}),
            socket_drops=(
                self._socket_drops_at_detach if self._socket_drops is None else self._socket_drops()
            ),
            bytes_in=self._bytes_in,
            bytes_out=self._bytes_out,
        )

    def _rebuild(self, room_id: str) -> None:
        # Fan-out tuples are rebuilt on membership change so the hot path only iterates.
        ids = self._rooms.get(room_id, ())
        members = [self._members[i] for i in ids]
        for m in members:
            m.targets = () if m.muted else tuple(t for t in members if t is not m)

    def _drop(self, m: _Member | None, reason: DropReason) -> None:
        self._dropped[reason] += 1
        if m is not None:
            m.dropped[reason] += 1

    # ---- data plane ----

    def receive_tunnelled(self, source_id: int, datagram: bytes, now_ns: int) -> None:
        """A datagram from a VoiceTunnel message of this session's control connection."""
        m = self._members[source_id]  # KeyError: our own misuse, the session is gone
        claimed = claimed_source_id(datagram)
        if claimed != source_id:
            # Unreadable, or claims another source: it cannot authenticate as that one.
            self._received += 1
            self._bytes_in += len(datagram)
            self._drop(m, DropReason.AUTH_FAILED if claimed else DropReason.MALFORMED)
            return
        self.receive_datagram(datagram, None, now_ns)

    def receive_datagram(self, data: bytes, addr: Address | None, now_ns: int) -> None:
        """Handle one datagram from the UDP socket (`addr`) or a tunnel (None): the hot path.

        Locals and inlined steps on purpose: every attribute lookup and call here is paid
        50,000 times a second (docs/VOICE.md, "Hot path").
        """
        self._received += 1
        self._bytes_in += len(data)
        try:
            _vf, kind, source_id, _seq, _ts, counter = parse_untrusted_header(data)
        except InvalidDatagram as e:
            # Attributed to the source it claims, as for every drop before authentication.
            self._drop(self._members.get(e.source_id), e.reason)
            return
        m = self._members.get(source_id)
        if m is None:
            self._drop(None, DropReason.UNKNOWN_SOURCE)
            return
        if counter <= m.top:  # above the top is always new: skip the call (measured)
            verdict = m.check(counter)
            if verdict is not None:
                self._drop(m, verdict)
                return
        header = data[:HEADER_SIZE]
        try:
            plaintext = m.decrypt(NONCE.pack(CLIENT_TO_SERVER, counter), data[HEADER_SIZE:], header)
        except InvalidTag:
            self._drop(m, DropReason.AUTH_FAILED)
            return
        # Authentic: now it may move the replay window and the address.
        m.accept(counter)
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
            if not targets:  # off the hot path: alone, muted or nowhere
                if m.room is None:
                    self._drop(m, DropReason.NO_ROOM)
                elif m.muted:
                    self._drop(m, DropReason.MUTED)
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
                out_header = head + c.to_bytes(8, "big")
                out = out_header + r.encrypt(pack_nonce(SERVER_TO_CLIENT, c), plaintext, out_header)
                if tunnel is None:
                    try:
                        sendto(out, raddr)
                    except OSError:  # BlockingIOError: full buffer; never wait for room
                        self._drop(r, DropReason.SEND_BLOCKED)
                        continue
                elif tunnel(out) is False:
                    self._drop(r, DropReason.SEND_BLOCKED)
                    continue
                r.packets_out += 1
                sent += 1
            if sent:
                self._packets_out += sent
                self._bytes_out += sent * len(out)  # every copy has the same length
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
        header = HEADER.pack(_VF, kind, m.source_id, 0, 0, c)  # sequence, timestamp: 0
        out = header + m.encrypt(NONCE.pack(SERVER_TO_CLIENT, c), payload, header)
        if addr is None:
            if m.tunnel is None or m.tunnel(out) is False:
                self._drop(m, DropReason.SEND_BLOCKED)
                return
        else:
            try:
                self._sendto(out, addr)
            except OSError:
                self._drop(m, DropReason.SEND_BLOCKED)
                return
        m.packets_out += 1
        self._packets_out += 1
        self._bytes_out += len(out)

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
