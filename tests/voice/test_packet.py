from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echomesh_trio.voice.packet import (
    HEADER_SIZE,
    MAX_DATAGRAM_SIZE,
    MAX_REDUNDANT_FRAMES,
    DropReason,
    Flags,
    InvalidDatagram,
    Kind,
    claimed_source_id,
    encode_voice_payload,
    parse_untrusted,
    parse_untrusted_header,
    parse_untrusted_voice_payload,
)
from echomesh_trio.voice.replay import ReplayWindow
from echomesh_trio.voice.seal import (
    CIPHERS,
    CLIENT_TO_SERVER,
    SERVER_TO_CLIENT,
    Opener,
    Sealer,
    new_key,
)


@pytest.mark.parametrize("cipher", CIPHERS)
def test_seal_open_round_trip(cipher: str) -> None:
    key = new_key(cipher)
    sealer, opener = Sealer(cipher, key, CLIENT_TO_SERVER), Opener(cipher, key, CLIENT_TO_SERVER)
    flags, payload = encode_voice_payload(b"opus", [b"prev"])
    dg = sealer.seal(Kind.VOICE, 7, payload, sequence=3, timestamp=2880, flags=flags)
    header, _ = parse_untrusted(dg)
    assert (header.kind, header.source_id, header.sequence, header.timestamp) == (
        Kind.VOICE,
        7,
        3,
        2880,
    )
    assert header.counter == 1 and header.flags == Flags.REDUNDANT
    plain = opener.open(header, dg)
    assert parse_untrusted_voice_payload(header.flags, plain) == (b"opus", (b"prev",))


def test_counters_never_repeat_and_direction_matters() -> None:
    key = new_key()
    sealer = Sealer("chacha20-poly1305", key, CLIENT_TO_SERVER)
    counters = [parse_untrusted(sealer.seal(Kind.PING, 1, b"x" * 12))[0].counter for _ in range(5)]
    assert counters == [1, 2, 3, 4, 5]
    # The same key in the other direction never opens it (different nonce).
    dg = sealer.seal(Kind.VOICE, 1, b"abc")
    with pytest.raises(InvalidDatagram) as e:
        Opener("chacha20-poly1305", key, SERVER_TO_CLIENT).open(parse_untrusted(dg)[0], dg)
    assert e.value.reason is DropReason.AUTH_FAILED


def test_tampered_header_fails_authentication() -> None:
    key = new_key()
    dg = bytearray(Sealer("chacha20-poly1305", key, CLIENT_TO_SERVER).seal(Kind.VOICE, 9, b"a"))
    dg[7] ^= 1  # sequence number
    with pytest.raises(InvalidDatagram) as e:
        Opener("chacha20-poly1305", key, CLIENT_TO_SERVER).open(
            parse_untrusted(bytes(dg))[0], bytes(dg)
        )
    assert e.value.reason is DropReason.AUTH_FAILED


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", DropReason.MALFORMED),
        (b"\x10\x01" + b"\x00" * (HEADER_SIZE + 10), DropReason.MALFORMED),  # zero source id
        (b"\x20\x01" + b"\x01" * (HEADER_SIZE + 20), DropReason.MALFORMED),  # version 2
        (b"\x10\x09" + b"\x01" * (HEADER_SIZE + 20), DropReason.MALFORMED),  # kind 9
        (b"\x14\x01" + b"\x01" * (HEADER_SIZE + 20), DropReason.MALFORMED),  # flag 0x4
        (b"\x18\x01" + b"\x01" * (HEADER_SIZE + 20), DropReason.MALFORMED),  # flag 0x8
        (b"\x10\x01" + b"\x01" * 10, DropReason.MALFORMED),  # truncated
        (b"\x10\x01" + b"\x01" * MAX_DATAGRAM_SIZE, DropReason.OVERSIZE),
    ],
)
def test_parse_untrusted_rejects(data: bytes, reason: DropReason) -> None:
    with pytest.raises(InvalidDatagram) as e:
        parse_untrusted(data)
    assert e.value.reason is reason


_HEADERS = st.builds(
    lambda vf, kind, rest, n: (bytes([vf, kind]) + rest)[:n],
    st.integers(0, 255),
    st.integers(0, 7),
    st.binary(min_size=HEADER_SIZE + 16, max_size=MAX_DATAGRAM_SIZE + 8),
    st.integers(0, MAX_DATAGRAM_SIZE + 8),
)


@given(st.one_of(st.binary(max_size=MAX_DATAGRAM_SIZE + 8), _HEADERS))
def test_parse_untrusted_parses_or_raises_its_own_error(data: bytes) -> None:
    try:
        fields = parse_untrusted_header(data)
    except InvalidDatagram as e:
        assert e.source_id == claimed_source_id(data)  # what the relay charges the drop to
        with pytest.raises(InvalidDatagram) as typed:
            parse_untrusted(data)
        assert typed.value.reason is e.reason
        return
    header, sealed = parse_untrusted(data)  # the same rules, typed
    assert len(sealed) == len(data) - HEADER_SIZE
    assert fields[0] >> 4 == 1 and not fields[0] & 0xC and header.kind in set(Kind)
    assert header.source_id == fields[2] != 0 and header.counter == fields[5] != 0


@given(st.sampled_from(list(Flags)), st.binary(max_size=64))
def test_voice_payload_parser_never_crashes(flags: Flags, data: bytes) -> None:
    try:
        parse_untrusted_voice_payload(flags, data)
    except InvalidDatagram:
        pass


def test_replay_window_accepts_reordering_and_rejects_replays() -> None:
    w = ReplayWindow(size=64)
    for i in (1, 3, 2, 10):
        assert w.check(i) is None
        w.accept(i)
    assert w.check(3) is DropReason.REPLAYED
    assert w.check(4) is None
    w.accept(200)
    assert w.check(200 - 64) is DropReason.TOO_OLD
    assert w.check(200 - 63) is None
    assert w.check(200) is DropReason.REPLAYED


@given(st.lists(st.integers(min_value=1, max_value=400), max_size=200))
def test_replay_window_accepts_each_index_at_most_once(indices: list[int]) -> None:
    w = ReplayWindow(size=64)
    accepted: set[int] = set()
    for i in indices:
        if w.check(i) is None:
            assert i not in accepted
            w.accept(i)
            accepted.add(i)
        else:
            assert i in accepted or i <= w.top - 64


@given(
    st.binary(max_size=200),
    st.lists(st.binary(max_size=200), max_size=MAX_REDUNDANT_FRAMES),
)
def test_voice_payload_round_trip(frame: bytes, redundant: list[bytes]) -> None:
    flags, payload = encode_voice_payload(frame, redundant)
    assert bool(flags & Flags.REDUNDANT) == bool(redundant)
    assert parse_untrusted_voice_payload(flags, payload) == (frame, tuple(redundant))


def test_voice_payload_limits() -> None:
    with pytest.raises(ValueError):
        encode_voice_payload(b"x", [b"a"] * (MAX_REDUNDANT_FRAMES + 1))
    for bad in (b"", b"\x00", b"\x04" + b"\x00" * 8, b"\x01\x00", b"\x01\x00\x09abc"):
        with pytest.raises(InvalidDatagram):
            parse_untrusted_voice_payload(Flags.REDUNDANT, bad)
