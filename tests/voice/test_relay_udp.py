"""The relay over real UDP sockets on 127.0.0.1.

No timing assertions: to show that something did NOT arrive, a client sends a ping after the
traffic in question and waits for the pong. The relay handles datagrams in arrival order and
loopback keeps order, so anything due to that client would have arrived before the pong.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator

import pytest
import trio

from echomesh_trio.media import FRAME_SAMPLES
from echomesh_trio.protocol.events import VoiceTransport
from echomesh_trio.server.voice_udp import serve_udp
from echomesh_trio.voice.client import (
    HelloAcknowledged,
    PingReceived,
    PongReceived,
    VoiceEvent,
    VoiceFrame,
    VoiceSession,
)
from echomesh_trio.voice.packet import MAX_DATAGRAM_SIZE
from echomesh_trio.voice.relay import VoiceRelay

BUDGET_S = 5.0  # per wait; a hard budget, not a speed goal


class UdpClient:
    def __init__(self, relay: VoiceRelay, port: int) -> None:
        self.session = VoiceSession.from_setup(relay.register())
        self.source_id = self.session.source_id
        self.server = ("127.0.0.1", port)
        self.sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.seq = 0

    async def connect(self) -> None:
        await self.sock.bind(("127.0.0.1", 0))
        await self.sock.sendto(self.session.hello(time.monotonic_ns()), self.server)
        assert isinstance(await self.next_event(), HelloAcknowledged)

    async def speak(self, frame: bytes) -> None:
        self.seq += 1
        dg = self.session.voice(frame, sequence=self.seq, timestamp=self.seq * FRAME_SAMPLES)
        await self.sock.sendto(dg, self.server)

    async def next_event(self) -> VoiceEvent:
        with trio.fail_after(BUDGET_S):
            while True:
                data = await self.sock.recv(MAX_DATAGRAM_SIZE + 1)
                ev = self.session.receive_untrusted(data, time.monotonic_ns())
                if isinstance(ev, PingReceived):  # the relay's own pings: answer, go on
                    await self.sock.sendto(ev.reply, self.server)
                    continue
                return ev

    async def heard_until_pong(self) -> list[VoiceFrame]:
        """Every voice frame that reaches us before the answer to a ping sent now."""
        await self.sock.sendto(self.session.ping(time.monotonic_ns()), self.server)
        frames = []
        while not isinstance(ev := await self.next_event(), PongReceived):
            assert isinstance(ev, VoiceFrame)
            frames.append(ev)
        return frames


@pytest.fixture
async def relay_port(nursery: trio.Nursery) -> AsyncIterator[tuple[VoiceRelay, int]]:
    relay = VoiceRelay()
    port = await nursery.start(serve_udp, relay, "127.0.0.1", 0)
    yield relay, port


async def _clients(relay: VoiceRelay, port: int, rooms: list[str | None]) -> list[UdpClient]:
    clients = []
    for room in rooms:
        c = UdpClient(relay, port)
        await c.connect()
        relay.set_active_room(c.source_id, room)
        clients.append(c)
    return clients


async def test_three_in_a_room_hear_the_other_two_and_another_room_nothing(
    relay_port: tuple[VoiceRelay, int],
) -> None:
    relay, port = relay_port
    a, b, c, d = await _clients(relay, port, ["lobby", "lobby", "lobby", "other"])
    for x in (a, b, c):
        await x.speak(f"{x.source_id}".encode())
    for x in (a, b, c):
        heard = await x.heard_until_pong()
        others = sorted(y.source_id for y in (a, b, c) if y is not x)
        assert sorted(f.source_id for f in heard) == others
        assert all(f.frame == str(f.source_id).encode() for f in heard)
    assert await d.heard_until_pong() == []
    assert relay.statistics().dropped == {}
    assert relay.statistics().socket_drops in (0, None)  # None off Linux


async def test_leave_and_join_take_effect_immediately(
    relay_port: tuple[VoiceRelay, int],
) -> None:
    relay, port = relay_port
    a, b = await _clients(relay, port, ["r", "r"])
    relay.set_active_room(b.source_id, None)
    await a.speak(b"after leave")
    assert await b.heard_until_pong() == []
    await b.speak(b"from outside")
    assert await a.heard_until_pong() == []
    relay.set_active_room(b.source_id, "r")
    await a.speak(b"after join")
    assert [f.frame for f in await b.heard_until_pong()] == [b"after join"]
    assert relay.user_report(b.source_id).dropped == {"no_room": 1}


async def test_udp_and_tunnelled_members_hear_each_other(
    relay_port: tuple[VoiceRelay, int],
) -> None:
    relay, port = relay_port
    (a,) = await _clients(relay, port, ["r"])
    b = VoiceSession.from_setup(relay.register())
    send, receive = trio.open_memory_channel[bytes](4)

    def send_nowait(datagram: bytes) -> bool:
        try:
            send.send_nowait(datagram)
        except trio.WouldBlock:
            return False
        return True

    relay.set_tunnel(b.source_id, send_nowait)
    relay.set_active_room(b.source_id, "r")
    assert relay.user_report(b.source_id).transport is VoiceTransport.TCP_TUNNEL
    relay.receive_tunnelled(b.source_id, b.voice(b"via tcp", sequence=1, timestamp=0), 0)
    assert [f.frame for f in await a.heard_until_pong()] == [b"via tcp"]
    for i in range(6):  # the bounded tunnel queue takes 4; the rest are dropped, counted
        await a.speak(b"via udp %d" % i)
    await a.heard_until_pong()
    frames = []
    while True:
        try:
            frames.append(b.receive_untrusted(receive.receive_nowait(), 0))
        except trio.WouldBlock:
            break
    assert [f.frame for f in frames if isinstance(f, VoiceFrame)] == [
        b"via udp %d" % i for i in range(4)
    ]
    assert relay.user_report(b.source_id).dropped == {"send_blocked": 2}


async def test_a_receiver_that_never_reads_does_not_block_the_others(
    relay_port: tuple[VoiceRelay, int],
) -> None:
    relay, port = relay_port
    a, b, stuck = await _clients(relay, port, ["r", "r", "r"])
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # kernel minimum
    for i in range(90):  # under the rate limit of 100/s
        await a.speak(b"%d" % i + b"\0" * 200)
    assert len(await b.heard_until_pong()) == 90
    # The relay sent them all; the kernel dropped what did not fit in stuck's buffer.
    assert relay.user_report(stuck.source_id).packets_out >= 90


async def test_address_is_learnt_from_authenticated_datagrams_and_rebinds(
    relay_port: tuple[VoiceRelay, int],
) -> None:
    relay, port = relay_port
    a, b = await _clients(relay, port, ["r", "r"])
    old = b.sock
    b.sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # as after a NAT rebind
    await b.sock.bind(("127.0.0.1", 0))
    await a.speak(b"before")
    assert [f.frame for f in await b.heard_until_pong()] == []  # the ping rebinds b
    await a.speak(b"after")
    assert [f.frame for f in await b.heard_until_pong()] == [b"after"]
    assert relay.udp_address(b.source_id) == b.sock.getsockname()
    # A forged datagram from elsewhere cannot move it.
    forger = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await forger.sendto(a.session.voice(b"x", sequence=1, timestamp=0)[:-1] + b"!", b.server)
    await a.heard_until_pong()
    assert relay.udp_address(b.source_id) == b.sock.getsockname()
    old.close()
    forger.close()


async def test_server_pings_measure_rtt(nursery: trio.Nursery) -> None:
    relay = VoiceRelay(ping_interval=0.05)
    port = await nursery.start(serve_udp, relay, "127.0.0.1", 0)
    (a,) = await _clients(relay, port, ["r"])
    with trio.fail_after(BUDGET_S):
        while True:  # the relay's next ping: answer it
            data = await a.sock.recv(MAX_DATAGRAM_SIZE + 1)
            ping = a.session.receive_untrusted(data, time.monotonic_ns())
            if isinstance(ping, PingReceived):
                break
    await a.sock.sendto(ping.reply, a.server)
    # Our own ping's pong comes after the relay handled our answer (arrival order).
    await a.heard_until_pong()
    assert relay.user_report(a.source_id).rtt_ms > 0


async def test_detach_keeps_the_kernel_drop_count_and_forgets_the_port() -> None:
    relay = VoiceRelay()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_udp, relay, "127.0.0.1", 0)
        assert relay.udp_port != 0 and relay.register().udp_port == relay.udp_port
        nursery.cancel_scope.cancel()
    assert relay.udp_port == 0
    assert relay.statistics().socket_drops in (0, None)  # None off Linux
