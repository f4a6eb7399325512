"""One client connection: a bounded outgoing queue, a writer task and a reader loop.

Sending never blocks the sender: frames go into the connection's own bounded queue, and
a client that stops reading until that queue is full is disconnected. That way a slow
reader can never delay delivery to anyone else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import decode_request, notice_frame
from echomesh_trio.protocol.errors import ProtocolError
from echomesh_trio.protocol.framing import FrameDecoder

log = logging.getLogger("echomesh.server")

RECEIVE_SIZE = 16 * 1024
WRITE_BATCH_BYTES = 64 * 1024
"""The writer joins queued frames into one send of up to this size: one syscall (and one
TLS record) for a burst instead of one per frame."""

FLUSH_BUDGET = 2.0
"""Seconds a closing connection gets to send what is queued (an error, a goodbye)."""


class Connection:
    """The server's handle on one client. ``send_nowait`` is what the rest of the server
    uses; the loops below are run by the server's per-connection task."""

    def __init__(self, stream: trio.abc.Stream, address: str, queue_size: int) -> None:
        self.stream = stream
        self.address = address
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](queue_size)
        self.cancel_scope = trio.CancelScope()
        self.close_reason: str | None = None
        self.user: str | None = None  # for log lines, once logged in
        # Frames accepted into the queue and frames handed to the transport, so that a
        # sender can learn when a frame has really left (see wait_written).
        self.frames_queued = 0
        self.frames_written = 0
        self._progress = trio.Event()
        self.finished = False  # run() has returned: nothing more will be written

    def __repr__(self) -> str:
        return f"<Connection {self.address} {self.user or '-'}>"

    @property
    def closing(self) -> bool:
        return self.close_reason is not None

    def send_frame_nowait(self, frame: bytes) -> None:
        """Queue a whole frame; if the queue is full, drop this client (slow reader)."""
        if self.close_reason is not None:
            return
        try:
            self._out_send.send_nowait(frame)
            self.frames_queued += 1
        except trio.WouldBlock:
            self.abort("slow reader: outgoing queue full")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def offer_frame_nowait(self, frame: bytes) -> bool:
        """Queue a frame that may be dropped (tunnelled voice); False if it was.

        Droppable traffic may use only three quarters of the queue, so that it can never
        be what makes a client look like a slow reader to the chat that follows it.
        """
        if self.close_reason is not None:
            return False
        stats = self._out_send.statistics()
        if stats.current_buffer_used >= stats.max_buffer_size * 3 // 4:
            return False
        self.send_frame_nowait(frame)
        return True

    def send_nowait(self, notice: ev.ServerNotice, request_id: int = 0) -> None:
        self.send_frame_nowait(notice_frame(notice, request_id))

    def close(self, reason: str, goodbye: ev.Goodbye | None = None) -> None:
        """Finish gracefully: send what is queued (and ``goodbye``), then disconnect."""
        if self.close_reason is not None:
            return
        if goodbye is not None:
            self.send_nowait(goodbye)
        self.close_reason = reason
        self._out_send.close()
        # The writer ends the connection once the queue is drained; bound how long that
        # may take for a client that is not reading.
        self.cancel_scope.deadline = min(
            self.cancel_scope.deadline, trio.current_time() + FLUSH_BUDGET
        )

    def abort(self, reason: str) -> None:
        """Disconnect now, dropping anything queued."""
        if self.close_reason is None:
            self.close_reason = reason
        self._out_send.close()
        self.cancel_scope.cancel()

    async def write_loop(self) -> None:
        """Send queued frames until the queue is closed and drained."""
        receive = self._out_recv
        while True:
            try:
                frame = await receive.receive()
            except trio.EndOfChannel:
                return
            batch = [frame]
            size = len(frame)
            while size < WRITE_BATCH_BYTES:
                try:
                    more = receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                batch.append(more)
                size += len(more)
            await self.stream.send_all(b"".join(batch) if len(batch) > 1 else frame)
            self.frames_written += len(batch)
            self._progress.set()
            self._progress = trio.Event()

    async def wait_written(self, frame_number: int) -> bool:
        """Wait until the first ``frame_number`` queued frames were handed to the transport
        (TCP or TLS); False if the connection ended first."""
        while self.frames_written < frame_number:
            if self.finished:
                return False
            await self._progress.wait()
        return True

    async def read_loop(
        self,
        dispatch: Callable[[Connection, ev.ClientRequest], Awaitable[None]],
        idle_timeout: float,
    ) -> None:
        """Read frames and hand each request to ``dispatch``, in order, until the peer
        goes away, stays silent too long, or sends something we cannot parse."""
        decoder = FrameDecoder()
        while self.close_reason is None:
            with trio.move_on_after(idle_timeout) as idle:
                data = await self.stream.receive_some(RECEIVE_SIZE)
            if idle.cancelled_caught:
                self.close(
                    f"idle for {idle_timeout:g} s",
                    ev.Goodbye(
                        ev.GoodbyeReason.IDLE_TIMEOUT,
                        f"nothing received for {idle_timeout:g} seconds",
                    ),
                )
                return
            if not data:
                self.close("closed by client")
                return
            try:
                for body in decoder.feed(data):
                    request = decode_request(body)
                    await dispatch(self, request)
                    if self.close_reason is not None:
                        return
            except ProtocolError as exc:
                self.reject_malformed(exc)
                return
            except Exception:
                # A bug of ours: it ends this connection, with a reply, and nobody else's.
                log.exception("internal error serving %r", self)
                self.send_nowait(ev.ErrorReply(ev.ErrorCode.INTERNAL, "internal server error"))
                self.close(
                    "internal error",
                    ev.Goodbye(ev.GoodbyeReason.INTERNAL_ERROR, "internal server error; sorry"),
                )
                return

    def reject_malformed(self, exc: ProtocolError) -> None:
        code = ev.ErrorCode[exc.code_name.removeprefix("ERR_")]
        self.send_nowait(ev.ErrorReply(code, str(exc)))
        self.close(
            f"protocol error: {exc}",
            ev.Goodbye(ev.GoodbyeReason.PROTOCOL_ERROR, "closing after a malformed frame"),
        )

    async def run(
        self,
        dispatch: Callable[[Connection, ev.ClientRequest], Awaitable[None]],
        idle_timeout: float,
    ) -> None:
        """Run reader and writer until the connection ends; never raises for peer faults."""
        try:
            with self.cancel_scope:
                try:
                    async with trio.open_nursery() as nursery:

                        async def write_then_finish() -> None:
                            await self.write_loop()
                            # Everything queued before close() is sent: the connection is done.
                            nursery.cancel_scope.cancel()

                        nursery.start_soon(write_then_finish)
                        await self.read_loop(dispatch, idle_timeout)
                        # Reader is done: let the writer flush, within a budget.
                        self._out_send.close()
                        nursery.cancel_scope.deadline = trio.current_time() + FLUSH_BUDGET
                except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
                    if self.close_reason is None:
                        first = group.exceptions[0]
                        self.close_reason = f"connection lost: {first.__class__.__name__} {first}"
        finally:
            self.finished = True
            self._progress.set()
        if self.close_reason is None:
            self.close_reason = "cancelled"
