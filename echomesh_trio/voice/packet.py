"""The voice datagram format, sans-IO.

Layout (network byte order), see docs/PROTOCOL.md "Voice":

    0   u8   version (high 4 bits) | flags (low 4 bits)
    1   u8   kind (voice, hello, hello-ack, ping, pong)
    2   u32  source id (the speaker; on forwarded voice, the original sender)
    6   u32  sequence number (per source, for the jitter buffer)
    10  u32  timestamp (48 kHz sample clock of the first sample)
    14  u64  counter: the AEAD nonce counter of the sealing key, never reused
    22  ...  sealed payload: ciphertext + 16-byte tag; the 22 header bytes are the AAD

The header travels in clear so the relay can route without decrypting first, but every byte
of it is authenticated. `parse_untrusted_header` holds the structural rules, once: the
relay's hot path calls it directly, clients through `parse_untrusted`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag, StrEnum
from typing import Final

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "MAX_DATAGRAM_SIZE",
    "MAX_REDUNDANT_FRAMES",
    "MIN_DATAGRAM_SIZE",
    "PROBE",
    "TAG_SIZE",
    "VERSION",
    "DatagramHeader",
    "DropReason",
    "Flags",
    "InvalidDatagram",
    "Kind",
    "claimed_source_id",
    "encode_voice_payload",
    "parse_untrusted",
    "parse_untrusted_header",
    "parse_untrusted_probe",
    "parse_untrusted_voice_payload",
]

VERSION: Final = 1

MAX_DATAGRAM_SIZE: Final = 1024
"""Upper bound for a whole datagram. An Opus frame at 20 ms is ~60-160 bytes even at high
bitrates; 1,024 leaves room for a redundant copy and stays far below any path MTU, so voice
never fragments."""

HEADER: Final = struct.Struct(">BBIIIQ")
HEADER_SIZE: Final = HEADER.size  # 22
TAG_SIZE: Final = 16
MIN_DATAGRAM_SIZE: Final = HEADER_SIZE + TAG_SIZE

PROBE: Final = struct.Struct(">QI")
"""Payload of hello, hello-ack, ping and pong: a timestamp in ns of the pinging side's own
clock (echoed unchanged in the answer) and the sender's latest RTT estimate in us (0: none).
Their header's sequence and timestamp are 0 when sent and ignored when received (they are
authenticated like every header byte, so nobody else can change them)."""

_REDUNDANT_LEN: Final = struct.Struct(">H")


class Kind(IntEnum):
    VOICE = 1
    HELLO = 2
    HELLO_ACK = 3
    PING = 4
    PONG = 5


class Flags(IntFlag):
    NONE = 0
    END_OF_SPURT = 0x1
    """Last frame of a talk spurt: the receiver may drain its jitter buffer."""
    REDUNDANT = 0x2
    """The payload also carries copies of up to three previous frames (see
    encode_voice_payload)."""


DEFINED_FLAGS: Final = Flags.END_OF_SPURT | Flags.REDUNDANT
"""A datagram with any other flag bit set is malformed: refused, not ignored, so that a
future meaning of a bit can never be misread by an old peer."""


class DropReason(StrEnum):
    """Why a datagram was dropped; the keys of every `dropped` counter mapping."""

    UNKNOWN_SOURCE = "unknown_source"
    AUTH_FAILED = "auth_failed"
    REPLAYED = "replayed"
    TOO_OLD = "too_old"
    OVERSIZE = "oversize"
    MALFORMED = "malformed"
    NO_ROOM = "no_room"
    RATE_LIMITED = "rate_limited"
    SEND_BLOCKED = "send_blocked"
    """The socket send buffer or the tunnel queue towards a receiver was full."""
    NO_ROUTE = "no_route"
    """A receiver has neither a bound UDP address nor a tunnel yet."""
    MUTED = "muted"
    """The speaker is server-muted where it speaks (moderation)."""


class InvalidDatagram(Exception):
    """The peer sent a datagram we reject (remote error); `reason` is a DropReason.

    `source_id` is the source the datagram claims (0 where it is too short to say): the
    relay counts drops before authentication against that user.
    """

    def __init__(self, reason: DropReason, detail: str = "", source_id: int = 0) -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.source_id = source_id


@dataclass(frozen=True, slots=True)
class DatagramHeader:
    flags: Flags
    kind: Kind
    source_id: int
    sequence: int
    timestamp: int
    counter: int


_KINDS: Final = frozenset(int(k) for k in Kind)
_UNDEFINED_FLAGS: Final = 0xF ^ int(DEFINED_FLAGS)
_FIXED: Final = 0xF0 | _UNDEFINED_FLAGS  # the version and the undefined flag bits
_VERSION_BITS: Final = VERSION << 4
_SOURCE: Final = struct.Struct(">I")

HeaderFields = tuple[int, int, int, int, int, int]
"""(version|flags byte, kind, source id, sequence, timestamp, counter), as on the wire."""


def claimed_source_id(data: bytes) -> int:
    """The source id a datagram claims, unauthenticated; 0 if it is too short to carry one."""
    return _SOURCE.unpack_from(data, 2)[0] if len(data) >= 6 else 0


def parse_untrusted_header(data: bytes) -> HeaderFields:
    """The raw header fields of a structurally valid datagram, or InvalidDatagram.

    The one set of structural rules (size, version, flags, kind, non-zero source id and
    counter), checked with one comparison chain so the relay's hot path can call it for
    every datagram. Authenticity is the opener's job (see seal.py).
    """
    if not MIN_DATAGRAM_SIZE <= len(data) <= MAX_DATAGRAM_SIZE:
        n = len(data)
        reason = DropReason.OVERSIZE if n > MAX_DATAGRAM_SIZE else DropReason.MALFORMED
        raise InvalidDatagram(reason, f"{n} bytes", claimed_source_id(data))
    vf, kind, source_id, _, _, counter = fields = HEADER.unpack_from(data)
    if vf & _FIXED != _VERSION_BITS or kind not in _KINDS or not source_id or not counter:
        raise InvalidDatagram(DropReason.MALFORMED, _header_problem(fields), source_id)
    return fields


def _header_problem(fields: HeaderFields) -> str:
    vf, kind = fields[0], fields[1]
    if vf >> 4 != VERSION:
        return f"version {vf >> 4}"
    if vf & _UNDEFINED_FLAGS:
        return f"undefined flag bits {vf & _UNDEFINED_FLAGS:#x}"
    if kind not in _KINDS:
        return f"kind {kind}"
    return "zero source id or counter"


def parse_untrusted(data: bytes) -> tuple[DatagramHeader, bytes]:
    """Split a datagram into its typed header and sealed payload, or raise InvalidDatagram."""
    vf, kind, source_id, sequence, timestamp, counter = parse_untrusted_header(data)
    header = DatagramHeader(Flags(vf & 0xF), Kind(kind), source_id, sequence, timestamp, counter)
    return header, bytes(data[HEADER_SIZE:])


MAX_REDUNDANT_FRAMES: Final = 3
"""Previous frames one voice datagram may repeat (the audio engine sends one, or three on
heavy bursty loss: docs/AUDIO.md)."""


def encode_voice_payload(frame: bytes, redundant: Sequence[bytes] = ()) -> tuple[Flags, bytes]:
    """Plaintext of a voice datagram: the Opus frame, and optionally copies of the previous
    frames, newest first (``redundant[0]`` is frame N-1).

    With copies (flag ``REDUNDANT``): ``u8`` count, a ``u16`` length per copy, the copies,
    then the primary frame, which takes the rest.
    """
    if not redundant:
        return Flags.NONE, frame
    if len(redundant) > MAX_REDUNDANT_FRAMES:
        raise ValueError(f"at most {MAX_REDUNDANT_FRAMES} redundant frames")
    lengths = b"".join(_REDUNDANT_LEN.pack(len(r)) for r in redundant)
    return Flags.REDUNDANT, bytes([len(redundant)]) + lengths + b"".join(redundant) + frame


def parse_untrusted_voice_payload(
    flags: Flags, plaintext: bytes
) -> tuple[bytes, tuple[bytes, ...]]:
    """Inverse of encode_voice_payload: (frame, redundant copies, newest first)."""
    if not flags & Flags.REDUNDANT:
        return plaintext, ()
    if not plaintext:
        raise InvalidDatagram(DropReason.MALFORMED, "redundancy count missing")
    count = plaintext[0]
    if not 1 <= count <= MAX_REDUNDANT_FRAMES:
        raise InvalidDatagram(DropReason.MALFORMED, f"redundancy count {count}")
    pos = 1 + count * _REDUNDANT_LEN.size
    if pos > len(plaintext):
        raise InvalidDatagram(DropReason.MALFORMED, "redundancy lengths missing")
    copies = []
    for i in range(count):
        (n,) = _REDUNDANT_LEN.unpack_from(plaintext, 1 + i * _REDUNDANT_LEN.size)
        if pos + n > len(plaintext):
            raise InvalidDatagram(DropReason.MALFORMED, "redundant frame past the end")
        copies.append(plaintext[pos : pos + n])
        pos += n
    return plaintext[pos:], tuple(copies)


def parse_untrusted_probe(plaintext: bytes) -> tuple[int, int]:
    """(timestamp_ns, rtt_us) of a hello, hello-ack, ping or pong payload."""
    if len(plaintext) != PROBE.size:
        raise InvalidDatagram(DropReason.MALFORMED, "probe payload size")
    t_ns, rtt_us = PROBE.unpack(plaintext)
    return t_ns, rtt_us
