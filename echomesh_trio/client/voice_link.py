"""One connection's voice transport: sealed datagrams over UDP, or tunnelled over TCP.

Made when the server's ``VoiceSetupInfo`` arrives and ended with the connection. It binds
our UDP address with a hello (repeated every ``HELLO_EVERY_S`` until acknowledged), pings
every ``ping_interval_ms`` on UDP whatever the transport, and lets the pure
``TransportSelector`` decide between UDP and the TCP tunnel: when UDP does not answer it
switches to the tunnel and tells the server (``ChooseVoiceTransport``); when UDP answers
again it switches back. Sending never blocks: a full socket buffer or a full tunnel queue
drops the datagram (and counts it); voice that waits is worth less than the next frame.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Final

import trio

from echomesh_trio.audio.sender import VoicePacket
from echomesh_trio.client.control import ConnectionClosed, ControlConnection
from echomesh_trio.protocol import events as ev
from echomesh_trio.voice.client import (
    HelloAcknowledged,
    PingReceived,
    PongReceived,
    TransportSelector,
    VoiceFrame,
    VoiceSession,
)
from echomesh_trio.voice.packet import InvalidDatagram

log = logging.getLogger("echomesh.client")

HELLO_EVERY_S: Final = 0.5
TICK_S: Final = 0.5
TUNNEL_QUEUE: Final = 64
"""Tunnelled datagrams waiting for the control connection (1.3 s of one stream)."""
RECEIVE_SIZE: Final = 2048

FrameHandler = Callable[[VoiceFrame], None]


class VoiceLink:
    def __init__(
        self,
        setup: ev.VoiceSetupInfo,
        conn: ControlConnection,
        host: str,
        on_frame: FrameHandler,
        *,
        udp_port: int | None = None,
    ) -> None:
        self.setup = setup
        self.session = VoiceSession.from_setup(setup)
        self.selector = TransportSelector(trio.current_time())
        self._conn = conn
        self._host = host
        self._udp_port = setup.udp_port if udp_port is None else udp_port
        self._on_frame = on_frame
        self._sock: socket.socket | None = None
        self._changes_send, self._changes_receive = trio.open_memory_channel[ev.VoiceTransport](8)
        self._tunnel_send, self._tunnel_receive = trio.open_memory_channel[bytes](TUNNEL_QUEUE)
        self._hello_acked = False
        self.sent_bytes = 0
        self.received_bytes = 0
        self.sent_packets = 0
        self.dropped_sends = 0
        self.invalid = 0
        self.transport_changes = 0

    @property
    def transport(self) -> ev.VoiceTransport:
        return self.selector.transport

    @property
    def rtt_ms(self) -> float | None:
        return self.session.rtt_ms

    # ---------------------------------------------------------------- running
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the link until cancelled (the connection's nursery does that)."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        raw = socket.socket(family, socket.SOCK_DGRAM)
        raw.setblocking(False)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            await sock.connect((self._host, self._udp_port))
            self._sock = raw
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive_udp, sock)
                nursery.start_soon(self._probe)
                nursery.start_soon(self._announce)
                nursery.start_soon(self._send_tunnelled)
                task_status.started()
        finally:
            self._sock = None
            sock.close()

    async def _receive_udp(self, sock: trio.socket.SocketType) -> None:
        """Wait until readable, then take every datagram waiting without awaiting again:
        one Trio wake-up for a burst instead of one per datagram (four speakers send 200
        datagrams a second)."""
        raw = self._sock
        assert raw is not None
        while True:
            await trio.lowlevel.wait_readable(raw)
            for _ in range(64):
                try:
                    data = raw.recv(RECEIVE_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # ICMP port unreachable and the like: no UDP there
                    if exc.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                        log.debug("voice socket: %s", exc)
                    break
                self.received_bytes += len(data)
                self._datagram(data, via_udp=True)
            else:
                await trio.lowlevel.checkpoint()  # a flood: let the rest of the client run

    async def _probe(self) -> None:
        """Hello until acknowledged, then a ping every ping interval; ticks the selector."""
        interval = max(0.5, self.setup.ping_interval_ms / 1000)
        next_probe = trio.current_time()
        while True:
            now = trio.current_time()
            if now >= next_probe:
                datagram = (
                    self.session.ping(time.monotonic_ns())
                    if self._hello_acked
                    else self.session.hello(time.monotonic_ns())
                )
                self._send(datagram, udp=True)
                self._changed(self.selector.ping_sent(now))
                next_probe = now + (interval if self._hello_acked else HELLO_EVERY_S)
            self._changed(self.selector.tick(now))
            await trio.sleep(min(TICK_S, max(0.0, next_probe - trio.current_time())))

    def _changed(self, change: ev.VoiceTransport | None) -> None:
        if change is None:
            return
        self.transport_changes += 1
        log.info("voice now goes over %s", change.name)
        try:
            self._changes_send.send_nowait(change)
        except trio.WouldBlock:  # flapping faster than we can say so: the last one counts
            pass

    async def _announce(self) -> None:
        """Tell the server every transport change, in order."""
        async for change in self._changes_receive:
            try:
                await self._conn.send(ev.ChooseVoiceTransport(change))
            except ConnectionClosed:
                return  # the connection's reader notices and ends us

    async def _send_tunnelled(self) -> None:
        async for datagram in self._tunnel_receive:
            try:
                await self._conn.send(ev.VoiceDatagram(datagram))
            except ConnectionClosed:
                return

    # ---------------------------------------------------------------- datagrams
    def tunnelled(self, datagram: bytes) -> None:
        """A datagram the server sent inside the control connection."""
        self.received_bytes += len(datagram)
        self._datagram(datagram, via_udp=False)

    def _datagram(self, data: bytes, *, via_udp: bool) -> None:
        try:
            event = self.session.receive_untrusted(data, time.monotonic_ns())
        except InvalidDatagram:
            self.invalid += 1
            return
        if isinstance(event, VoiceFrame):
            self._on_frame(event)
        elif isinstance(event, PingReceived):
            self._send(event.reply, udp=via_udp)
        elif isinstance(event, HelloAcknowledged | PongReceived) and via_udp:
            self._hello_acked = True
            self._changed(self.selector.pong_received(trio.current_time()))

    def send_voice(self, packet: VoicePacket) -> None:
        datagram = self.session.voice(
            packet.frame,
            sequence=packet.sequence,
            timestamp=packet.timestamp,
            end_of_spurt=packet.end_of_spurt,
            redundant=packet.redundant,
        )
        self.sent_packets += 1
        self._send(datagram, udp=self.selector.transport is ev.VoiceTransport.UDP)

    def _send(self, datagram: bytes, *, udp: bool) -> None:
        if udp:
            self._udp_send(datagram)
            return
        try:
            self._tunnel_send.send_nowait(datagram)
            self.sent_bytes += len(datagram)
        except trio.WouldBlock:
            self.dropped_sends += 1

    def _udp_send(self, datagram: bytes) -> None:
        if self._sock is None:
            return
        try:
            self._sock.send(datagram)  # non-blocking: never wait for voice
            self.sent_bytes += len(datagram)
        except (BlockingIOError, InterruptedError):
            self.dropped_sends += 1
        except OSError:  # ECONNREFUSED from an earlier ICMP error, and the like
            self.dropped_sends += 1
