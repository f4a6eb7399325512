"""The relay as the control plane sees it: `VoiceRelay` behind the server's `VoiceControl`
protocol (echomesh_trio/server/service.py), translating to and from the control events.

Kept here so the control server depends on one small adapter, and the relay's own API stays
free of protobuf-shaped types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from echomesh_trio.protocol import events as ev

from .relay import VoiceRelay
from .stats import Transport


class RelayControl:
    """Adapts a VoiceRelay to the control service's VoiceControl protocol."""

    def __init__(self, relay: VoiceRelay | None = None) -> None:
        self.relay = relay if relay is not None else VoiceRelay()

    async def serve_udp(
        self,
        host: str,
        port: int = 0,
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await self.relay.serve_udp(host, port, task_status=task_status)

    def register(self, user_id: int) -> ev.VoiceSetupInfo:
        creds = self.relay.register(user_id)
        return ev.VoiceSetupInfo(
            udp_port=self.relay.udp_port or 0,
            source_id=creds.source_id,
            client_key=creds.client_key,
            server_key=creds.server_key,
            ping_interval_ms=round(self.relay.ping_interval * 1000),
            cipher=creds.cipher,
        )

    def unregister(self, source_id: int) -> None:
        self.relay.unregister(source_id)

    def set_active_room(self, source_id: int, room_id: str | None) -> None:
        self.relay.set_active_room(source_id, room_id or None)

    def set_transport(
        self, source_id: int, transport: ev.VoiceTransport, send: Callable[[bytes], bool]
    ) -> None:
        tunnelled = transport == ev.VoiceTransport.TCP_TUNNEL
        self.relay.set_tunnel(source_id, send if tunnelled else None)

    def receive_tunnelled(self, source_id: int, datagram: bytes) -> None:
        self.relay.receive_tunnelled(source_id, datagram)

    def user_report(self, source_id: int) -> ev.VoiceStatsReport:
        s = self.relay.user_statistics(source_id)
        return ev.VoiceStatsReport(
            packets_in=s.packets_in,
            packets_out=s.packets_out,
            dropped=dict(s.dropped),
            rtt_ms=s.rtt_ms or 0.0,
            transport=(
                ev.VoiceTransport.UDP
                if s.transport is Transport.UDP
                else ev.VoiceTransport.TCP_TUNNEL
            ),
            active_room=s.active_room or "",
        )
