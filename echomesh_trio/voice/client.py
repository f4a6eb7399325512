"""The client's half of voice, sans-IO: seal what we send, open what the server sent, and
decide between UDP and the TCP tunnel. Time is always passed in (ns, any monotonic clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from echomesh_trio.protocol import events as ev

from .packet import (
    PROBE,
    DropReason,
    Flags,
    InvalidDatagram,
    Kind,
    encode_voice_payload,
    parse_untrusted,
    parse_untrusted_probe,
    parse_untrusted_voice_payload,
)
from .seal import CLIENT_TO_SERVER, DEFAULT_CIPHER, SERVER_TO_CLIENT, Opener, Sealer

__all__ = [
    "HelloAcknowledged",
    "PingReceived",
    "PongReceived",
    "TransportSelector",
    "VoiceFrame",
    "VoiceSession",
]


@dataclass(frozen=True, slots=True)
class VoiceFrame:
    """An Opus frame from another member, as the server vouched for it."""

    source_id: int
    sequence: int
    timestamp: int
    flags: Flags
    frame: bytes
    redundant: tuple[bytes, ...]
    """Copies of the previous frames, newest first (frame sequence-1, sequence-2, ...)."""


@dataclass(frozen=True, slots=True)
class HelloAcknowledged:
    """The server bound our UDP address."""

    rtt_ms: float | None


@dataclass(frozen=True, slots=True)
class PongReceived:
    rtt_ms: float | None
    server_rtt_ms: float | None
    """The server's own estimate, from its pings to us."""


@dataclass(frozen=True, slots=True)
class PingReceived:
    """The server pinged us: send `reply` back on the path the ping came by."""

    reply: bytes


VoiceEvent = VoiceFrame | HelloAcknowledged | PongReceived | PingReceived


class VoiceSession:
    """One client's sealed voice session, from the VoiceSetup keys."""

    def __init__(
        self,
        source_id: int,
        client_key: bytes,
        server_key: bytes,
        cipher: str = DEFAULT_CIPHER,
    ) -> None:
        self.source_id = source_id
        self._sealer = Sealer(cipher, client_key, CLIENT_TO_SERVER)
        # One window: the counter is the server's, per receiving session, across speakers.
        self._opener = Opener(cipher, server_key, SERVER_TO_CLIENT)
        self.rtt_ms: float | None = None
        self.server_rtt_ms: float | None = None

    @classmethod
    def from_setup(cls, setup: ev.VoiceSetupInfo) -> VoiceSession:
        """The session a VoiceSetup message describes."""
        return cls(setup.source_id, setup.client_key, setup.server_key, setup.cipher)

    def _probe(self, kind: Kind, now_ns: int) -> bytes:
        rtt_us = 0 if self.rtt_ms is None else int(self.rtt_ms * 1000)
        return self._sealer.seal(kind, self.source_id, PROBE.pack(now_ns, rtt_us))

    def hello(self, now_ns: int) -> bytes:
        """The datagram that binds our UDP address at the server."""
        return self._probe(Kind.HELLO, now_ns)

    def ping(self, now_ns: int) -> bytes:
        return self._probe(Kind.PING, now_ns)

    def voice(
        self,
        frame: bytes,
        *,
        sequence: int,
        timestamp: int,
        end_of_spurt: bool = False,
        redundant: Sequence[bytes] = (),
    ) -> bytes:
        """Seal one Opus frame (timestamp in samples of media.SAMPLE_RATE)."""
        flags, payload = encode_voice_payload(frame, redundant)
        if end_of_spurt:
            flags |= Flags.END_OF_SPURT
        return self._sealer.seal(
            Kind.VOICE, self.source_id, payload, sequence=sequence, timestamp=timestamp, flags=flags
        )

    def receive_untrusted(self, datagram: bytes, now_ns: int) -> VoiceEvent:
        """Open a datagram from the server, or raise InvalidDatagram (drop it, count it)."""
        header, _ = parse_untrusted(datagram)
        plaintext = self._opener.open(header, datagram)
        kind = header.kind
        if kind is Kind.VOICE:
            frame, redundant = parse_untrusted_voice_payload(header.flags, plaintext)
            return VoiceFrame(
                header.source_id, header.sequence, header.timestamp, header.flags, frame, redundant
            )
        if header.source_id != self.source_id:
            raise InvalidDatagram(DropReason.MALFORMED, "control datagram for another source")
        t_ns, rtt_us = parse_untrusted_probe(plaintext)
        if rtt_us:
            self.server_rtt_ms = rtt_us / 1000
        if kind is Kind.PING:
            return PingReceived(self._probe_reply(t_ns))
        if kind is Kind.HELLO_ACK or kind is Kind.PONG:
            if 0 < t_ns <= now_ns:
                self.rtt_ms = (now_ns - t_ns) / 1e6
            if kind is Kind.HELLO_ACK:
                return HelloAcknowledged(self.rtt_ms)
            return PongReceived(self.rtt_ms, self.server_rtt_ms)
        raise InvalidDatagram(DropReason.MALFORMED, f"a client never receives {kind.name}")

    def _probe_reply(self, t_ns: int) -> bytes:
        rtt_us = 0 if self.rtt_ms is None else int(self.rtt_ms * 1000)
        return self._sealer.seal(Kind.PONG, self.source_id, PROBE.pack(t_ns, rtt_us))


