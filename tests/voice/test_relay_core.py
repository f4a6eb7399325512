"""The relay's hot path driven directly (no sockets): routing, drops by reason, rate limit."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echomesh_trio.protocol.events import VoiceTransport
from echomesh_trio.voice.client import VoiceFrame, VoiceSession
from echomesh_trio.voice.packet import (
    HEADER_SIZE,
    MAX_DATAGRAM_SIZE,
    Flags,
    InvalidDatagram,
    Kind,
    parse_untrusted,
)
from echomesh_trio.voice.relay import VoiceRelay
from echomesh_trio.voice.seal import CLIENT_TO_SERVER, Opener, Sealer, new_key

from .harness import Rig, make_rig


def test_room_of_three_hears_the_others_and_never_itself() -> None:
    rig = make_rig()
    a, b, c = (rig.join(i, "lobby") for i in range(3))
    other = rig.join(9, "elsewhere")
    for sid in (a, b, c):
        rig.speak(sid, f"from {sid}".encode())
    heard = rig.heard()
    assert set(heard) == {a, b, c}
    for sid in (a, b, c):
        assert sorted(f.source_id for f in heard[sid]) == sorted({a, b, c} - {sid})
        for f in heard[sid]:
            assert f.frame == f"from {f.source_id}".encode()
    assert other not in heard
    assert rig.relay.user_report(a).packets_out == 1 + 2  # hello-ack, b and c
    assert rig.relay.statistics().packets_out == 4 + 6  # hello-acks, voice


def test_leave_and_join_take_effect_immediately() -> None:
    rig = make_rig()
    a, b, c = (rig.join(i, "lobby") for i in range(3))
    rig.relay.set_active_room(c, None)
    rig.speak(a)
    rig.speak(c)
    assert set(rig.heard()) == {b}
    assert rig.relay.user_report(c).dropped == {"no_room": 1}
    rig.relay.set_active_room(c, "lobby")
    rig.speak(a)
    assert set(rig.heard()) == {b, c}
    rig.relay.set_active_room(b, "side")  # switching rooms leaves the old one
    rig.speak(a)
    assert set(rig.heard()) == {c}
    rig.relay.unregister(c)
    rig.speak(a)
    assert rig.heard() == {}
    assert rig.relay.user_report(b).active_room == "side"


def test_a_muted_member_still_hears_and_is_heard_by_nobody() -> None:
    rig = make_rig()
    a, b, c = (rig.join(i, "lobby") for i in range(3))
    rig.relay.set_muted(a, True)
    rig.speak(a)
    rig.speak(b)
    assert set(rig.heard()) == {a, c}  # b's voice reaches a and c; a's reaches nobody
    assert rig.relay.user_report(a).dropped == {"muted": 1}
    rig.relay.set_active_room(a, "side")  # the mute follows the member
    rig.relay.set_active_room(b, "side")
    rig.speak(a)
    assert rig.heard() == {}
    rig.relay.set_muted(a, False)
    rig.speak(a)
    assert set(rig.heard()) == {b}
    rig.relay.set_muted(b, True)
    setup = rig.relay.rekey(b)  # b's client reconnects: the mute stays
    rig.sessions[b] = VoiceSession.from_setup(setup)
    rig.deliver(b, rig.sessions[b].hello(rig.now_ns))
    rig.sent.clear()
    rig.speak(b)
    rig.speak(a)
    assert set(rig.heard()) == {b}  # b hears a; nobody hears b
    assert rig.relay.user_report(b).dropped == {"muted": 1}


def _reasons(relay: VoiceRelay) -> dict[str, int]:
    return dict(relay.statistics().dropped)


def test_forged_replayed_truncated_garbled_oversize_are_dropped_and_counted() -> None:
    rig = make_rig()
    a, b, _ = (rig.join(i, "lobby") for i in range(3))
    good = rig.speak(a)
    rig.sent.clear()

    # Replayed, from the right address or another one.
    rig.deliver(a, good)
    rig.relay.receive_datagram(good, ("10.0.0.1", 5), rig.now_ns)
    # b speaking as a (b's key, a's source id); an outsider with its own key.
    # (Forgers pick fresh counters: a stale one is already dropped as replayed before auth.)
    b_sealer = Sealer(rig.relay.cipher, rig.credentials[b].client_key, CLIENT_TO_SERVER)
    b_sealer.counter = outsider_counter = 1000
    rig.deliver(b, b_sealer.seal(Kind.VOICE, a, b"forged"))
    outsider = Sealer(rig.relay.cipher, new_key(rig.relay.cipher), CLIENT_TO_SERVER)
    outsider.counter = outsider_counter
    rig.deliver(b, outsider.seal(Kind.VOICE, a, b"forged"))
    rig.deliver(b, outsider.seal(Kind.VOICE, 12345, b"unknown source"))
    # Truncated, garbled, oversize.
    fresh = rig.sessions[a].voice(b"x", sequence=9, timestamp=0)
    rig.deliver(a, fresh[: HEADER_SIZE + 3])
    garbled = bytearray(fresh)
    garbled[-1] ^= 0x55
    rig.deliver(a, bytes(garbled))
    rig.deliver(a, fresh + b"\0" * MAX_DATAGRAM_SIZE)

    assert rig.sent == []
    assert _reasons(rig.relay) == {
        "replayed": 2,
        "auth_failed": 3,
        "unknown_source": 1,
        "malformed": 1,
        "oversize": 1,
    }
    # Everything but the unknown source claimed a's id: counted against a too.
    assert rig.relay.user_report(a).dropped == {
        "replayed": 2,
        "auth_failed": 3,
        "malformed": 1,
        "oversize": 1,
    }
    # The real packet still goes through afterwards (nothing moved the replay window).
    rig.deliver(a, fresh)
    assert len(rig.heard()[b]) == 1


def test_too_old_is_dropped() -> None:
    rig = make_rig()
    a, _ = rig.join(1, "r"), rig.join(2, "r")
    old = rig.sessions[a].voice(b"x", sequence=1, timestamp=0)
    for _ in range(200):
        rig.sessions[a].voice(b"skipped", sequence=1, timestamp=0)
    rig.speak(a)
    rig.deliver(a, old)
    assert _reasons(rig.relay) == {"too_old": 1}


def test_rate_limit_drops_above_the_limit_per_second() -> None:
    rig = make_rig(max_packets_per_second=10)
    a, b = rig.join(1, "r"), rig.join(2, "r")
    rig.now_ns += 2_000_000_000  # a new rate period
    for _ in range(15):
        rig.speak(a)  # 1 ms apart: all inside one second
    assert len(rig.heard()[b]) == 10
    assert rig.relay.user_report(a).dropped == {"rate_limited": 5}
    rig.now_ns += 1_000_000_000
    rig.speak(a)
    assert len(rig.heard()[b]) == 1


def test_full_send_buffer_drops_and_counts_instead_of_blocking() -> None:
    def full(data: bytes, addr: object) -> None:
        raise BlockingIOError

    relay = VoiceRelay()
    relay.attach(full)
    rig = Rig(relay)
    a, b, c = (rig.join(i, "r") for i in range(3))
    rig.speak(a)
    # Its hello-ack and a's voice packet.
    assert relay.user_report(b).dropped == {"send_blocked": 2}
    assert relay.user_report(c).dropped == {"send_blocked": 2}
    assert relay.statistics().packets_out == 0


def test_tunnel_carries_a_members_datagrams_and_reports_full_queue() -> None:
    rig = make_rig()
    a, b = rig.join(1, "r"), rig.join(2, "r")
    queue: list[bytes] = []

    def tunnel(datagram: bytes) -> bool:
        if queue:
            return False  # a queue of one, already full
        queue.append(datagram)
        return True

    rig.relay.set_tunnel(b, tunnel)
    rig.speak(a)
    rig.speak(a)
    assert len(queue) == 1  # the second one was refused by the tunnel
    assert rig.relay.user_report(b).dropped == {"send_blocked": 1}
    assert rig.relay.user_report(b).transport is VoiceTransport.TCP_TUNNEL
    # b speaks through the tunnel; a (UDP) hears it.
    rig.relay.receive_tunnelled(
        b, rig.sessions[b].voice(b"tcp", sequence=1, timestamp=0), rig.now_ns
    )
    assert [f.frame for f in rig.heard()[a]] == [b"tcp"]
    # A tunnel session cannot inject another source's datagrams, even validly sealed ones.
    rig.relay.receive_tunnelled(b, rig.sessions[a].voice(b"x", sequence=2, timestamp=0), rig.now_ns)
    assert rig.sent == []
    rig.relay.set_tunnel(b, None)
    rig.speak(a)
    assert set(rig.heard()) == {b}


def test_ping_is_answered_on_the_path_it_came_by_and_rtt_measured() -> None:
    rig = make_rig()
    a = rig.join(1, "r")
    rig.relay.ping_members(rig.now_ns)
    ((ping, _addr),) = rig.sent
    rig.sent.clear()
    ev = rig.sessions[a].receive_untrusted(ping, rig.now_ns)
    rig.deliver(a, ev.reply)  # type: ignore[union-attr]
    assert rig.relay.user_report(a).rtt_ms == pytest.approx(1.0)
    tunnel: list[bytes] = []
    rig.relay.set_tunnel(a, tunnel.append)  # returning None counts as accepted
    rig.relay.receive_tunnelled(a, rig.sessions[a].ping(rig.now_ns), rig.now_ns)
    assert rig.sent == [] and len(tunnel) == 1


def _valid_and_invalid(rig: Rig, a: int) -> st.SearchStrategy[bytes]:
    session = rig.sessions[a]
    valid = st.builds(
        lambda f, s: session.voice(f, sequence=s, timestamp=0),
        st.binary(max_size=200),
        st.integers(0, 2**32 - 1),
    )
    return st.one_of(
        st.binary(max_size=MAX_DATAGRAM_SIZE + 16),
        valid,
        valid.flatmap(
            lambda dg: st.tuples(st.integers(0, len(dg) - 1), st.integers(1, 255)).map(
                lambda t: dg[: t[0]] + bytes([dg[t[0]] ^ t[1]]) + dg[t[0] + 1 :]
            )
        ),
        valid.flatmap(lambda dg: st.integers(0, len(dg) - 1).map(lambda n: dg[:n])),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_no_datagram_crashes_the_relay_and_only_valid_ones_are_forwarded(
    data: st.DataObject,
) -> None:
    rig = make_rig(max_packets_per_second=10**6)
    a, b = rig.join(1, "r"), rig.join(2, "r")
    # The definition of valid, independent of the relay: a's client key opens it, once.
    reference = Opener(rig.relay.cipher, rig.credentials[a].client_key, CLIENT_TO_SERVER)
    for _ in range(data.draw(st.integers(1, 20))):
        dg = data.draw(_valid_and_invalid(rig, a))
        try:
            header, _ = parse_untrusted(dg)
            valid = header.source_id == a
            if valid:
                reference.open(header, dg)  # raises unless authentic and fresh
        except InvalidDatagram:
            valid = False
        rig.relay.receive_datagram(dg, rig.addrs[a], rig.now_ns)
        if valid:
            ((out, addr),) = rig.sent
            assert addr == rig.addrs[b]
            ev = rig.sessions[b].receive_untrusted(out, rig.now_ns)
            assert isinstance(ev, VoiceFrame) and ev.source_id == a
        else:
            assert rig.sent == []
        rig.sent.clear()
    s = rig.relay.statistics()
    assert s.datagrams_received == s.packets_in + s.dropped_total


def test_member_state_unknown_source_errors_are_local() -> None:
    relay = VoiceRelay()
    with pytest.raises(KeyError):
        relay.set_active_room(1, "r")


def test_undefined_flag_bits_and_unknown_kinds_are_refused_before_authentication() -> None:
    rig = make_rig()
    a, b = rig.join(1, "r"), rig.join(2, "r")
    sealer = Sealer(rig.relay.cipher, rig.credentials[a].client_key, CLIENT_TO_SERVER)
    sealer.counter = 100
    for bit in (0x4, 0x8):  # sealed by a, so only the flag rule refuses it
        rig.deliver(a, sealer.seal(Kind.VOICE, a, b"x", flags=Flags(bit)))
    unknown_kind = bytearray(sealer.seal(Kind.VOICE, a, b"x"))
    unknown_kind[1] = 9
    rig.deliver(a, bytes(unknown_kind))
    assert rig.sent == []
    assert rig.relay.user_report(a).dropped == {"malformed": 3}
    # The defined flags pass, unchanged.
    rig.deliver(a, sealer.seal(Kind.VOICE, a, b"y", flags=Flags.END_OF_SPURT | Flags.REDUNDANT))
    ((out, _),) = rig.sent
    assert parse_untrusted(out)[0].flags == Flags.END_OF_SPURT | Flags.REDUNDANT
    del b


def test_a_tunnelled_datagram_too_short_to_name_a_source_counts_for_the_session() -> None:
    rig = make_rig()
    a = rig.join(1, "r")
    rig.relay.receive_tunnelled(a, b"\x10\x01", rig.now_ns)
    assert rig.relay.user_report(a).dropped == {"malformed": 1}


def test_rekey_keeps_the_source_and_room_and_forgets_the_old_client() -> None:
    rig = make_rig()
    a, b = rig.join(1, "lobby"), rig.join(2, "lobby")
    rig.relay.set_tunnel(a, lambda d: True)
    old_session, old_addr = rig.sessions[a], rig.addrs[a]
    setup = rig.relay.rekey(a)
    assert setup.source_id == a and setup.client_key != rig.credentials[a].client_key
    report = rig.relay.user_report(a)
    assert report.active_room == "lobby" and report.transport == VoiceTransport.UDP
    assert rig.relay.udp_address(a) is None  # learnt again from the new client
    rig.speak(b, b"while a is away")
    assert rig.heard() == {}  # no route to a yet: nothing to the old address
    assert rig.relay.user_report(a).dropped == {"no_route": 1}
    # The old client's datagrams no longer authenticate.
    rig.relay.receive_datagram(
        old_session.voice(b"old", sequence=99, timestamp=0), old_addr, rig.now_ns
    )
    assert rig.relay.user_report(a).dropped == {"no_route": 1, "auth_failed": 1}
    assert rig.heard() == {}
    # The new client, from a new address, is heard and hears under the same source id.
    rig.credentials[a] = setup
    rig.sessions[a] = VoiceSession.from_setup(setup)
    rig.addrs[a] = ("127.0.0.1", 30000)
    rig.deliver(a, rig.sessions[a].hello(rig.now_ns))
    rig.sent.clear()
    rig.speak(a, b"new a")
    rig.speak(b, b"to new a")
    heard = rig.heard()
    assert [(f.source_id, f.frame) for f in heard[b]] == [(a, b"new a")]
    assert [(f.source_id, f.frame) for f in heard[a]] == [(b, b"to new a")]
