"""Rate limiting and login throttling: pure state, time passed in."""

from __future__ import annotations

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


@dataclass
class _Failures:
    count: int
    last: float
    locked_until: float


class LoginThrottle:
    """Slows down guessing: after ``free_failures`` failed logins for one key (an address
    or a username), further attempts are refused for an exponentially growing time.

    Failures are forgotten ``forget_after`` seconds after the last one; a success for a
    key clears it. The table is bounded: the stalest keys go first when it is full.
    """

    def __init__(
        self,
        free_failures: int = 5,
        base_lockout: float = 1.0,
        max_lockout: float = 300.0,
        forget_after: float = 900.0,
        max_keys: int = 100_000,
    ) -> None:
        self.free_failures = free_failures
        self.base_lockout = base_lockout
        self.max_lockout = max_lockout
        self.forget_after = forget_after
        self.max_keys = max_keys
        self._table: dict[str, _Failures] = {}

    def _get(self, key: str, now: float) -> _Failures | None:
        entry = self._table.get(key)
        if entry is not None and now - entry.last > self.forget_after:
            del self._table[key]
            return None
        return entry

    def wait_time(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds the caller must wait before an attempt under ``keys`` is considered."""
        waits = [e.locked_until - now for k in keys if (e := self._get(k, now)) is not None]
        return max([0.0, *waits])

    def record_failure(self, keys: tuple[str, ...], now: float) -> None:
        for key in keys:
            entry = self._get(key, now)
            if entry is None:
                if len(self._table) >= self.max_keys:
                    oldest = min(self._table, key=lambda k: self._table[k].last)
                    del self._table[oldest]
                entry = self._table[key] = _Failures(0, now, 0.0)
            entry.count += 1
            entry.last = now
            excess = entry.count - self.free_failures
            if excess >= 0:
                lockout = min(self.max_lockout, self.base_lockout * 2.0**excess)
                entry.locked_until = now + lockout

    def record_success(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._table.pop(key, None)
