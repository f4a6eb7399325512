"""Login throttle and per-user budgets (pure, time passed in)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from echomesh_trio.server.limits import Backoff, BudgetPolicy, LoginThrottle, UserBudgets


def test_failures_for_one_user_do_not_lock_out_others_behind_the_address() -> None:
    throttle = LoginThrottle()
    for _ in range(7):  # 8 concurrent first logins of one name: 7 lose the race
        throttle.record_failure("10.0.0.1", "alice", 0.0)
    assert throttle.wait_time("10.0.0.1", "alice", 0.0) > 0
    assert throttle.wait_time("10.0.0.1", "bob", 0.0) == 0  # registrations still work
    assert throttle.wait_time("10.0.0.2", "alice", 0.0) == 0  # the user, elsewhere


def test_pair_backoff_doubles_and_success_clears_it() -> None:
    throttle = LoginThrottle(per_pair=Backoff(free=3, forget_after=60))
    for _ in range(3):
        throttle.record_failure("a", "bob", 0.0)
    assert throttle.wait_time("a", "bob", 0.0) == 1.0
    throttle.record_failure("a", "bob", 1.0)
    assert throttle.wait_time("a", "bob", 1.0) == 2.0
    throttle.record_success("a", "bob")
    assert throttle.wait_time("a", "bob", 1.0) == 0
    throttle.record_failure("a", "bob", 2.0)
    assert throttle.wait_time("a", "bob", 1000.0) == 0  # forgotten


def test_user_and_address_ceilings() -> None:
    throttle = LoginThrottle(per_user=Backoff(free=4, ceiling=60), per_address=Backoff(free=6))
    for i in range(4):  # one account guessed from many addresses
        throttle.record_failure(f"10.0.0.{i}", "carol", 0.0)
    assert throttle.wait_time("10.9.9.9", "carol", 0.0) > 0
    for i in range(6):  # many accounts guessed from one address
        throttle.record_failure("10.1.1.1", f"user{i}", 0.0)
    assert throttle.wait_time("10.1.1.1", "someone-new", 0.0) > 0
    throttle.record_success("10.1.1.1", "user0")  # a success does not clear the address
    assert throttle.wait_time("10.1.1.1", "someone-new", 0.0) > 0


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), max_size=300))
def test_throttle_tables_are_bounded(attempts: list[tuple[int, int]]) -> None:
    throttle = LoginThrottle(max_keys=10)
    for i, (address, user) in enumerate(attempts):
        throttle.record_failure(str(address), str(user), float(i))
    assert all(size <= 10 for size in throttle.table_sizes())


def test_typing_is_coalesced_to_about_one_per_second() -> None:
    budgets = UserBudgets(BudgetPolicy(typing_interval=1.0))
    forwarded = [budgets.allow_typing(1, "r", i % 2 == 0, i / 1000) for i in range(1000)]
    assert sum(forwarded) <= 2  # one "typing" and the "stopped" after it
    assert budgets.allow_typing(1, "r", True, 1.5)
    assert budgets.allow_typing(2, "r", True, 1.5)  # per user
    assert budgets.allow_typing(1, "other", True, 1.5)  # and per room


def test_join_leave_budget_and_room_creation_caps() -> None:
    budgets = UserBudgets(BudgetPolicy(room_action_rate=1.0, room_action_burst=20))
    verdicts = [budgets.allow_join(1, 0.0) for _ in range(50)]
    assert sum(v.allowed for v in verdicts) == 20
    refused = verdicts[-1]
    assert not refused and refused.retry_after > 0 and "too fast" in refused.reason
    assert budgets.allow_leave(1, 1.0)  # refilled at the rate
    budgets = UserBudgets(BudgetPolicy(rooms_per_hour=2, max_rooms=3))
    assert budgets.allow_create(1, 0.0, 0) and budgets.allow_create(1, 0.0, 1)
    assert not budgets.allow_create(1, 0.0, 2)  # per user
    assert budgets.allow_create(2, 0.0, 2)
    full = budgets.allow_create(3, 0.0, 3)  # server-wide
    assert not full and full.retry_after == 0 and "maximum of 3 rooms" in full.reason


@given(st.lists(st.floats(min_value=0, max_value=0.5), max_size=200))
def test_message_budget_never_exceeds_rate_and_burst(gaps: list[float]) -> None:
    budgets = UserBudgets(BudgetPolicy(message_rate=10, message_burst=20))
    now, taken = 0.0, 0
    for gap in gaps:
        now += gap
        taken += budgets.allow_message(7, now).allowed
    assert taken <= 20 + 10 * now + 1e-9


def test_budget_table_is_bounded() -> None:
    budgets = UserBudgets(max_users=5)
    for user in range(100):
        budgets.allow_message(user, 0.0)
    assert len(budgets) == 5
