"""The HTTP side door: health, Prometheus metrics and a small JSON API (docs/OPERATIONS.md).

A plain ASGI app served by hypercorn's Trio worker inside the server's own nursery, so it
reads the live state directly (no locks: everything runs on the Trio thread). hypercorn
does all the HTTP; this module only routes and answers. Routes:

    GET /health            {"status", "timestamp", "uptime", "connections", "rooms",
                            "activeCalls", "userSessions"}; 503 with status "shutting_down"
                            at shutdown
    GET /metrics           Prometheus text format (metrics.py)
    GET /api/rooms         {"success": true, "data": [...], "total": N}
    GET /api/online-users  the same envelope
    GET /api/active-calls  the same envelope: calls ringing or connected now
    GET /api/call-stats    the same envelope: the last ``limit`` ended calls, newest first

With a token set, every route but /health needs ``Authorization: Bearer TOKEN`` (a load
balancer's probe needs no secret; /health shows counts only). ``Settings`` refuses an
admin host beyond loopback without a token.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import trio

if TYPE_CHECKING:
    from echomesh_trio.server.app import EchoMeshServer

_HYPERCORN_LOG = logging.getLogger("echomesh.admin.http")
_HYPERCORN_LOG.setLevel(logging.WARNING)  # its "Running on ..." repeats our own line

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_LIMIT = 1000
"""Largest ``limit`` a list endpoint accepts (and its default)."""

CALL_STATS_DEFAULT = 100
"""Call records ``/api/call-stats`` returns without a ``limit``."""

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class BadQuery(Exception):
    """A query parameter the client got wrong: 400 with this message."""


class AdminApp:
    """The ASGI application; ``server`` is the running EchoMeshServer."""

    def __init__(self, server: EchoMeshServer, token: str | None) -> None:
        self.server = server
        self.token = token
        self.started = time.monotonic()
        self.routes: dict[str, Callable[[dict[str, list[str]]], Awaitable[tuple[int, Any]]]] = {
            "/health": self.health,
            "/api/rooms": self.rooms,
            "/api/online-users": self.online_users,
            "/api/active-calls": self.active_calls,
            "/api/call-stats": self.call_stats,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # websocket: not served
            return
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            error = {"success": False, "error": "only GET is served"}
            await _json(send, 405, error, [(b"allow", b"GET, HEAD")])
            return
        if path != "/health" and not self._authorised(scope):
            await _json(
                send,
                401,
                {"success": False, "error": "missing or wrong bearer token"},
                [(b"www-authenticate", b'Bearer realm="echomesh"')],
            )
            return
        if path == "/metrics":
            body = self.server.metrics.exposition()
            await _respond(send, 200, body, PROMETHEUS_TEXT)
            return
        route = self.routes.get(path)
        if route is None:
            await _json(send, 404, {"success": False, "error": f"no such endpoint: {path}"})
            return
        try:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"), strict_parsing=False)
            status, payload = await route(query)
        except BadQuery as exc:
            status, payload = 400, {"success": False, "error": str(exc)}
        await _json(send, status, payload)

    def _authorised(self, scope: Scope) -> bool:
        if self.token is None:
            return True
        expected = b"Bearer " + self.token.encode()
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return hmac.compare_digest(bytes(value), expected)
        return False

    # ------------------------------------------------------------------ routes
    async def health(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        server = self.server
        service = server.service
        shutting_down = server.shutting_down
        body = {
            "status": "shutting_down" if shutting_down else "ok",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "uptime": round(time.monotonic() - self.started, 3),
            "connections": server.connection_count,
            "rooms": len(service.registry.rooms) if service else 0,
            "activeCalls": len(service.calls.book) if service else 0,
            "userSessions": len(service.registry.sessions) if service else 0,
        }
        return (503 if shutting_down else 200), body

    async def rooms(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        limit, offset = _paging(query)
        service = self.server.service
        listing = service.registry.listing() if service else []
        data = [{"name": r.room_id, "members": r.member_count} for r in listing]
        return 200, {"success": True, "data": data[offset : offset + limit], "total": len(data)}

    async def online_users(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        limit, offset = _paging(query)
        service = self.server.service
        sessions = sorted(service.registry.online(), key=lambda s: s.username) if service else []
        data = [
            {
                "userId": s.user_id,
                "username": s.username,
                "rooms": list(s.rooms),
                "voiceRoom": s.voice_room,
            }
            for s in sessions
        ]
        return 200, {"success": True, "data": data[offset : offset + limit], "total": len(data)}

    async def active_calls(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        limit, offset = _paging(query)
        service = self.server.service
        data = service.active_calls() if service else []
        return 200, {"success": True, "data": data[offset : offset + limit], "total": len(data)}

    async def call_stats(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """The last ``limit`` (default 100) ended calls, newest first; ``total`` counts
        every call recorded."""
        unknown = sorted(set(query) - {"limit"})
        if unknown:
            raise BadQuery(f"unknown query parameter {unknown[0]!r} (limit is known)")
        limit = _int_param(query, "limit", CALL_STATS_DEFAULT, 1, MAX_LIMIT)
        service = self.server.service
        if service is None:
            return 200, {"success": True, "data": [], "total": 0}
        store = service.store
        records = await store.run(store.db.call_stats, limit)
        total = await store.run(store.db.call_count)
        data = [r.as_dict() for r in records]
        return 200, {"success": True, "data": data, "total": total}


def _int_param(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    values = query.get(name)
    if not values:
        return default
    if len(values) > 1:
        raise BadQuery(f"{name} given more than once")
    text = values[0]
    if not text.isdigit() or not text.isascii():
        raise BadQuery(f"{name} must be a whole number from {low} to {high}, not {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise BadQuery(f"{name} must be from {low} to {high}, not {value}")
    return value


def _paging(query: dict[str, list[str]]) -> tuple[int, int]:
    unknown = sorted(set(query) - {"limit", "offset"})
    if unknown:
        raise BadQuery(f"unknown query parameter {unknown[0]!r} (limit and offset are known)")
    return (
        _int_param(query, "limit", MAX_LIMIT, 1, MAX_LIMIT),
        _int_param(query, "offset", 0, 0, 10**9),
    )


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    all_headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    await _respond(send, status, body, "application/json", headers)


def bind_admin_socket(host: str, port: int) -> socket.socket:
    """The admin listening socket, bound here so that a failure names the address
    (hypercorn then only listens on it). OSError as the kernel says."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = socket.getaddrinfo(host, port, family if ":" in host else 0, socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def serve_admin(
    app: AdminApp,
    sock: socket.socket,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on the bound ``sock`` with hypercorn until ``shutdown_trigger``
    returns; reports the port."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    port: int = sock.getsockname()[1]
    # hypercorn adopts the descriptor; our socket object lets go of it.
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = _HYPERCORN_LOG
    config.graceful_timeout = 1.0
    config.include_server_header = False
    status = _PortStatus(task_status, port)
    # hypercorn's ASGI types are TypedDicts; ours are plain mappings of the same messages.
    await serve(app, config, shutdown_trigger=shutdown_trigger, task_status=status)  # type: ignore[arg-type]


class _PortStatus:
    """hypercorn reports its binds as URLs; our caller gets the port number."""

    def __init__(self, task_status: trio.TaskStatus[int], port: int) -> None:
        self._task_status = task_status
        self._port = port

    def started(self, value: object = None) -> None:
        self._task_status.started(self._port)
