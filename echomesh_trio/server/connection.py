"""One client connection: a reader loop, a bounded outgoing queue and its writer.

Sending never blocks the sender: frames go into the connection's own bounded queue, and
a client that stops reading until that queue is full is disconnected. That way a slow
reader can never delay delivery to anyone else.

A frame for a connection with nothing queued is written to the socket at once, without a
task switch (with TLS, its records are made right then: see tls.py). A chat message to a
1,000-member room is then 1,000 non-blocking ``send`` calls (bench.control measured the
task-per-delivery path at ~28 us of server CPU per delivery; fan-out p99 fell from seconds
to tens of milliseconds). Whatever the kernel does not take is queued, and a writer task
runs only while the queue is not empty; an idle connection costs one task, its reader
(memory is a goal too: 20 KiB per connection).
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Awaitable, Callable

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import decode_request, notice_frame
from echomesh_trio.protocol.errors import ProtocolError
from echomesh_trio.protocol.framing import FrameDecoder
from echomesh_trio.server.metrics import Traffic
from echomesh_trio.server.tls import TlsError, TlsSession

log = logging.getLogger("echomesh.server")

RECEIVE_SIZE = 16 * 1024
WRITE_BATCH_BYTES = 64 * 1024
"""The writer joins queued frames into one send of up to this size: one syscall (and one
TLS record) for a burst instead of one per frame."""

FRAME_TIMEOUT = 10.0
"""Seconds a frame may take to arrive once its first byte has (the setting
``frame_timeout``); the TLS handshake has the same bound."""

FLUSH_BUDGET = 2.0
"""Seconds a closing connection gets to send what is queued (an error, a goodbye)."""


class Connection:
    """The server's handle on one client. ``send_nowait`` is what the rest of the server
    uses; ``run`` is the per-connection task."""

    __slots__ = (
        "_direct_fd",
        "_nursery",
        "_peer_closed",
        "_progress",
        "_queue",
        "_queue_limit",
        "_writing",
        "address",
        "cancel_scope",
        "close_reason",
        "finished",
        "frames_queued",
        "frames_written",
        "stream",
        "tls",
        "traffic",
        "user",
    )

    def __init__(
        self,
        stream: trio.SocketStream,
        address: str,
        queue_size: int,
        tls: TlsSession | None = None,
        traffic: Traffic | None = None,
    ) -> None:
        """``tls``: a session whose handshake is done; frames are then encrypted as they
        are sent (see echomesh_trio/server/tls.py) and otherwise handled alike.
        ``traffic``: the server's byte and slow-reader counters (metrics.py)."""
        self.stream = stream
        self.traffic = traffic if traffic is not None else Traffic()
        self.tls = tls
        self._peer_closed = False
        self.address = address
        # Frames are written with one non-blocking send when nothing is queued.
        self._direct_fd = stream.socket.fileno()
        # Created on first use: an empty deque costs 760 bytes, and most connections
        # never need one because their frames are written directly.
        self._queue: deque[bytes] | None = None
        self._queue_limit = queue_size
        self._writing = False  # a writer task is running; the queue is empty otherwise
        self._nursery: trio.Nursery | None = None
        self.cancel_scope = trio.CancelScope()
        self.close_reason: str | None = None
        self.user: str | None = None  # for log lines, once logged in
        # Frames accepted for sending and frames handed to the transport, so that a
        # sender can learn when a frame has really left (see wait_written).
        self.frames_queued = 0
        self.frames_written = 0
        self._progress: trio.Event | None = None  # exists while someone waits for progress
        self.finished = False  # run() has returned: nothing more will be written

    def __repr__(self) -> str:
        return f"<Connection {self.address} {self.user or '-'}>"

    @property
    def closing(self) -> bool:
        return self.close_reason is not None

    # ------------------------------------------------------------------ sending
    def send_frame_nowait(self, frame: bytes) -> None:
        """Send or queue a whole frame; if the queue is full, drop this client."""
        if self.close_reason is None:
            self._enqueue(frame)

    def send_nowait(self, notice: ev.ServerNotice, request_id: int = 0) -> None:
        self.send_frame_nowait(notice_frame(notice, request_id))

    def offer_frame_nowait(self, frame: bytes) -> bool:
        """Send a frame that may be dropped (tunnelled voice); False if it was.

        Droppable traffic may use only three quarters of the queue, so that it can never
        be what makes a client look like a slow reader to the chat that follows it.
        """
        queued = len(self._queue) if self._queue is not None else 0
        if self.close_reason is not None or queued >= self._queue_limit * 3 // 4:
            return False
        self._enqueue(frame)
        return True

    def _enqueue(self, frame: bytes) -> None:
        if self.tls is not None:
            try:
                frame = self.tls.seal(frame)
            except TlsError as exc:
                self.abort(str(exc))
                return
        self._send_raw(frame)

    def _send_raw(self, frame: bytes) -> None:
        """Send bytes as they are (a frame, or TLS records), in order with the queue."""
        self.frames_queued += 1
        if not self._writing:
            try:
                sent = os.write(self._direct_fd, frame)
            except OSError:  # BlockingIOError, or a failing connection the reader will see
                sent = 0
            self.traffic.bytes_sent += sent
            if sent == len(frame):
                self._written(1)
                return
            frame = frame[sent:]  # the rest is queued, still in order
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if len(queue) >= self._queue_limit:
            self.frames_queued -= 1
            self.traffic.slow_reader_drops += 1
            self.abort("slow reader: outgoing queue full")
            return
        queue.append(frame)
        if not self._writing and self._nursery is not None:
            self._writing = True
            self._nursery.start_soon(self._write_queued)

    async def _write_queued(self) -> None:
        """Send everything queued, joining frames into sends of up to WRITE_BATCH_BYTES."""
        queue = self._queue
        assert queue is not None
        while queue:
            batch = [queue.popleft()]
            size = len(batch[0])
            while queue and size < WRITE_BATCH_BYTES:
                size += len(queue[0])
                batch.append(queue.popleft())
            await self.stream.send_all(b"".join(batch) if len(batch) > 1 else batch[0])
            self.traffic.bytes_sent += size
            self._written(len(batch))
        self._writing = False
        if self.close_reason is not None:
            self.cancel_scope.cancel()  # everything queued before close() is sent: done

    def _written(self, frames: int) -> None:
        self.frames_written += frames
        if self._progress is not None:
            self._progress.set()
            self._progress = None

    async def wait_written(self, frame_number: int) -> bool:
        """Wait until the first ``frame_number`` frames were handed to the transport (TCP
        or TLS); False if the connection ended first."""
        while self.frames_written < frame_number:
            if self.finished:
                return False
            if self._progress is None:
                self._progress = trio.Event()
            await self._progress.wait()
        return True

    # ------------------------------------------------------------------ closing
    def close(self, reason: str, goodbye: ev.Goodbye | None = None) -> None:
        """Finish gracefully: send what is queued (and ``goodbye``), then disconnect."""
        if self.close_reason is not None:
            return
        if goodbye is not None:
            self._enqueue(notice_frame(goodbye))
        if self.tls is not None and self.close_reason is None:
            self._send_raw(self.tls.close_notify())
        if self.close_reason is not None:  # the goodbye overflowed the queue: aborted
            return
        self.close_reason = reason
        if self._writing:
            # The writer ends the connection once the queue is drained; bound how long
            # that may take for a client that is not reading.
            self.cancel_scope.deadline = min(
                self.cancel_scope.deadline, trio.current_time() + FLUSH_BUDGET
            )
        elif self._nursery is not None:
            self.cancel_scope.cancel()

    def abort(self, reason: str) -> None:
        """Disconnect now, dropping anything queued."""
        if self.close_reason is None:
            self.close_reason = reason
        self._queue = None
        self.cancel_scope.cancel()

    # ------------------------------------------------------------------ receiving
    async def read_loop(
        self,
        dispatch: Callable[[Connection, ev.Incoming[ev.ClientRequest]], Awaitable[None]],
        idle_timeout: float,
        frame_timeout: float = FRAME_TIMEOUT,
    ) -> None:
        """Read frames and hand each request to ``dispatch``, in order, until the peer
        goes away, stays silent too long, takes too long over one frame, or sends
        something we cannot parse."""
        decoder = FrameDecoder()
        request_id = 0  # of the request being handled, for an internal-error reply
        # A frame under way must be whole by this time; without it, a client sending one
        # byte every few seconds would hold the connection (and its buffer) forever.
        frame_deadline = math.inf
        # One scope for the whole loop, its deadline pushed back after every read (a new
        # scope per read would be garbage per message and memory per idle connection).
        with trio.CancelScope() as idle:
            while self.close_reason is None:
                idle.deadline = min(trio.current_time() + idle_timeout, frame_deadline)
                data = await self._receive()
                if not data:
                    self.close("closed by client")
                    return
                idle.deadline = math.inf  # requests may take their time (a slow disk)
                try:
                    bodies = decoder.feed(data)
                    for body in bodies:
                        try:
                            incoming = decode_request(body)
                        except ProtocolError as exc:
                            if exc.closes_connection:
                                raise
                            self._refuse(exc)  # well-formed but undefined: stay open
                            continue
                        request_id = incoming.request_id
                        await dispatch(self, incoming)
                        request_id = 0
                        if self.close_reason is not None:
                            return
                except ProtocolError as exc:
                    self.reject_malformed(exc)
                    return
                except Exception:
                    # A bug of ours: it ends this connection, with a reply, and nobody else's.
                    log.exception("internal error serving %r", self)
                    self.send_nowait(
                        ev.ErrorReply(ev.ErrorCode.INTERNAL, "internal server error"), request_id
                    )
                    self.close(
                        "internal error",
                        ev.Goodbye(ev.GoodbyeReason.INTERNAL_ERROR, "internal server error; sorry"),
                    )
                    return
                # The clock of a frame starts once its first bytes are read and the
                # requests before it are handled, so our own slowness never counts.
                if not decoder.buffered:
                    frame_deadline = math.inf
                elif bodies or frame_deadline == math.inf:
                    frame_deadline = trio.current_time() + frame_timeout
        if not idle.cancelled_caught:
            return
        if trio.current_time() >= frame_deadline:
            message = f"frame not completed within {frame_timeout:g} seconds"
            self.send_nowait(ev.ErrorReply(ev.ErrorCode.MALFORMED_FRAME, message))
            self.close(
                f"slow frame: {decoder.buffered} bytes in {frame_timeout:g} s",
                ev.Goodbye(ev.GoodbyeReason.PROTOCOL_ERROR, message),
            )
            return
        self.close(
            f"idle for {idle_timeout:g} s",
            ev.Goodbye(
                ev.GoodbyeReason.IDLE_TIMEOUT,
                f"nothing received for {idle_timeout:g} seconds",
            ),
        )

    async def _receive(self) -> bytes:
        """The next bytes of the client's stream (decrypted with TLS); b"" at its end."""
        if self.tls is None:
            data = await self.stream.receive_some(RECEIVE_SIZE)
            self.traffic.bytes_received += len(data)
            return data
        # Start with what TLS already holds: a client may send its first request in the
        # same segment as the end of the handshake.
        data = b""
        while not self._peer_closed:
            try:
                plain, reply, self._peer_closed = self.tls.open(data)
            except TlsError as exc:
                raise trio.BrokenResourceError(str(exc)) from None
            if reply:
                self._send_raw(reply)
            if plain:
                return plain
            if self._peer_closed:
                break
            data = await self.stream.receive_some(RECEIVE_SIZE)
            self.traffic.bytes_received += len(data)
            if not data:
                break
        return b""

    def _refuse(self, exc: ProtocolError) -> None:
        code = ev.ErrorCode[exc.code_name.removeprefix("ERR_")]
        self.send_nowait(ev.ErrorReply(code, str(exc)), exc.request_id)

    def reject_malformed(self, exc: ProtocolError) -> None:
        self._refuse(exc)
        self.close(
            f"protocol error: {exc}",
            ev.Goodbye(ev.GoodbyeReason.PROTOCOL_ERROR, "closing after a malformed frame"),
        )

    async def run(
        self,
        dispatch: Callable[[Connection, ev.Incoming[ev.ClientRequest]], Awaitable[None]],
        idle_timeout: float,
        frame_timeout: float = FRAME_TIMEOUT,
    ) -> None:
        """Serve the connection until it ends; never raises for the peer's faults."""
        try:
            with self.cancel_scope:
                try:
                    async with trio.open_nursery() as nursery:
                        await self._serve(nursery, dispatch, idle_timeout, frame_timeout)
                except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
                    if self.close_reason is None:
                        first = group.exceptions[0]
                        self.close_reason = f"connection lost: {first.__class__.__name__} {first}"
        finally:
            self._queue = None
            self.finished = True
            if self._progress is not None:
                self._progress.set()
        if self.close_reason is None:
            self.close_reason = "cancelled"

    async def _serve(
        self,
        nursery: trio.Nursery,
        dispatch: Callable[[Connection, ev.Incoming[ev.ClientRequest]], Awaitable[None]],
        idle_timeout: float,
        frame_timeout: float,
    ) -> None:
        self._nursery = nursery
        try:
            if self._queue and not self._writing:  # queued before run()
                self._writing = True
                nursery.start_soon(self._write_queued)
            if self.close_reason is None:
                await self.read_loop(dispatch, idle_timeout, frame_timeout)
        finally:
            # From here on the nursery may close at any moment: nobody may start a
            # writer in it any more (what is queued now is the running writer's).
            self._nursery = None
        if self._writing:  # let the writer flush, within a budget
            self.cancel_scope.deadline = min(
                self.cancel_scope.deadline, trio.current_time() + FLUSH_BUDGET
            )
