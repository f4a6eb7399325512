"""Rate limiting, login throttling and per-user budgets: pure state, time passed in.

Every table here is bounded: the stalest entry goes first when one is full, so that a
flood of new keys (addresses, names, users) costs memory that does not grow with it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


class TokenBucket:
    """Allows ``rate`` events per second on average and bursts of up to ``burst``."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._stamp = now

    def try_take(self, now: float) -> bool:
        """Spend one token if one is available."""
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def retry_after(self, now: float) -> float:
        """Seconds until the next token is available (0 when one is)."""
        self._refill(now)
        return max(0.0, (1 - self._tokens) / self._rate)


# ---------------------------------------------------------------------- login throttle
@dataclass(slots=True)
class _Failures:
    count: int
    last: float
    locked_until: float


@dataclass(frozen=True, slots=True)
class Backoff:
    """One throttle policy: ``free`` failures, then lockouts of ``base`` s doubling per
    further failure up to ``ceiling`` s; failures are forgotten ``forget_after`` s after
    the last one."""

    free: int
    base: float = 1.0
    ceiling: float = 300.0
    forget_after: float = 900.0


class _FailureTable:
    """Failed attempts per key under one ``Backoff``, at most ``max_keys`` keys."""

    def __init__(self, policy: Backoff, max_keys: int) -> None:
        self.policy = policy
        self.max_keys = max_keys
        self._table: OrderedDict[str, _Failures] = OrderedDict()  # stalest first

    def __len__(self) -> int:
        return len(self._table)

    def _get(self, key: str, now: float) -> _Failures | None:
        entry = self._table.get(key)
        if entry is not None and now - entry.last > self.policy.forget_after:
            del self._table[key]
            return None
        return entry

    def wait_time(self, key: str, now: float) -> float:
        entry = self._get(key, now)
        return max(0.0, entry.locked_until - now) if entry is not None else 0.0

    def record_failure(self, key: str, now: float) -> None:
        entry = self._get(key, now)
        if entry is None:
            if len(self._table) >= self.max_keys:
                self._table.popitem(last=False)
            entry = self._table[key] = _Failures(0, now, 0.0)
        else:
            self._table.move_to_end(key)
        entry.count += 1
        entry.last = now
        excess = entry.count - self.policy.free
        if excess >= 0:
            lockout = min(self.policy.ceiling, self.policy.base * 2.0**excess)
            entry.locked_until = max(entry.locked_until, now + lockout)

    def clear(self, key: str) -> None:
        self._table.pop(key, None)


class LoginThrottle:
    """Slows down password guessing without locking out the innocent.

    Failures are counted three ways, each with its own policy:

    - per (address, user): the tight one (5 free failures, then 1 s, 2 s, 4 s ... up to
      5 minutes). Guessing one account from one place is what it stops; other users
      behind the same address (a NAT, an office) are not affected.
    - per user, from any address: looser (20 free failures, lockout up to 60 s), so that
      guessing one account from many addresses is slowed too, while an attacker who
      fails on purpose can keep the real user out for at most a minute at a time.
    - per address, for any user: a ceiling (100 free failures, up to 5 minutes) against
      one address trying many accounts.

    A successful login clears the (address, user) and the user counters, never the
    address's: one good password must not buy a guesser new attempts on other names.
    ``user`` is the canonical name (see names.py), so ``Alice`` and ``alice`` count alike.
    """

    def __init__(
        self,
        per_pair: Backoff = Backoff(free=5),
        per_user: Backoff = Backoff(free=20, ceiling=60.0),
        per_address: Backoff = Backoff(free=100),
        max_keys: int = 100_000,
    ) -> None:
        self._pairs = _FailureTable(per_pair, max_keys)
        self._users = _FailureTable(per_user, max_keys)
        self._addresses = _FailureTable(per_address, max_keys)

    @staticmethod
    def _pair(address: str, user: str) -> str:
        return f"{address}\x00{user}"

    def wait_time(self, address: str, user: str, now: float) -> float:
        """Seconds before an attempt for ``user`` from ``address`` is considered (0: now)."""
        return max(
            self._pairs.wait_time(self._pair(address, user), now),
            self._users.wait_time(user, now),
            self._addresses.wait_time(address, now),
        )

    def record_failure(self, address: str, user: str, now: float) -> None:
        self._pairs.record_failure(self._pair(address, user), now)
        self._users.record_failure(user, now)
        self._addresses.record_failure(address, now)

    def record_success(self, address: str, user: str) -> None:
        self._pairs.clear(self._pair(address, user))
        self._users.clear(user)

    def table_sizes(self) -> tuple[int, int, int]:
        """Keys held: (address, user) pairs, users, addresses."""
        return len(self._pairs), len(self._users), len(self._addresses)


