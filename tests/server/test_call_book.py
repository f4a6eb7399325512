"""The call state machine (server/calls.py), pure: examples, and hypothesis driving any
sequence of requests, answers, hang-ups, disconnects, logins and timeouts."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from echomesh_trio.protocol.events import CallEndReason, ErrorCode
from echomesh_trio.server.calls import (
    AlreadyInCall,
    Call,
    CallBook,
    CallingYourself,
    CallPhase,
    CallRefused,
    NoSuchCall,
)

R = CallEndReason


def test_accept_then_hang_up() -> None:
    book = CallBook()
    call = book.request(1, 2, now=10.0)
    assert call.phase is CallPhase.RINGING and book.call_of(1) is book.call_of(2) is call
    assert book.next_deadline() == 40.0
    assert book.accept(2, call.call_id, now=12.0).phase is CallPhase.CONNECTED
    assert book.next_deadline() is None
    book.hang_up(1, 0, now=20.5)
    assert (call.phase, call.end_reason, call.duration) == (CallPhase.ENDED, R.HUNG_UP, 8.5)
    assert book.call_of(1) is None and book.call_of(2) is None and len(book) == 0


def test_refusals() -> None:
    book = CallBook()
    with pytest.raises(CallingYourself):
        book.request(1, 1, 0)
    call = book.request(1, 2, 0)
    with pytest.raises(AlreadyInCall) as busy_caller:
        book.request(1, 3, 0)
    assert busy_caller.value.code == ErrorCode.IN_CALL
    with pytest.raises(NoSuchCall, match="only the callee"):
        book.accept(1, call.call_id, 1)
    with pytest.raises(NoSuchCall):
        book.reject(3, call.call_id, 1)  # not a party
    with pytest.raises(NoSuchCall):
        book.hang_up(3, 0, 1)
    with pytest.raises(NoSuchCall):
        book.hang_up(1, call.call_id + 1, 1)  # not the call it is in
    with pytest.raises(NoSuchCall, match="no longer ringing"):
        book.accept(2, call.call_id, 30.0)  # at the deadline, even before expire() ran
    assert call.phase is CallPhase.RINGING


def test_busy_reject_timeout_disconnect_shutdown() -> None:
    book = CallBook(ring_timeout=30)
    first = book.request(1, 2, 0)
    busy = book.request(3, 2, 1)
    assert (busy.phase, busy.end_reason) == (CallPhase.ENDED, R.BUSY)
    assert book.call_of(3) is None and book.call_of(2) is first  # nobody's way
    assert book.reject(2, first.call_id, 2).end_reason is R.REJECTED
    late = book.request(3, 4, 5)
    assert book.expire(34.9) == [] and book.expire(35) == [late]
    assert late.end_reason is R.NO_ANSWER and late.duration == 0
    gone = book.request(5, 6, 40)
    book.accept(6, gone.call_id, 41)
    assert book.disconnect(5, 50) is gone and gone.end_reason is R.DISCONNECTED
    assert book.disconnect(5, 51) is None
    a, b = book.request(1, 2, 60), book.request(3, 4, 60)
    book.accept(2, a.call_id, 61)
    assert set(book.end_all(70)) == {a, b}
    assert {a.end_reason, b.end_reason} == {R.SHUTDOWN} and len(book) == 0


USERS = st.integers(min_value=1, max_value=5)


class CallMachine(RuleBasedStateMachine):
    """Drives a CallBook the way the server does: only online users call, a disconnect
    ends the user's call, time only moves forward, timeouts fire when due (or late). Each
    party's view is built only from the calls the book said it changed, as the server
    tells both parties of every change."""

    def __init__(self) -> None:
        super().__init__()
        self.book = CallBook(ring_timeout=30)
        self.now = 0.0
        self.online: set[int] = set()
        self.views: dict[int, dict[int, CallPhase]] = {}  # user -> call id -> phase told
        self.seen: dict[int, Call] = {}

    def _told(self, call: Call) -> None:
        self.seen[call.call_id] = call
        parties = (call.caller,) if call.end_reason is R.BUSY else (call.caller, call.callee)
        for user in parties:
            self.views.setdefault(user, {})[call.call_id] = call.phase

    def _try(self, action: object) -> None:
        try:
            result = action()  # type: ignore[operator]
        except CallRefused:
            return
        if isinstance(result, Call):
            self._told(result)

    @rule(user=USERS)
    def log_in(self, user: int) -> None:
        self.online.add(user)

    @rule(user=USERS)
    def disconnect(self, user: int) -> None:
        self.online.discard(user)
        call = self.book.disconnect(user, self.now)
        if call is not None:
            assert call.end_reason is R.DISCONNECTED
            self._told(call)

    @rule(caller=USERS, callee=USERS)
    def request(self, caller: int, callee: int) -> None:
        if caller in self.online and callee in self.online:
            self._try(lambda: self.book.request(caller, callee, self.now))

    @rule(user=USERS, pick=st.integers(0, 20))
    def accept(self, user: int, pick: int) -> None:
        self._try(lambda: self.book.accept(user, pick, self.now))

    @rule(user=USERS, pick=st.integers(0, 20))
    def reject(self, user: int, pick: int) -> None:
        self._try(lambda: self.book.reject(user, pick, self.now))

    @rule(user=USERS, pick=st.integers(0, 20))
    def hang_up(self, user: int, pick: int) -> None:
        self._try(lambda: self.book.hang_up(user, pick, self.now))

    @rule(dt=st.floats(min_value=0, max_value=40, allow_nan=False))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        for call in self.book.expire(self.now):
            assert call.end_reason is R.NO_ANSWER
            self._told(call)

    @precondition(lambda self: len(self.book) > 0)
    @rule()
    def shutdown(self) -> None:
        for call in self.book.end_all(self.now):
            self._told(call)

    @invariant()
    def consistent(self) -> None:
        active = self.book.active()
        users_in_calls = [u for c in active for u in (c.caller, c.callee)]
        assert len(users_in_calls) == len(set(users_in_calls))  # one call per user
        for call in active:
            assert call.active and call.caller != call.callee
            # No call outlives its parties.
            assert call.caller in self.online and call.callee in self.online
            assert self.book.call_of(call.caller) is self.book.call_of(call.callee) is call
            assert (call.answered_at is None) == (call.phase is CallPhase.RINGING)
            if call.phase is CallPhase.RINGING:
                assert self.now < self.book.deadline(call)  # timeouts ran when due
        for user in range(1, 6):
            call = self.book.call_of(user)
            assert call is None or call in active
        # Both parties were told the same, and what they were told is the truth.
        for call_id, call in self.seen.items():
            told = {u: v[call_id] for u, v in self.views.items() if call_id in v}
            assert set(told.values()) == {call.phase}
            if call.end_reason is not R.BUSY:
                assert set(told) == {call.caller, call.callee}
            assert (call.phase is CallPhase.ENDED) == (call.end_reason is not None)
            if call.phase is CallPhase.ENDED:
                assert call.ended_at is not None and call.duration >= 0
                assert not any(call is c for c in active)
        # Nobody believes they are in a call the book has ended, nor in two at once.
        for view in self.views.values():
            assert sum(1 for p in view.values() if p is not CallPhase.ENDED) <= 1

    @invariant()
    def ringing_calls_expire(self) -> None:
        deadline = self.book.next_deadline()
        ringing = [c for c in self.book.active() if c.phase is CallPhase.RINGING]
        assert (deadline is None) == (not ringing)


CallMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestCallMachine = CallMachine.TestCase
