"""1:1 calls: the state machine, plain state with time passed in (no I/O, no clock).

A call is a private two-person voice room. It rings (the callee is told) until the callee
accepts or rejects it, either party hangs up or disconnects, or ``ring_timeout`` passes;
once accepted it is connected until either party hangs up or disconnects, or the server
stops. Every user is in at most one call. ``CallBook`` answers every request with the
``Call`` it changed (its ``phase`` and ``end_reason`` say how); the caller of these
methods (``server/features/calls.py``) tells both parties, moves their voice, drives the
ring timeout on its clock and writes the record of every ended call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from echomesh_trio.protocol.events import CallEndReason, ErrorCode

RING_TIMEOUT = 30.0
"""Seconds a call rings before it ends with NO_ANSWER."""


class CallPhase(enum.Enum):
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


@dataclass(eq=False, slots=True)
class Call:
    """One call; times are on the caller-supplied clock (seconds)."""

    call_id: int
    caller: int
    callee: int
    requested_at: float
    phase: CallPhase = CallPhase.RINGING
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: CallEndReason | None = None

    @property
    def active(self) -> bool:
        return self.phase is not CallPhase.ENDED

    def has(self, user: int) -> bool:
        return user in (self.caller, self.callee)

    def other(self, user: int) -> int:
        return self.callee if user == self.caller else self.caller

    @property
    def duration(self) -> float:
        """Connected time so far (or in all, once ended); 0 if it never connected."""
        if self.answered_at is None or self.ended_at is None:
            return 0.0
        return self.ended_at - self.answered_at


class CallRefused(Exception):
    """A call request the requester may not make; ``code`` is the error to answer with."""

    code = ErrorCode.BAD_REQUEST


class CallingYourself(CallRefused):
    pass


class AlreadyInCall(CallRefused):
    code = ErrorCode.IN_CALL


class NoSuchCall(CallRefused):
    code = ErrorCode.NO_SUCH_CALL


class CallBook:
    """Every call that rings or is connected, and who is in which."""

    def __init__(self, ring_timeout: float = RING_TIMEOUT) -> None:
        self.ring_timeout = ring_timeout
        self._calls: dict[int, Call] = {}  # active calls by id
        self._by_user: dict[int, Call] = {}
        self._last_id = 0

    def __len__(self) -> int:
        return len(self._calls)

    def call_of(self, user: int) -> Call | None:
        """The call ``user`` is in (ringing or connected), if any."""
        return self._by_user.get(user)

    def active(self) -> list[Call]:
        return list(self._calls.values())

    def deadline(self, call: Call) -> float:
        """When a ringing call stops ringing."""
        return call.requested_at + self.ring_timeout

    def next_deadline(self) -> float | None:
        ringing = [self.deadline(c) for c in self._calls.values() if c.phase is CallPhase.RINGING]
        return min(ringing, default=None)

    # ------------------------------------------------------------------ requests
    def request(self, caller: int, callee: int, now: float) -> Call:
        """``caller`` calls ``callee`` (both online: the caller checks). A busy callee
        ends the new call at once (BUSY); it then never rang and is in nobody's way."""
        if caller == callee:
            raise CallingYourself("you cannot call yourself")
        if caller in self._by_user:
            raise AlreadyInCall("you are already in a call; hang up first")
        self._last_id += 1
        call = Call(self._last_id, caller, callee, now)
        if callee in self._by_user:
            self._finish(call, CallEndReason.BUSY, now)
            return call
        self._calls[call.call_id] = call
        self._by_user[caller] = self._by_user[callee] = call
        return call

    def accept(self, user: int, call_id: int, now: float) -> Call:
        call = self._ringing_for(user, call_id, now, "accept")
        call.phase = CallPhase.CONNECTED
        call.answered_at = now
        return call

    def reject(self, user: int, call_id: int, now: float) -> Call:
        call = self._ringing_for(user, call_id, now, "reject")
        self._end(call, CallEndReason.REJECTED, now)
        return call

    def hang_up(self, user: int, call_id: int, now: float) -> Call:
        """Either party ends its call, ringing or connected (``call_id`` 0: its call)."""
        call = self._by_user.get(user)
        if call is None or (call_id and call.call_id != call_id):
            raise NoSuchCall("you are not in that call" if call_id else "you are not in a call")
        self._end(call, CallEndReason.HUNG_UP, now)
        return call

    # ------------------------------------------------------------------ events
    def disconnect(self, user: int, now: float) -> Call | None:
        """``user``'s session ended: so does its call."""
        call = self._by_user.get(user)
        if call is not None:
            self._end(call, CallEndReason.DISCONNECTED, now)
        return call

    def expire(self, now: float) -> list[Call]:
        """End every call that has rung for ``ring_timeout`` (NO_ANSWER)."""
        due = [
            c
            for c in self._calls.values()
            if c.phase is CallPhase.RINGING and self.deadline(c) <= now
        ]
        for call in due:
            self._end(call, CallEndReason.NO_ANSWER, now)
        return due

    def end_all(self, now: float, reason: CallEndReason = CallEndReason.SHUTDOWN) -> list[Call]:
        calls = list(self._calls.values())
        for call in calls:
            self._end(call, reason, now)
        return calls

    # ------------------------------------------------------------------ internals
    def _ringing_for(self, user: int, call_id: int, now: float, verb: str) -> Call:
        call = self._calls.get(call_id)
        if call is None or not call.has(user):
            raise NoSuchCall(f"no call {call_id} of yours to {verb}")
        if call.callee != user:
            raise NoSuchCall(f"only the callee can {verb} a call")
        if call.phase is not CallPhase.RINGING or now >= self.deadline(call):
            raise NoSuchCall(f"call {call_id} is no longer ringing")
        return call

    def _end(self, call: Call, reason: CallEndReason, now: float) -> None:
        del self._calls[call.call_id]
        for user in (call.caller, call.callee):
            if self._by_user.get(user) is call:
                del self._by_user[user]
        self._finish(call, reason, now)

    @staticmethod
    def _finish(call: Call, reason: CallEndReason, now: float) -> None:
        call.phase = CallPhase.ENDED
        call.end_reason = reason
        call.ended_at = now
