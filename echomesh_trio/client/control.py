"""A Trio adapter over the control protocol, for clients, tests and benchmarks.

It only frames and parses: it sends requests and yields the server's notices in order.
Higher-level behaviour (reconnects, request tracking) belongs to the client core above it.
"""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import TypeVar

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import decode_notice, request_frame
from echomesh_trio.protocol.framing import FrameDecoder

N = TypeVar("N")


class ControlConnection:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._decoder = FrameDecoder()
        self._pending: list[ev.ServerNotice] = []

    @classmethod
    async def connect(
        cls, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> ControlConnection:
        tcp = await trio.open_tcp_stream(host, port)
        stream: trio.abc.Stream = tcp
        if ssl_context is not None:
            stream = trio.SSLStream(tcp, ssl_context, server_hostname=host)
            await stream.do_handshake()
        return cls(stream)

    async def __aenter__(self) -> ControlConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def send(self, request: ev.ClientRequest) -> None:
        await self.stream.send_all(request_frame(request))

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (tests use it to send malformed input)."""
        await self.stream.send_all(data)

    async def receive(self) -> ev.ServerNotice:
        """The next notice; raises EOFError when the server closed the connection."""
        while not self._pending:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError("the server closed the connection")
            self._pending.extend(decode_notice(body) for body in self._decoder.feed(data))
        return self._pending.pop(0)

    async def receive_until(self, kind: type[N]) -> N:
        """Skip notices until one of type ``kind`` arrives, and return it."""
        while True:
            notice = await self.receive()
            if isinstance(notice, kind):
                return notice

    async def login(self, username: str, password: str) -> ev.LoginResult:
        await self.send(ev.Login(username, password, "echomesh-trio"))
        return await self.receive_until(ev.LoginResult)
