"""Start real servers and clients on 127.0.0.1 for the server tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import trio

from echomesh_trio.client.control import ConnectionClosed, ControlConnection
from echomesh_trio.protocol import events as ev
from echomesh_trio.server.app import EchoMeshServer, ServerInfo
from echomesh_trio.server.config import Settings
from echomesh_trio.server.tlscert import pinned_client_context

N = TypeVar("N")


def make_settings(data_dir: Path, **changes: Any) -> Settings:
    """Settings for a test server. ``resume_grace`` is 0 unless a test sets it: a lost
    connection's session ends at once, so tests of disconnects need not wait for it. No
    admin HTTP unless a test asks for it (admin=True, admin_port=0)."""
    base = Settings(
        port=0,
        data_dir=data_dir,
        plaintext=True,
        password_cost=10,
        log_level="debug",
        resume_grace=0.0,
        admin=False,
        admin_port=0,
    )
    return dataclasses.replace(base, **changes)


async def start_server(
    nursery: trio.Nursery, settings: Settings
) -> tuple[EchoMeshServer, ServerInfo]:
    server = EchoMeshServer(settings)
    info = await nursery.start(server.serve)
    return server, info


async def connect(
    info: ServerInfo, sock: trio.socket.SocketType | None = None
) -> ControlConnection:
    """A client connection (over ``sock`` if given, e.g. one with small buffers)."""
    ctx = pinned_client_context(Path(info.cert_path)) if info.tls and info.cert_path else None
    if sock is None:
        return await ControlConnection.connect("127.0.0.1", info.port, ctx)
    await sock.connect(("127.0.0.1", info.port))
    stream: trio.abc.Stream = trio.SocketStream(sock)
    if ctx is not None:
        stream = trio.SSLStream(stream, ctx, server_hostname="127.0.0.1")
        await stream.do_handshake()
    return ControlConnection(stream)


async def login(info: ServerInfo, name: str, password: str = "secret") -> ControlConnection:
    conn = await connect(info)
    result = await conn.login(name, password)
    assert result.ok, result
    return conn


async def join(conn: ControlConnection, room: str, create: bool = False) -> ev.RoomSnapshot:
    await conn.send(ev.CreateRoom(room) if create else ev.JoinRoom(room))
    return await conn.receive_matching(ev.RoomSnapshot)


async def next_of(conn: ControlConnection, kind: type[N]) -> ev.Incoming[N]:
    """The next notice of type ``kind`` with its envelope's request id; notices before it
    are skipped."""
    while True:
        incoming = await conn.receive()
        if isinstance(incoming.event, kind):
            return ev.Incoming(incoming.request_id, incoming.event)


async def expect_closed(conn: ControlConnection, budget: float = 5.0) -> list[ev.ServerNotice]:
    """Read until the server closes the connection; return what arrived."""
    seen: list[ev.ServerNotice] = []
    with trio.fail_after(budget):
        try:
            while True:
                seen.append((await conn.receive()).event)
        except ConnectionClosed:
            return seen
