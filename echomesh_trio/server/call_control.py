"""Calls as the server runs them: the Trio adapter around the pure ``CallBook``.

It tells both parties of every change (``CallRinging``, ``CallConnected``, ``CallEnded``),
moves their voice into the call's private relay room and back (``ControlService.
route_voice``), sleeps until each ringing call's deadline on Trio's clock, and writes a
record of every ended call to the database. The requests themselves are handled in
``features/calls.py``.

Parties are users, not sessions: a login that takes a session over (a reconnect) takes
its call over too, and is told the call's state (``session_resumed``). A call ends when a
party's session ends (``session_ended``: after the resume grace, a logout, a kick, a ban).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.server.calls import Call, CallBook, CallPhase
from echomesh_trio.server.state import Session
from echomesh_trio.server.store import CallRecord

if TYPE_CHECKING:
    from echomesh_trio.server.connection import Connection
    from echomesh_trio.server.service import ControlService

log = logging.getLogger("echomesh.server")


def relay_room_of(call_id: int) -> str:
    """The relay room of a connected call. Room names cannot contain control characters
    (``room_name_problem``), so this never collides with a real room."""
    return f"\x00call {call_id}"


class CallControl:
    """Every call on the server; one per ``ControlService``."""

    def __init__(self, svc: ControlService, ring_timeout: float) -> None:
        self.book = CallBook(ring_timeout)
        self._svc = svc
        self._members: dict[int, tuple[ev.Member, ev.Member]] = {}  # caller, callee
        self._requested_ms: dict[int, int] = {}
        self._answered_ms: dict[int, int] = {}
        self._writing = 0
        self._written = trio.lowlevel.ParkingLot()

    # ------------------------------------------------------------------ queries
    def relay_room(self, user_id: int) -> str | None:
        """The relay room of the user's connected call, if it is in one."""
        call = self.book.call_of(user_id)
        if call is None or call.phase is not CallPhase.CONNECTED:
            return None
        return relay_room_of(call.call_id)

    def active_calls(self) -> list[dict[str, object]]:
        """Ringing and connected calls, JSON-ready with the HTTP API's camelCase names."""
        out: list[dict[str, object]] = []
        for call in self.book.active():
            caller, callee = self._members[call.call_id]
            out.append(
                {
                    "callId": call.call_id,
                    "caller": caller.username,
                    "callerId": caller.user_id,
                    "callee": callee.username,
                    "calleeId": callee.user_id,
                    "state": call.phase.value,
                    "requestedMs": self._requested_ms[call.call_id],
                    "answeredMs": self._answered_ms.get(call.call_id),
                }
            )
        return out

    async def wait_records_written(self) -> None:
        """Return once every ended call's record is in the database."""
        while self._writing:
            await self._written.park()

    # ------------------------------------------------------------------ changes
    def place(
        self, caller: Session[Connection], callee: Session[Connection], request_id: int
    ) -> Call:
        """``caller`` calls ``callee`` (both online). Raises ``CallRefused``."""
        call = self.book.request(caller.user_id, callee.user_id, trio.current_time())
        self._members[call.call_id] = (caller.member(), callee.member())
        self._requested_ms[call.call_id] = self._svc.now_ms()
        if call.phase is CallPhase.ENDED:  # busy: it never rang
            self._ended(call, caller.user_id, request_id)
            return call
        log.info("call %d: %s calls %s", call.call_id, caller.username, callee.username)
        self._tell(call, self._state(call), caller.user_id, request_id)
        self._svc.background.start_soon(self._ring_timer, self.book.deadline(call))
        return call

    def accept(self, session: Session[Connection], call_id: int, request_id: int) -> None:
        call = self.book.accept(session.user_id, call_id, trio.current_time())
        self._answered_ms[call_id] = self._svc.now_ms()
        self._route(call)
        caller, callee = self._members[call_id]
        log.info("call %d: %s answered %s", call_id, callee.username, caller.username)
        self._tell(call, self._state(call), session.user_id, request_id)

    def reject(self, session: Session[Connection], call_id: int, request_id: int) -> None:
        call = self.book.reject(session.user_id, call_id, trio.current_time())
        self._ended(call, session.user_id, request_id)

    def hang_up(self, session: Session[Connection], call_id: int, request_id: int) -> None:
        call = self.book.hang_up(session.user_id, call_id, trio.current_time())
        self._ended(call, session.user_id, request_id)

    def session_resumed(self, session: Session[Connection], request_id: int) -> None:
        """A new connection took the user's session over: tell it the call it is in."""
        call = self.book.call_of(session.user_id)
        if call is not None:
            session.peer.send_nowait(self._state(call), request_id)

    def session_ended(self, session: Session[Connection]) -> None:
        """The user's session is going (called before it leaves the relay): so does its
        call, and the other party is told."""
        if self._svc.registry.current(session.user_id) is not session:
            return
        call = self.book.disconnect(session.user_id, trio.current_time())
        if call is not None:
            self._ended(call)

    def end_all(self, reason: ev.CallEndReason = ev.CallEndReason.SHUTDOWN) -> None:
        """End every call (the server is stopping); the parties are told first."""
        for call in self.book.end_all(trio.current_time(), reason):
            self._ended(call)

    # ------------------------------------------------------------------ internals
    async def _ring_timer(self, deadline: float) -> None:
        await trio.sleep_until(deadline)
        for call in self.book.expire(trio.current_time()):
            self._ended(call)

    def _state(self, call: Call) -> ev.CallRinging | ev.CallConnected:
        caller, callee = self._members[call.call_id]
        requested = self._requested_ms[call.call_id]
        if call.phase is CallPhase.RINGING:
            return ev.CallRinging(call.call_id, caller, callee, requested)
        return ev.CallConnected(
            call.call_id, caller, callee, requested, self._answered_ms[call.call_id]
        )

    def _route(self, call: Call) -> None:
        """Point both parties' voice where it goes now (the call, or back to its room)."""
        for user in (call.caller, call.callee):
            session = self._svc.registry.current(user)
            if session is not None:
                self._svc.route_voice(session)

    def _tell(
        self, call: Call, notice: ev.ServerNotice, actor: int = 0, request_id: int = 0
    ) -> None:
        """Both parties get ``notice``; the one whose request caused it, as the reply."""
        for user in (call.caller, call.callee):
            session = self._svc.registry.current(user)
            if session is not None:
                session.peer.send_nowait(notice, request_id if user == actor else 0)

    def _ended(self, call: Call, actor: int = 0, request_id: int = 0) -> None:
        assert call.end_reason is not None
        caller, callee = self._members.pop(call.call_id)
        requested_ms = self._requested_ms.pop(call.call_id)
        answered_ms = self._answered_ms.pop(call.call_id, None)
        duration_ms = round(call.duration * 1000)
        self._route(call)  # back to each party's active room
        ended = ev.CallEnded(
            call.call_id,
            caller,
            callee,
            call.end_reason,
            requested_ms,
            answered_ms or 0,
            duration_ms,
        )
        reason = call.end_reason.name.lower()
        if call.end_reason is ev.CallEndReason.BUSY:
            session = self._svc.registry.current(caller.user_id)
            if session is not None:  # the callee never heard it ring
                session.peer.send_nowait(ended, request_id)
        else:
            self._tell(call, ended, actor, request_id)
        log.info(
            "call %d: %s -> %s ended (%s) after %.1f s connected",
            call.call_id,
            caller.username,
            callee.username,
            reason,
            call.duration,
        )
        self._svc.metrics.calls_ended[reason] += 1
        record = CallRecord(
            caller.user_id,
            caller.username,
            callee.user_id,
            callee.username,
            requested_ms,
            answered_ms,
            self._svc.now_ms(),
            duration_ms,
            reason,
        )
        self._writing += 1
        self._svc.background.start_soon(self._write, record)

    async def _write(self, record: CallRecord) -> None:
        try:
            # Shielded: a call ended by the shutdown is still recorded (the database
            # closes only after every task of the server's nursery has finished).
            with trio.CancelScope(shield=True):
                await self._svc.store.run(self._svc.store.db.add_call, record)
        except Exception:
            log.exception("could not record call %s -> %s", record.caller, record.callee)
        finally:
            self._writing -= 1
            if not self._writing:
                self._written.unpark_all()
