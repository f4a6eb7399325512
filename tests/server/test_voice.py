"""Voice through the real server: set-up over the control channel, UDP relay, TCP tunnel."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from echomesh_trio.client.control import ControlConnection
from echomesh_trio.media import FRAME_SAMPLES
from echomesh_trio.protocol import events as ev
from echomesh_trio.server.app import EchoMeshServer, ServerInfo
from echomesh_trio.server.service import VoiceControl
from echomesh_trio.server.voice_control import RelayControl
from echomesh_trio.voice.client import (
    HelloAcknowledged,
    PingReceived,
    PongReceived,
    VoiceFrame,
    VoiceSession,
)
from echomesh_trio.voice.seal import DEFAULT_CIPHER
from tests.server.helpers import connect, join, make_settings


class Talker:
    """A logged-in user with a control connection, a voice session and a UDP socket."""

    def __init__(self, name: str, conn: ControlConnection, setup: ev.VoiceSetupInfo) -> None:
        self.name = name
        self.conn = conn
        self.setup = setup
        self.voice = VoiceSession.from_setup(setup)
        self.udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        self.seq = 0

    async def bind_udp(self) -> None:
        await self.udp.bind(("127.0.0.1", 0))
        await self.udp.sendto(
            self.voice.hello(time.monotonic_ns()), ("127.0.0.1", self.setup.udp_port)
        )
        with trio.fail_after(5):
            while True:
                data, _ = await self.udp.recvfrom(2048)
                if isinstance(
                    self.voice.receive_untrusted(data, time.monotonic_ns()), HelloAcknowledged
                ):
                    return

    def datagram(self, payload: bytes) -> bytes:
        self.seq += 1
        return self.voice.voice(payload, sequence=self.seq, timestamp=self.seq * FRAME_SAMPLES)

    async def say_udp(self, payload: bytes) -> None:
        await self.udp.sendto(self.datagram(payload), ("127.0.0.1", self.setup.udp_port))

    async def hear_udp(self) -> VoiceFrame:
        with trio.fail_after(5):
            while True:
                data, _ = await self.udp.recvfrom(2048)
                event = self.voice.receive_untrusted(data, time.monotonic_ns())
                if isinstance(event, VoiceFrame):
                    return event

    async def heard_before_pong(self) -> list[VoiceFrame]:
        """Voice reaching us before the answer to a UDP ping sent now. The relay handles
        datagrams in arrival order and loopback keeps order, so this is everything due."""
        server = ("127.0.0.1", self.setup.udp_port)
        await self.udp.sendto(self.voice.ping(time.monotonic_ns()), server)
        frames = []
        with trio.fail_after(5):
            while True:
                data, _ = await self.udp.recvfrom(2048)
                event = self.voice.receive_untrusted(data, time.monotonic_ns())
                if isinstance(event, PongReceived):
                    return frames
                if isinstance(event, PingReceived):  # the relay's own ping
                    await self.udp.sendto(event.reply, server)
                elif isinstance(event, VoiceFrame):
                    frames.append(event)

    async def hear_tunnel(self) -> VoiceFrame:
        with trio.fail_after(5):
            while True:
                tunnelled = await self.conn.receive_matching(ev.VoiceDatagram)
                event = self.voice.receive_untrusted(tunnelled.datagram, time.monotonic_ns())
                if isinstance(event, VoiceFrame):
                    return event


async def _start(nursery: trio.Nursery, tmp_path: Path) -> ServerInfo:
    server = EchoMeshServer(make_settings(tmp_path), voice=RelayControl())
    info: ServerInfo = await nursery.start(server.serve)
    assert info.udp_port == info.port  # the same number by default
    return info


async def _talker(info: ServerInfo, name: str) -> Talker:
    conn = await connect(info)
    result = await conn.login(name, "pw")
    assert result.ok
    setup = await conn.receive_matching(ev.VoiceSetupInfo)
    assert setup.udp_port == info.udp_port and len(setup.client_key) == 32
    assert setup.client_key != setup.server_key and setup.source_id != 0
    talker = Talker(name, conn, setup)
    await talker.bind_udp()
    return talker


async def test_room_members_hear_each_other_and_never_themselves(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await _start(nursery, tmp_path)
    a, b, c, d = [await _talker(info, n) for n in ("ann", "ben", "cat", "dov")]
    snap = await join(a.conn, "v", create=True)
    assert snap.members[0].source_id == a.setup.source_id  # members carry their voice ids
    for t in (b, c):
        await join(t.conn, "v")
    await join(d.conn, "elsewhere", create=True)
    for t in (a, b, c):  # the room joined last becomes the active voice room
        assert (await t.conn.receive_matching(ev.VoiceRoomChanged)).room_id == "v"

    await a.say_udp(b"from ann")
    for t in (b, c):
        frame = await t.hear_udp()
        assert (frame.source_id, frame.frame) == (a.setup.source_id, b"from ann")
    await b.say_udp(b"from ben")
    first_for_a = await a.hear_udp()  # ann's own packet never came back to her
    assert (first_for_a.source_id, first_for_a.frame) == (b.setup.source_id, b"from ben")
    assert (await c.hear_udp()).frame == b"from ben"
    await d.say_udp(b"alone")
    assert await d.heard_before_pong() == []  # alone in the room: nothing comes back

    # Leaving takes effect at once, both ways.
    await c.conn.send(ev.LeaveRoom("v"))
    await c.conn.receive_matching(ev.MemberLeft)
    await c.say_udp(b"after leaving")
    await a.say_udp(b"ann again")
    assert (await b.hear_udp()).frame == b"ann again"  # not "after leaving"
    assert await c.heard_before_pong() == []  # cat no longer hears the room

    await c.conn.send(ev.RequestVoiceStats(), 3)
    stats = await c.conn.receive_matching(ev.VoiceStatsReport, request_id=3)
    assert stats.packets_in >= 1
    assert stats.dropped.get("no_room", 0) >= 1 and stats.active_room == ""


async def test_tunnelled_and_udp_members_hear_each_other(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await _start(nursery, tmp_path)
    a, b = await _talker(info, "ann"), await _talker(info, "ben")
    await join(a.conn, "v", create=True)
    await join(b.conn, "v")
    await b.conn.send(ev.ChooseVoiceTransport(ev.VoiceTransport.TCP_TUNNEL))
    await b.conn.send(ev.RequestVoiceStats())
    assert (
        await b.conn.receive_matching(ev.VoiceStatsReport)
    ).transport == ev.VoiceTransport.TCP_TUNNEL

    await a.say_udp(b"to the tunnel")
    frame = await b.hear_tunnel()
    assert (frame.source_id, frame.frame) == (a.setup.source_id, b"to the tunnel")
    await b.conn.send(ev.VoiceDatagram(b.datagram(b"from the tunnel")))
    frame = await a.hear_udp()
    assert (frame.source_id, frame.frame) == (b.setup.source_id, b"from the tunnel")

    # Back to UDP.
    await b.conn.send(ev.ChooseVoiceTransport(ev.VoiceTransport.UDP))
    await b.conn.send(ev.RequestVoiceStats())  # its reply means the switch took effect
    assert (await b.conn.receive_matching(ev.VoiceStatsReport)).transport == ev.VoiceTransport.UDP
    await a.say_udp(b"udp again")
    assert (await b.hear_udp()).frame == b"udp again"


async def test_choosing_the_active_room(nursery: trio.Nursery, tmp_path: Path) -> None:
    info = await _start(nursery, tmp_path)
    a, b = await _talker(info, "ann"), await _talker(info, "ben")
    for room in ("one", "two"):
        await join(a.conn, room, create=True)
        await join(b.conn, room)
    await a.conn.send(ev.SetVoiceRoom("one"), 8)
    reply = await a.conn.receive_matching(ev.VoiceRoomChanged, request_id=8)
    assert reply.room_id == "one"
    await a.say_udp(b"in one")  # ben's active room is "two": he hears nothing
    await b.conn.send(ev.SetVoiceRoom("one"), 5)
    await b.conn.receive_matching(ev.VoiceRoomChanged, request_id=5)
    await a.say_udp(b"both in one")
    assert (await b.hear_udp()).frame == b"both in one"
    await a.conn.send(ev.SetVoiceRoom("nowhere"), 9)
    err = await a.conn.receive_matching(ev.ErrorReply, request_id=9)
    assert err.code == ev.ErrorCode.NOT_IN_ROOM


def test_control_adapter_speaks_the_control_services_types() -> None:
    control: VoiceControl = RelayControl()  # mypy checks the protocol is satisfied
    setup = control.register(7)
    assert setup.source_id and len(setup.client_key) == 32 and setup.ping_interval_ms == 5000
    assert setup.cipher == DEFAULT_CIPHER and "client_key" not in repr(setup)
    control.set_active_room(setup.source_id, "r")
    control.set_transport(setup.source_id, ev.VoiceTransport.TCP_TUNNEL, lambda d: True)
    report = control.user_report(setup.source_id)
    assert report.transport == ev.VoiceTransport.TCP_TUNNEL and report.active_room == "r"
    control.set_active_room(setup.source_id, "")  # the control plane's "none"
    assert control.user_report(setup.source_id).active_room == ""
    control.unregister(setup.source_id)
