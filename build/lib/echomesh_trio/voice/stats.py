"""Frozen value objects the relay hands to the control plane: credentials and statistics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Transport(StrEnum):
    """How voice currently reaches a member (VoiceTransport in the control protocol)."""

    UDP = "udp"
    TCP_TUNNEL = "tcp-tunnel"


@dataclass(frozen=True, slots=True)
class VoiceCredentials:
    """What the server sends in VoiceSetup: source_id, client_key, server_key, cipher."""

    source_id: int
    client_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    cipher: str


def _empty() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class VoiceUserStatistics:
    source_id: int
    user_id: int
    packets_in: int
    """Datagrams from this user that authenticated and were accepted."""
    packets_out: int
    """Datagrams sent to this user (forwarded voice, pongs, pings, hello-acks)."""
    dropped: Mapping[str, int] = field(default_factory=_empty)
    """By DropReason; reasons before authentication are attributed to the claimed source."""
    rtt_ms: float | None = None
    transport: Transport = Transport.UDP
    active_room: str | None = None
    udp_address: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class RelayStatistics:
    members: int
    rooms: int
    datagrams_received: int
    """Everything read from the socket or a tunnel, valid or not."""
    packets_in: int
    packets_out: int
    dropped: Mapping[str, int] = field(default_factory=_empty)
    socket_drops: int | None = None
    """Dropped by the kernel before the relay saw them (receive buffer full); None if the
    platform does not say (only Linux's /proc/net/udp does) or serve_udp never ran."""

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())
