"""What the server counts, and its Prometheus export (``GET /metrics`` on the admin port).

Hot paths count with plain ints: a connection adds to ``Traffic``, the relay to its own
counters (``VoiceRelay.statistics()``), the UDP loop to a ``LatencyHistogram``. Nothing
touches prometheus_client per packet or per frame; ``ServerMetrics``' collector turns the
ints into metric families when Prometheus scrapes. Every server has its own
``CollectorRegistry`` (not the process-wide default), so that several servers in one
process (the tests) each report their own figures.

Names follow Prometheus' conventions: ``echomesh_`` prefix, ``_total`` counters, seconds
and bytes. docs/OPERATIONS.md lists every metric.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from echomesh_trio.protocol.events import CallEndReason, ModerationKind
from echomesh_trio.voice.packet import DropReason

if TYPE_CHECKING:
    from echomesh_trio.voice.relay import VoiceRelay

__all__ = ["LatencyHistogram", "ServerMetrics", "Traffic"]

RELAY_LATENCY_BOUNDS_NS = (
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
)
"""Upper bounds of the relay latency buckets, in nanoseconds (25 us to 25 ms): one packet
costs ~20-40 us here, and a full batch of 256 a few ms (docs/BENCHMARKS.md)."""

DATABASE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)
"""Seconds; a committed write with synchronous=FULL is ~1-10 ms on a disk."""


class Traffic:
    """Counters the connections of one server add to (plain attributes: one add each)."""

    __slots__ = ("bytes_received", "bytes_sent", "slow_reader_drops")

    def __init__(self) -> None:
        self.bytes_received = 0  # read from TCP sockets (TLS records included)
        self.bytes_sent = 0  # written to TCP sockets
        self.slow_reader_drops = 0  # connections ended because their queue was full


class LatencyHistogram:
    """Fixed buckets over nanoseconds, counted with a list of ints (pure, no clock)."""

    __slots__ = ("bounds", "counts", "sum_ns")

    def __init__(self, bounds: tuple[int, ...] = RELAY_LATENCY_BOUNDS_NS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self.sum_ns = 0

    def observe(self, ns: int) -> None:
        self.counts[bisect_left(self.bounds, ns)] += 1
        self.sum_ns += ns

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: (upper bound in seconds, observations at or below it)."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            total += n
            out.append((repr(bound / 1e9), total))
        out.append(("+Inf", total + self.counts[-1]))
        return out


class ServerMetrics:
    """One server's counters and its Prometheus registry."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.traffic = Traffic()
        self.connections_accepted = 0
        self.logins: Counter[str] = Counter()  # by result: ok, wrong_password, bad_request...
        self.registrations = 0  # accounts created by a first login (open registration)
        self.chat_messages = 0
        self.direct_messages = 0
        self.calls_ended: Counter[str] = Counter()  # by end reason: hung_up, busy, ...
        self.moderation: Counter[str] = Counter()  # actions done, by kind: kick, ban, ...
        self.relay: VoiceRelay | None = None
        self.relay_latency = LatencyHistogram()
        # Set by the server: what is open right now (connections, sessions, rooms).
        self.gauges: Callable[[], dict[str, int]] = dict
        self.registry = CollectorRegistry()
        self.database_seconds = Histogram(
            "echomesh_database_seconds",
            "Time of one database call, waiting for the store's thread included",
            ["operation"],
            buckets=DATABASE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Collector(self))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, memory, fds

    def observe_database(self, operation: str, seconds: float) -> None:
        self.database_seconds.labels(operation).observe(seconds)

    def login(self, result: str) -> None:
        self.logins[result] += 1

    def exposition(self) -> bytes:
        """The Prometheus text format of everything above."""
        return generate_latest(self.registry)


_LOGIN_RESULTS = ("ok", "wrong_password", "bad_request", "too_many_attempts", "banned")
_CALL_END_REASONS = tuple(r.name.lower() for r in CallEndReason if r is not CallEndReason.UNKNOWN)
_MODERATION_KINDS = tuple(k.name.lower() for k in ModerationKind if k is not ModerationKind.UNKNOWN)


