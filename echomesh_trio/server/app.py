"""The server process: listeners, connection tasks, and orderly shutdown.

One root nursery (``EchoMeshServer.serve``) owns the TCP listener, every connection task
and the voice relay. ``serve`` follows Trio's ``task_status`` convention, so tests and
tools start it with ``info = await nursery.start(server.serve)`` and get the bound ports.
"""

from __future__ import annotations

import logging
import signal
import ssl
from collections import Counter
from dataclasses import dataclass

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.server.config import Settings
from echomesh_trio.server.connection import Connection
from echomesh_trio.server.service import ControlService, VoiceControl
from echomesh_trio.server.store import Store
from echomesh_trio.server.tls import TlsError, TlsSession
from echomesh_trio.server.tlscert import ensure_self_signed, fingerprint, server_context

log = logging.getLogger("echomesh.server")

TLS_HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerInfo:
    """What a started server bound, for callers of ``nursery.start(server.serve)``."""

    host: str
    port: int
    udp_port: int
    tls: bool
    fingerprint: str | None
    cert_path: str | None


class EchoMeshServer:
    def __init__(self, settings: Settings, voice: VoiceControl | None = None) -> None:
        """``voice`` is the relay as the control plane sees it (``RelayControl``); None
        serves text only."""
        self.settings = settings
        self.voice = voice
        self._connections: set[Connection] = set()
        self._handling = 0  # connection tasks not yet finished (their end fully handled)
        self._handling_changed = trio.lowlevel.ParkingLot()
        self._per_address: Counter[str] = Counter()
        self._shutdown = trio.Event()
        self._accepting = trio.CancelScope()  # cancelled to stop accepting at shutdown
        self._drained = trio.Event()  # set when the last connection ends after shutdown began
        self._ssl: ssl.SSLContext | None = None
        self.service: ControlService | None = None

    def request_shutdown(self) -> None:
        """Begin an orderly shutdown (safe to call more than once)."""
        self._shutdown.set()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def wait_connections(self, at_most: int) -> None:
        """Return once at most ``at_most`` connection tasks remain, every other one having
        finished completely (session removed, members told, socket closed, line logged)."""
        while self._handling > at_most:
            await self._handling_changed.park()

    async def serve(
        self, *, task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED
    ) -> None:
        settings = self.settings
        db_path = settings.data_dir / "echomesh.sqlite3"
        store = await trio.to_thread.run_sync(Store.open, db_path)
        try:
            rooms = await store.run(store.db.room_names)
            self.service = ControlService(settings, store, rooms, self.voice)
            fp = cert_path = None
            if not settings.plaintext:
                if settings.cert is not None and settings.key is not None:
                    cert, key = settings.cert, settings.key
                else:
                    cert, key = ensure_self_signed(settings.data_dir / "tls")
                self._ssl = server_context(cert, key)
                fp, cert_path = fingerprint(cert), str(cert)
            listeners = await trio.open_tcp_listeners(settings.port, host=settings.host)
            port = listeners[0].socket.getsockname()[1]
            async with trio.open_nursery() as connections:
                self.service.background = connections
                # The relay is bound before the first client can log in and ask for it.
                udp_port = 0
                if self.voice is not None:
                    udp_port = await connections.start(
                        self.voice.serve_udp, settings.host, settings.udp_port or port
                    )
                connections.start_soon(self._accept, listeners, connections)
                info = ServerInfo(
                    settings.host, port, udp_port, self._ssl is not None, fp, cert_path
                )
                log.info(
                    "listening on %s:%d (%s), %s, data in %s",
                    settings.host,
                    port,
                    "TLS" if self._ssl else "plaintext",
                    f"voice on UDP {udp_port}" if udp_port else "no voice",
                    settings.data_dir,
                )
                if fp:
                    log.info("TLS certificate SHA-256 fingerprint: %s", fp)
                task_status.started(info)
                await self._shutdown.wait()
                self._accepting.cancel()
                self.service.calls.end_all()  # the parties hear why before the goodbye
                await self._say_goodbye()
                connections.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await store.run(store.close)
            log.info("database closed")

    async def _say_goodbye(self) -> None:
        """Tell every client the server is stopping; give them a moment to receive it."""
        log.info("shutting down: closing %d connections", len(self._connections))
        notice = ev.Goodbye(ev.GoodbyeReason.SHUTDOWN, "the server is shutting down")
        for conn in list(self._connections):
            conn.close("server shutdown", notice)
        if self._connections:
            with trio.move_on_after(self.settings.shutdown_grace):
                await self._drained.wait()

    async def _accept(
        self, listeners: list[trio.SocketListener], connections: trio.Nursery
    ) -> None:
        with self._accepting:
            await trio.serve_listeners(self._handle, listeners, handler_nursery=connections)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        self._handling += 1
        try:
            await self._serve_connection(tcp)
        finally:
            self._handling -= 1
            self._handling_changed.unpark_all()

    async def _serve_connection(self, tcp: trio.SocketStream) -> None:
        try:
            address = tcp.socket.getpeername()[0]
        except OSError:
            await tcp.aclose()
            return
        tls = TlsSession(self._ssl) if self._ssl is not None else None
        conn = Connection(tcp, address, self.settings.outgoing_queue, tls)
        self._connections.add(conn)
        self._per_address[address] += 1
        log.info("connect from %s (%d open)", address, len(self._connections))
        try:
            if tls is not None:
                with trio.move_on_after(TLS_HANDSHAKE_TIMEOUT) as handshake:
                    try:
                        await tls.handshake(tcp)
                    except (TlsError, trio.BrokenResourceError) as exc:
                        conn.close_reason = str(exc)
                        return
                if handshake.cancelled_caught:
                    conn.close_reason = "TLS handshake timed out"
                    return
            full = self._over_limit(address)
            if full is not None:
                conn.send_nowait(ev.ErrorReply(ev.ErrorCode.SERVER_FULL, full))
                conn.close(full, ev.Goodbye(ev.GoodbyeReason.SERVER_FULL, full))
            assert self.service is not None
            await conn.run(
                self.service.dispatch, self.settings.idle_timeout, self.settings.frame_timeout
            )
        except* Exception:
            # A bug of ours in this connection's task: it must not take the server down.
            log.exception("internal error in the task of %r", conn)
            conn.close_reason = conn.close_reason or "internal error"
        finally:
            self._connections.discard(conn)
            if conn.close_reason is None:
                conn.close_reason = "server shutdown" if self._shutdown.is_set() else "cancelled"
            if self._shutdown.is_set() and not self._connections:
                self._drained.set()
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]
            if self.service is not None:
                try:
                    self.service.disconnected(conn)
                except Exception:
                    log.exception("internal error while %r left", conn)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await _close(tcp)
            log.info(
                "disconnect %s%s: %s",
                address,
                f" ({conn.user})" if conn.user else "",
                conn.close_reason,
            )

    def _over_limit(self, address: str) -> str | None:
        if len(self._connections) > self.settings.max_connections:
            return f"server full ({self.settings.max_connections} connections)"
        if self._per_address[address] > self.settings.max_connections_per_address:
            return f"too many connections from {address}"
        return None


async def _close(stream: trio.abc.Stream) -> None:
    try:
        await stream.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def run_until_signalled(server: EchoMeshServer) -> None:
    """Run ``server`` until SIGINT or SIGTERM, then shut it down in order."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

        async def watch() -> None:
            async for signum in signals:
                log.info("received %s", signal.Signals(signum).name)
                server.request_shutdown()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await server.serve()
            nursery.cancel_scope.cancel()
