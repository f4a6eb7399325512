"""The client's sans-IO session and the UDP/tunnel decision, with time passed in."""

from __future__ import annotations

import pytest

from echomesh_trio.protocol.events import VoiceTransport
from echomesh_trio.voice.client import (
    HelloAcknowledged,
    PingReceived,
    PongReceived,
    TransportSelector,
    VoiceFrame,
    VoiceSession,
)
from echomesh_trio.voice.packet import Flags, InvalidDatagram
from echomesh_trio.voice.relay import VoiceRelay


def test_session_round_trip_through_the_relay_with_rtt() -> None:
    sent: list[bytes] = []
    relay = VoiceRelay()
    relay.attach(lambda d, a: sent.append(d))
    creds = relay.register()
    me = VoiceSession.from_setup(creds)
    relay.receive_datagram(me.hello(1_000_000), ("127.0.0.1", 9), 2_000_000)
    ack = me.receive_untrusted(sent.pop(), 5_000_000)
    assert ack == HelloAcknowledged(rtt_ms=4.0)
    relay.receive_datagram(me.ping(10_000_000), ("127.0.0.1", 9), 11_000_000)
    pong = me.receive_untrusted(sent.pop(), 12_000_000)
    assert isinstance(pong, PongReceived) and pong.rtt_ms == 2.0
    # The ping carried our estimate: the server knows the RTT before its own pings.
    assert relay.user_report(creds.source_id).rtt_ms == 4.0


def test_client_accepts_only_what_the_server_sealed_for_it() -> None:
    sent: dict[int, list[bytes]] = {}
    relay = VoiceRelay()
    relay.attach(lambda d, a: sent.setdefault(a[1], []).append(d))
    a, b, c = (VoiceSession.from_setup(relay.register()) for i in range(3))
    for port, s in enumerate((a, b, c)):
        relay.receive_datagram(s.hello(1), ("127.0.0.1", port), 1)
        relay.set_active_room(s.source_id, "r")
    sent.clear()
    relay.receive_datagram(
        a.voice(
            b"hi", sequence=5, timestamp=4800, end_of_spurt=True, redundant=[b"prev", b"older"]
        ),
        ("127.0.0.1", 0),
        2,
    )
    ((for_b,), (for_c,)) = sent[1], sent[2]
    ev = b.receive_untrusted(for_b, 3)
    flags = Flags.END_OF_SPURT | Flags.REDUNDANT
    assert ev == VoiceFrame(a.source_id, 5, 4800, flags, b"hi", (b"prev", b"older"))
    with pytest.raises(InvalidDatagram):
        b.receive_untrusted(for_b, 3)  # replayed
    with pytest.raises(InvalidDatagram):
        b.receive_untrusted(for_c, 3)  # sealed for c
    # A member's own sealed datagram is not something the server sealed.
    with pytest.raises(InvalidDatagram):
        b.receive_untrusted(a.voice(b"x", sequence=1, timestamp=0), 3)
    assert c.receive_untrusted(for_c, 3) == ev


def test_answers_server_pings() -> None:
    sent: list[bytes] = []
    relay = VoiceRelay()
    relay.attach(lambda d, a: sent.append(d))
    creds = relay.register()
    me = VoiceSession.from_setup(creds)
    relay.receive_datagram(me.hello(1), ("127.0.0.1", 9), 1)
    sent.clear()
    relay.ping_members(100_000_000)
    ev = me.receive_untrusted(sent.pop(), 0)
    assert isinstance(ev, PingReceived)
    relay.receive_datagram(ev.reply, ("127.0.0.1", 9), 103_000_000)
    assert relay.user_report(creds.source_id).rtt_ms == 3.0


def test_no_pong_after_setup_falls_back_to_the_tunnel_then_recovers() -> None:
    sel = TransportSelector(0.0, setup_timeout_s=3.0)
    assert sel.ping_sent(0.0) is None
    assert sel.tick(2.9) is None
    assert sel.tick(3.0) is VoiceTransport.TCP_TUNNEL
    assert sel.transport is VoiceTransport.TCP_TUNNEL
    # Pings keep going over UDP; two answered in a row bring UDP back.
    sel.ping_sent(5.0)
    assert sel.pong_received(5.01) is None
    sel.ping_sent(10.0)
    assert sel.pong_received(10.01) is VoiceTransport.UDP


def test_pongs_stopping_falls_back_and_a_single_pong_does_not_flap() -> None:
    sel = TransportSelector(0.0)
    sel.ping_sent(0.0)
    sel.pong_received(0.02)
    assert sel.tick(100.0) is None  # no ping outstanding: silence alone is no evidence
    sel.ping_sent(100.0)
    assert sel.tick(104.0) is None  # one missed ping is tolerated
    sel.ping_sent(105.0)
    assert sel.tick(108.5) is VoiceTransport.TCP_TUNNEL
    sel.ping_sent(110.0)
    assert sel.pong_received(110.05) is None
    sel.ping_sent(115.0)
    assert sel.tick(118.5) is None  # missed again: the count of answered pings restarts
    sel.ping_sent(120.0)
    assert sel.pong_received(120.05) is None
    sel.ping_sent(125.0)
    assert sel.pong_received(125.05) is VoiceTransport.UDP