class _Collector(Collector):
    def __init__(self, metrics: ServerMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        gauges = m.gauges()
        for name, help_text in (
            ("connections", "Open control connections"),
            ("user_sessions", "Logged-in sessions"),
            ("rooms", "Rooms that exist"),
            ("active_calls", "1:1 calls ringing or connected"),
        ):
            yield GaugeMetricFamily(f"echomesh_{name}", help_text, value=gauges.get(name, 0))
        yield GaugeMetricFamily(
            "echomesh_start_time_seconds", "When the server started (Unix time)", m.started_at
        )
        yield CounterMetricFamily(
            "echomesh_connections_accepted", "Control connections accepted", m.connections_accepted
        )
        logins = CounterMetricFamily(
            "echomesh_logins", "Login attempts by result", labels=["result"]
        )
        for result in _LOGIN_RESULTS:
            logins.add_metric([result], m.logins.get(result, 0))
        for result, n in sorted(m.logins.items()):
            if result not in _LOGIN_RESULTS:
                logins.add_metric([result], n)
        yield logins
        yield CounterMetricFamily(
            "echomesh_registrations",
            "Accounts registered by a first login (open registration)",
            m.registrations,
        )
        yield CounterMetricFamily(
            "echomesh_chat_messages", "Chat messages stored and delivered", m.chat_messages
        )
        yield CounterMetricFamily(
            "echomesh_direct_messages", "Direct messages stored", m.direct_messages
        )
        calls = CounterMetricFamily(
            "echomesh_calls", "1:1 calls ended, by end reason", labels=["reason"]
        )
        for reason in _CALL_END_REASONS:
            calls.add_metric([reason], m.calls_ended.get(reason, 0))
        yield calls
        moderation = CounterMetricFamily(
            "echomesh_moderation_actions", "Moderation actions done, by kind", labels=["kind"]
        )
        for kind in _MODERATION_KINDS:
            moderation.add_metric([kind], m.moderation.get(kind, 0))
        yield moderation
        yield CounterMetricFamily(
            "echomesh_slow_reader_disconnects",
            "Connections ended because the client did not read (outgoing queue full)",
            m.traffic.slow_reader_drops,
        )
        received = CounterMetricFamily(
            "echomesh_received_bytes", "Bytes received", labels=["plane"]
        )
        sent = CounterMetricFamily("echomesh_sent_bytes", "Bytes sent", labels=["plane"])
        received.add_metric(["control"], m.traffic.bytes_received)
        sent.add_metric(["control"], m.traffic.bytes_sent)
        relay = m.relay
        if relay is not None:
            stats = relay.statistics()
            received.add_metric(["voice"], stats.bytes_in)
            sent.add_metric(["voice"], stats.bytes_out)
        yield received
        yield sent
        if relay is None:
            return
        yield CounterMetricFamily(
            "echomesh_voice_datagrams",
            "Voice datagrams read (UDP or tunnelled), valid or not",
            stats.datagrams_received,
        )
        yield CounterMetricFamily(
            "echomesh_voice_packets_received",
            "Voice datagrams accepted (authentic, fresh, within the rate limit)",
            stats.packets_in,
        )
        yield CounterMetricFamily(
            "echomesh_voice_packets_forwarded",
            "Datagrams the relay sent (voice copies, pongs, pings)",
            stats.packets_out,
        )
        dropped = CounterMetricFamily(
            "echomesh_voice_packets_dropped",
            "Voice datagrams dropped, by reason",
            labels=["reason"],
        )
        for reason in DropReason:  # every reason, zeros too, so that rate() works at once
            dropped.add_metric([reason.value], stats.dropped.get(reason, 0))
        if stats.socket_drops is not None:
            dropped.add_metric(["socket_full"], stats.socket_drops)
        yield dropped
        yield GaugeMetricFamily("echomesh_voice_members", "Voice sessions", stats.members)
        h = m.relay_latency
        yield HistogramMetricFamily(
            "echomesh_voice_relay_latency_seconds",
            "From the relay's wake-up to the last copy of a UDP datagram sent",
            buckets=h.cumulative(),
            sum_value=h.sum_ns / 1e9,
        )
