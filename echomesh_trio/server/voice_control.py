"""The relay as the control plane sees it: `VoiceRelay` and its UDP socket behind the
control service's `VoiceControl` protocol (echomesh_trio/server/service.py).

The relay already speaks the control events (`VoiceSetupInfo`, `VoiceStatsReport`); this
adds the Trio socket (`voice_udp.serve_udp`), the clock for tunnelled datagrams, and maps
the control plane's transport choice and "no room" to the relay's calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.server.metrics import LatencyHistogram, ServerMetrics
from echomesh_trio.server.voice_udp import serve_udp
from echomesh_trio.voice.relay import VoiceRelay


class RelayControl:
    """Adapts a VoiceRelay to the control service's VoiceControl protocol."""

    def __init__(self, relay: VoiceRelay | None = None) -> None:
        self.relay = relay if relay is not None else VoiceRelay()
        self.latency = LatencyHistogram()

    def attach_metrics(self, metrics: ServerMetrics) -> None:
        """Report the relay's counters and latency in ``metrics`` (the server calls this)."""
        metrics.relay = self.relay
        self.latency = metrics.relay_latency

    async def serve_udp(
        self,
        host: str,
        port: int = 0,
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await serve_udp(self.relay, host, port, latency=self.latency, task_status=task_status)

    def register(self, user_id: int) -> ev.VoiceSetupInfo:
        return self.relay.register()

    def rekey(self, source_id: int) -> ev.VoiceSetupInfo:
        return self.relay.rekey(source_id)

    def unregister(self, source_id: int) -> None:
        self.relay.unregister(source_id)

    def set_active_room(self, source_id: int, room_id: str | None) -> None:
        self.relay.set_active_room(source_id, room_id or None)

    def set_muted(self, source_id: int, muted: bool) -> None:
        self.relay.set_muted(source_id, muted)

    def set_transport(
        self, source_id: int, transport: ev.VoiceTransport, send: Callable[[bytes], bool]
    ) -> None:
        tunnelled = transport == ev.VoiceTransport.TCP_TUNNEL
        self.relay.set_tunnel(source_id, send if tunnelled else None)

    def receive_tunnelled(self, source_id: int, datagram: bytes) -> None:
        self.relay.receive_tunnelled(source_id, datagram, time.monotonic_ns())

    def user_report(self, source_id: int) -> ev.VoiceStatsReport:
        return self.relay.user_report(source_id)
