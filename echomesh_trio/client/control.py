"""A Trio adapter over the control protocol, for clients, tests and benchmarks.

It frames and parses, and nothing more: requests go out with a request id, and every
notice the server sends comes back, in order, as ``Incoming(request_id, event)``. Any
number of tasks may send at once (one lock keeps frames whole); one task at a time
receives. When the connection ends, ``receive`` raises ``ConnectionClosed`` carrying the
server's ``Goodbye`` if it said one. Reconnects and request tracking belong to the client
core above it.
"""

from __future__ import annotations

import ssl
from collections import deque
from types import TracebackType
from typing import Final, TypeVar

import trio

from echomesh_trio import __version__
from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import decode_notice, request_frame
from echomesh_trio.protocol.framing import FrameDecoder

N = TypeVar("N")

MAX_BUFFERED: Final = 10_000
"""Notices held back by ``receive_matching`` while it looks for another one. A caller that
keeps skipping without ever reading the rest is a bug; past this it gets BufferError."""

RECEIVE_SIZE: Final = 65_536


class ConnectionClosed(Exception):
    """The control connection ended. ``goodbye`` is the server's reason when it sent one
    (it always does when it closes on purpose); None when the connection was just lost."""

    def __init__(self, goodbye: ev.Goodbye | None, detail: str = "") -> None:
        self.goodbye = goodbye
        if goodbye is not None:
            text = f"the server closed the connection: {goodbye.reason.name}: {goodbye.message}"
        else:
            text = f"the connection to the server was lost{': ' + detail if detail else ''}"
        super().__init__(text)


class RequestRefused(Exception):
    """The server answered a request with an error; ``reply`` is its ErrorReply."""

    def __init__(self, reply: ev.ErrorReply) -> None:
        super().__init__(f"{reply.code.name}: {reply.message}")
        self.reply = reply


class ControlConnection:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._decoder = FrameDecoder()
        self._buffered: deque[ev.Incoming[ev.ServerNotice]] = deque()  # passed over
        self._decoded: deque[ev.Incoming[ev.ServerNotice]] = deque()  # read, not yet seen
        self._send_lock = trio.StrictFIFOLock()
        self._receiving = False
        self._last_request_id = 0
        self.goodbye: ev.Goodbye | None = None
        """The server's goodbye, once it has arrived."""

    @classmethod
    async def connect(
        cls, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> ControlConnection:
        tcp = await trio.open_tcp_stream(host, port)
        stream: trio.abc.Stream = tcp
        if ssl_context is not None:
            stream = trio.SSLStream(tcp, ssl_context, server_hostname=host)
            try:
                await stream.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(tcp)
                raise
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

    # ------------------------------------------------------------------ sending
    def next_request_id(self) -> int:
        """A fresh non-zero request id (uint32, wrapping)."""
        self._last_request_id = self._last_request_id % 0xFFFF_FFFF + 1
        return self._last_request_id

    async def send(self, request: ev.ClientRequest, request_id: int = 0) -> None:
        """Send one request; safe to call from several tasks at once."""
        await self.send_raw(request_frame(request, request_id))

    async def request(self, request: ev.ClientRequest) -> int:
        """Send ``request`` with a fresh request id and return the id; the server's direct
        reply (every frame of it) carries the same id."""
        request_id = self.next_request_id()
        await self.send(request, request_id)
        return request_id

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (tests use it to send malformed input)."""
        async with self._send_lock:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ConnectionClosed(self.goodbye, str(exc)) from exc

    # ------------------------------------------------------------------ receiving
    async def receive(self) -> ev.Incoming[ev.ServerNotice]:
        """The next notice. Raises ConnectionClosed when the connection has ended."""
        if self._buffered:
            return self._buffered.popleft()
        return await self._read_one()

    async def receive_matching(self, kind: type[N], *, request_id: int | None = None) -> N:
        """The first notice of type ``kind`` (and with ``request_id``, if given). Notices
        passed over on the way are kept, in order, for the next ``receive``."""
        for i, incoming in enumerate(self._buffered):
            if _matches(incoming, kind, request_id):
                del self._buffered[i]
                return incoming.event  # type: ignore[return-value]
        while True:
            incoming = await self._read_one()
            if _matches(incoming, kind, request_id):
                return incoming.event  # type: ignore[return-value]
            if len(self._buffered) >= MAX_BUFFERED:
                raise BufferError(f"{MAX_BUFFERED} notices passed over and never read")
            self._buffered.append(incoming)

    async def _read_one(self) -> ev.Incoming[ev.ServerNotice]:
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving")
        self._receiving = True
        try:
            while not self._decoded:
                try:
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise ConnectionClosed(self.goodbye, str(exc)) from exc
                if not data:
                    raise ConnectionClosed(self.goodbye, "end of stream")
                for body in self._decoder.feed(data):
                    incoming = decode_notice(body)
                    if isinstance(incoming.event, ev.Goodbye):
                        self.goodbye = incoming.event
                    self._decoded.append(incoming)
            return self._decoded.popleft()
        finally:
            self._receiving = False

    # ------------------------------------------------------------------ conveniences
    async def login(
        self, username: str, password: str, client_name: str = f"echomesh-trio {__version__}"
    ) -> ev.LoginResult:
        """Log in and return the server's answer (other notices stay queued). A login the
        server refuses as a request (already logged in on this connection) raises
        RequestRefused."""
        request_id = await self.request(ev.Login(username, password, client_name))
        while True:
            reply = await self.receive_matching(object, request_id=request_id)
            if isinstance(reply, ev.LoginResult):
                return reply
            if isinstance(reply, ev.ErrorReply):
                raise RequestRefused(reply)


def _matches(incoming: ev.Incoming[ev.ServerNotice], kind: type, request_id: int | None) -> bool:
    return isinstance(incoming.event, kind) and (
        request_id is None or incoming.request_id == request_id
    )
