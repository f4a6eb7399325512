"""Voice: the sealed UDP datagram format, the relay (SFU) and the client's sans-IO session."""

from .packet import MAX_DATAGRAM_SIZE, DropReason, Flags, InvalidDatagram, Kind, parse_untrusted
from .relay import VoiceRelay
from .seal import CIPHERS, DEFAULT_CIPHER
from .stats import RelayStatistics, Transport, VoiceCredentials, VoiceUserStatistics

__all__ = [
    "CIPHERS",
    "DEFAULT_CIPHER",
    "MAX_DATAGRAM_SIZE",
    "DropReason",
    "Flags",
    "InvalidDatagram",
    "Kind",
    "RelayStatistics",
    "Transport",
    "VoiceCredentials",
    "VoiceRelay",
    "VoiceUserStatistics",
    "parse_untrusted",
]
