"""The server process: listeners, connection tasks, and orderly shutdown.

One root nursery (``EchoMeshServer.serve``) owns the TCP listener, every connection task
and the voice relay. ``serve`` follows Trio's ``task_status`` convention, so tests and
tools start it with ``info = await nursery.start(server.serve)`` and get the bound ports.
"""

from __future__ import annotations

import errno
import logging
import re
import signal
import socket
import ssl
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.server import datadir
from echomesh_trio.server.admin import AdminApp, bind_admin_socket, serve_admin
from echomesh_trio.server.config import Settings
from echomesh_trio.server.connection import Connection
from echomesh_trio.server.metrics import ServerMetrics
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
    admin_port: int | None = None
    """The HTTP side door's port (None: --no-admin)."""


class StartupError(Exception):
    """The server cannot start; ``str()`` is one line naming the thing and what to do."""


def _listen_problem(what: str, host: str, port: int, exc: OSError, flag: str) -> StartupError:
    if isinstance(exc, socket.gaierror):
        return StartupError(
            f"cannot resolve {what} host {host!r}: {exc.strerror}; give an IP address or a"
            " name this machine resolves"
        )
    hints = {
        errno.EADDRINUSE: f"is another echomesh-serve running? Stop it or choose another {flag}",
        errno.EADDRNOTAVAIL: "that address is not one of this machine's",
        errno.EACCES: "ports below 1024 need privileges: choose a higher one",
    }
    hint = hints.get(exc.errno or 0, "check the address and port")
    return StartupError(f"cannot listen on {host}:{port} ({what}): {exc.strerror}; {hint}")


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
        self.metrics = ServerMetrics()
        self.metrics.gauges = self._gauges
        # A voice plane that reports metrics says so with this optional method.
        attach = getattr(voice, "attach_metrics", None)
        if attach is not None:
            attach(self.metrics)

    def request_shutdown(self) -> None:
        """Begin an orderly shutdown (safe to call more than once)."""
        self._shutdown.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown.is_set()

    def _gauges(self) -> dict[str, int]:
        registry = self.service.registry if self.service is not None else None
        return {
            "connections": len(self._connections),
            "user_sessions": len(registry.sessions) if registry else 0,
            "rooms": len(registry.rooms) if registry else 0,
            "active_calls": len(self.service.calls.book) if self.service is not None else 0,
        }

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def wait_connections(self, at_most: int) -> None:
        """Return once at most ``at_most`` connection tasks remain, every other one having
        finished completely (its session ended, members told, or kept for ``resume_grace``;
        socket closed, line logged)."""
        while self._handling > at_most:
            await self._handling_changed.park()

    async def serve(
        self, *, task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until ``request_shutdown``. Raises StartupError, or StoreError for the data
        directory and the database, before ``task_status.started`` when it cannot start."""
        # What can fail is tried before anything is written or logged (the database's
        # "created" line included), so that a failed start prints its one line alone.
        db_path, lock = await trio.to_thread.run_sync(self._claim_data_dir)
        try:
            tls = None if self.settings.plaintext else self._tls_context()
            listeners, admin_sock = await self._bind()
            try:
                self._probe_udp(listeners[0].socket.getsockname()[1])
                store = await trio.to_thread.run_sync(Store.open, db_path)
            except BaseException:
                with trio.CancelScope(shield=True):
                    for listener in listeners:
                        await listener.aclose()
                if admin_sock is not None:
                    admin_sock.close()
                raise
            store.observe = self.metrics.observe_database
            try:
                await self._serve(store, listeners, admin_sock, tls, task_status)
            finally:
                with trio.CancelScope(shield=True):
                    await store.run(store.close)
                log.info("database closed")
        finally:
            lock.release()

    def _probe_udp(self, tcp_port: int) -> None:
        """Fail early, before the database is touched, if the voice port is taken: bind it
        and let it go again (the relay binds it for good once the store is open)."""
        settings = self.settings
        if self.voice is None:
            return
        port = settings.udp_port or tcp_port
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.bind((settings.host, port))
        except OSError as exc:
            raise _listen_problem("UDP voice", settings.host, port, exc, "--udp-port") from None

    async def _bind(self) -> tuple[list[trio.SocketListener], socket.socket | None]:
        """The control channel's listeners and the admin socket (None: --no-admin)."""
        settings = self.settings
        try:
            listeners = await trio.open_tcp_listeners(settings.port, host=settings.host)
        except OSError as exc:
            raise _listen_problem("TCP", settings.host, settings.port, exc, "--port") from None
        if not settings.admin:
            return listeners, None
        try:
            return listeners, bind_admin_socket(settings.admin_host, settings.admin_port)
        except OSError as exc:
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()
            raise _listen_problem(
                "admin HTTP", settings.admin_host, settings.admin_port, exc, "--admin-port"
            ) from None

    def _claim_data_dir(self) -> tuple[Path, datadir.DataDirLock]:
        db_path = datadir.prepare(self.settings.data_dir)
        return db_path, datadir.DataDirLock(self.settings.data_dir)

    def _tls_context(self) -> tuple[str, str]:
        """Load the certificate (or make the self-signed one); its fingerprint and path."""
        settings = self.settings
        if settings.cert is not None and settings.key is not None:
            cert, key = settings.cert, settings.key
            for what, path in (("cert", cert), ("key", key)):
                if not path.is_file():
                    raise StartupError(
                        f"{what} file {path} not found: give the path of a PEM file, or drop"
                        " --cert and --key for a self-signed certificate"
                    )
        else:
            tls_dir = settings.data_dir / "tls"
            try:
                cert, key = ensure_self_signed(tls_dir)
            except OSError as exc:
                raise StartupError(
                    f"cannot write the self-signed certificate in {tls_dir}: {exc.strerror}"
                ) from None
        try:
            self._ssl = server_context(cert, key)
            return fingerprint(cert), str(cert)
        except (ssl.SSLError, ValueError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            reason = re.sub(r"^\[SSL\] | \(_ssl\.c:\d+\)$", "", reason)
            raise StartupError(
                f"cannot use certificate {cert} with key {key} ({reason}): both must be PEM,"
                " the key must match the certificate, and --cert and --key must not be swapped"
            ) from None

    async def _serve(
        self,
        store: Store,
        listeners: list[trio.SocketListener],
        admin_sock: socket.socket | None,
        tls: tuple[str, str] | None,
        task_status: trio.TaskStatus[ServerInfo],
    ) -> None:
        settings = self.settings
        rooms = await store.run(store.db.room_names)
        self.service = ControlService(settings, store, rooms, self.voice, self.metrics)
        fp, cert_path = tls if tls is not None else (None, None)
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as outer:
            admin_port = None
            admin_stop = trio.Event()
            if admin_sock is not None:
                app = AdminApp(self, settings.admin_token)
                admin_port = await outer.start(serve_admin, app, admin_sock, admin_stop.wait)
            try:
                await self._serve_connections(
                    listeners, port, fp, cert_path, admin_port, task_status
                )
            finally:
                admin_stop.set()  # /health says shutting_down until here

    async def _serve_connections(
        self,
        listeners: list[trio.SocketListener],
        port: int,
        fp: str | None,
        cert_path: str | None,
        admin_port: int | None,
        task_status: trio.TaskStatus[ServerInfo],
    ) -> None:
        settings = self.settings
        assert self.service is not None
        async with trio.open_nursery() as connections:
            self.service.background = connections
            # The relay is bound before the first client can log in and ask for it.
            udp_port = 0
            if self.voice is not None:
                wanted = settings.udp_port or port
                try:
                    udp_port = await connections.start(self.voice.serve_udp, settings.host, wanted)
                except OSError as exc:
                    raise _listen_problem(
                        "UDP voice", settings.host, wanted, exc, "--udp-port"
                    ) from None
            connections.start_soon(self._accept, listeners, connections)
            info = ServerInfo(
                settings.host, port, udp_port, self._ssl is not None, fp, cert_path, admin_port
            )
            log.info("settings: %s", settings.describe())
            log.info(
                "listening on %s:%d (%s), %s, data in %s",
                settings.host,
                port,
                "TLS" if self._ssl else "plaintext",
                f"voice on UDP {udp_port}" if udp_port else "no voice",
                settings.data_dir,
            )
            if self._ssl is None:
                log.warning(
                    "plaintext: passwords, chat and the voice keys travel in clear;"
                    " anyone on the path can read them and listen in. Use TLS beyond this machine"
                )
            if fp:
                log.info("TLS certificate SHA-256 fingerprint: %s", fp)
            if admin_port is not None:
                log.info(
                    "admin HTTP on http://%s:%d (/health, /metrics, /api/*)%s",
                    settings.admin_host,
                    admin_port,
                    ", bearer token required" if settings.admin_token else "",
                )
            task_status.started(info)
            await self._shutdown.wait()
            self._accepting.cancel()
            self.service.calls.end_all()  # the parties hear why before the goodbye
            await self._say_goodbye()
            connections.cancel_scope.cancel()

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
        conn = Connection(tcp, address, self.settings.outgoing_queue, tls, self.metrics.traffic)
        self.metrics.connections_accepted += 1
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


SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""SIGHUP too: closing the terminal that runs the server must not kill it without the
goodbye and the database close (docs/OPERATIONS.md)."""


async def run_until_signalled(server: EchoMeshServer) -> None:
    """Run ``server`` until SIGINT, SIGTERM or SIGHUP, then shut it down in order."""
    with trio.open_signal_receiver(*SHUTDOWN_SIGNALS) as signals:

        async def watch() -> None:
            async for signum in signals:
                log.info("received %s", signal.Signals(signum).name)
                server.request_shutdown()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await server.serve()
            nursery.cancel_scope.cancel()