# ---------------------------------------------------------------------- user budgets
@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer of a budget: allowed (and spent), or refused with when to retry and why."""

    allowed: bool
    retry_after: float = 0.0
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = Verdict(True)


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    """What one user may do; the defaults are the server's (server/config.py)."""

    message_rate: float = 10.0  # chat and direct messages per second ...
    message_burst: int = 20  # ... with bursts of up to this many
    room_action_rate: float = 1.0  # joins and leaves per second ...
    room_action_burst: int = 20  # ... with bursts of up to this many
    rooms_per_hour: float = 10.0  # rooms one user may create per hour (also the burst)
    max_rooms: int = 1_000  # persistent rooms on the whole server
    typing_interval: float = 1.0  # seconds between forwarded typing notices per room


class _UserBudget:
    __slots__ = ("creates", "messages", "room_actions", "typing")

    def __init__(self, policy: BudgetPolicy, now: float) -> None:
        self.messages = TokenBucket(policy.message_rate, policy.message_burst, now)
        self.room_actions = TokenBucket(policy.room_action_rate, policy.room_action_burst, now)
        per_hour = policy.rooms_per_hour
        self.creates = TokenBucket(per_hour / 3600.0, max(1.0, per_hour), now)
        # room -> (when the last notice was forwarded, the state it forwarded)
        self.typing: dict[str, tuple[float, bool]] = {}


class UserBudgets:
    """Per-user budgets for every request that fans out or persists.

    - ``allow_message``: chat and direct messages share one bucket.
    - ``allow_room_action``: joins and leaves share one bucket (a join fans out to the
      room and reads its history; a leave fans out).
    - ``allow_create``: room creation, per user (a bucket refilling ``rooms_per_hour``)
      and server-wide (at most ``max_rooms`` rooms exist).
    - ``allow_typing``: typing notices are coalesced rather than refused: per user and
      room at most one is forwarded per ``typing_interval``, except that a "stopped"
      notice right after a forwarded "typing" one always goes (so no indicator is left
      on). Extra frames are dropped silently: they carry no information the room lacks.

    Budgets outlive sessions (so reconnecting does not refill them); the table holds at
    most ``max_users`` users, the least recently active going first.
    """

    def __init__(self, policy: BudgetPolicy = BudgetPolicy(), max_users: int = 100_000) -> None:
        self.policy = policy
        self.max_users = max_users
        self._users: OrderedDict[int, _UserBudget] = OrderedDict()

    def __len__(self) -> int:
        return len(self._users)

    def _budget(self, user: int, now: float) -> _UserBudget:
        budget = self._users.get(user)
        if budget is None:
            if len(self._users) >= self.max_users:
                self._users.popitem(last=False)
            budget = self._users[user] = _UserBudget(self.policy, now)
        else:
            self._users.move_to_end(user)
        return budget

    @staticmethod
    def _take(bucket: TokenBucket, now: float, reason: str) -> Verdict:
        if bucket.try_take(now):
            return ALLOWED
        wait = bucket.retry_after(now)
        return Verdict(False, wait, f"{reason}; retry in {wait:.2f} s")

    def allow_message(self, user: int, now: float) -> Verdict:
        return self._take(self._budget(user, now).messages, now, "sending too fast")

    def allow_room_action(self, user: int, now: float) -> Verdict:
        bucket = self._budget(user, now).room_actions
        return self._take(bucket, now, "joining and leaving rooms too fast")

    def allow_join(self, user: int, now: float) -> Verdict:
        return self.allow_room_action(user, now)

    def allow_leave(self, user: int, now: float) -> Verdict:
        return self.allow_room_action(user, now)

    def allow_create(self, user: int, now: float, rooms_existing: int) -> Verdict:
        """``rooms_existing``: how many rooms the server has now."""
        if rooms_existing >= self.policy.max_rooms:
            return Verdict(
                False, 0.0, f"the server has its maximum of {self.policy.max_rooms} rooms"
            )
        return self._take(self._budget(user, now).creates, now, "creating rooms too fast")

    def allow_typing(self, user: int, room: str, active: bool, now: float) -> bool:
        """True: forward this typing notice; False: drop it (coalesced)."""
        typing = self._budget(user, now).typing
        last = typing.get(room)
        if last is not None:
            stamp, was_active = last
            stopping = was_active and not active
            if now - stamp < self.policy.typing_interval and not stopping:
                return False
        typing[room] = (now, active)
        return True

    def forget_typing(self, user: int, room: str | None = None) -> None:
        """The user left ``room`` (None: every room): forget its typing state there."""
        budget = self._users.get(user)
        if budget is None:
            return
        if room is None:
            budget.typing.clear()
        else:
            budget.typing.pop(room, None)