SETUP_TIMEOUT_S: Final = 3.0
"""No UDP answer this long after set-up: UDP does not get through, tunnel over TCP."""
MISSED_PINGS: Final = 2
"""Consecutive unanswered pings (while on UDP) that mean UDP stopped working."""
PONGS_TO_RECOVER: Final = 2
"""Consecutive answered UDP pings (while tunnelled) before going back to UDP."""


class TransportSelector:
    """Decides UDP versus the TCP tunnel from UDP ping outcomes; pure, time passed in.

    The client keeps pinging over UDP every ping interval whatever the transport, and sends
    a ping over UDP as soon as the session is set up. Methods return the new transport when
    it changes (tell the server with VoiceTransportChoice), else None.
    """

    def __init__(
        self,
        now_s: float,
        *,
        setup_timeout_s: float = SETUP_TIMEOUT_S,
        missed_pings: int = MISSED_PINGS,
        pongs_to_recover: int = PONGS_TO_RECOVER,
        ping_timeout_s: float = SETUP_TIMEOUT_S,
    ) -> None:
        self.transport: ev.VoiceTransport = ev.VoiceTransport.UDP
        self._setup_deadline: float | None = now_s + setup_timeout_s
        self._missed_limit = missed_pings
        self._recover_limit = pongs_to_recover
        self._ping_timeout = ping_timeout_s
        self._outstanding: float | None = None  # send time of the unanswered ping
        self._missed = 0
        self._answered = 0

    def ping_sent(self, now_s: float) -> ev.VoiceTransport | None:
        """Call whenever a UDP ping (or hello) goes out."""
        change = self.tick(now_s)
        if self._outstanding is None:
            self._outstanding = now_s
        return change

    def pong_received(self, now_s: float) -> ev.VoiceTransport | None:
        """Call on an authenticated UDP pong or hello-ack (not one that came by the tunnel)."""
        self._setup_deadline = None
        self._outstanding = None
        self._missed = 0
        self._answered += 1
        if self.transport is ev.VoiceTransport.TCP_TUNNEL and self._answered >= self._recover_limit:
            self.transport = ev.VoiceTransport.UDP
            return ev.VoiceTransport.UDP
        return None

    def tick(self, now_s: float) -> ev.VoiceTransport | None:
        """Advance time (call at least once a second); may switch to the tunnel."""
        if self._outstanding is not None and now_s - self._outstanding >= self._ping_timeout:
            self._outstanding = None
            self._missed += 1
            self._answered = 0
        failed = self._missed >= self._missed_limit or (
            self._setup_deadline is not None and now_s >= self._setup_deadline
        )
        if failed and self.transport is ev.VoiceTransport.UDP:
            self._setup_deadline = None
            self._answered = 0
            self.transport = ev.VoiceTransport.TCP_TUNNEL
            return ev.VoiceTransport.TCP_TUNNEL
        return None
