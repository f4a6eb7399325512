"""Reconnect delays, pure: exponential backoff with full jitter, capped.

The first retry comes within ``first_s`` (1 s), each later one within twice the previous
bound, never beyond ``max_s`` (10 s, as Mumble's client). Full jitter (a uniform draw up
to the bound) spreads the clients of a restarted server over the window instead of having
them all knock at once.
"""

from __future__ import annotations

import random
from typing import Final

FIRST_S: Final = 1.0
MAX_S: Final = 10.0
MIN_S: Final = 0.05
"""Never retry in a tight loop, whatever the draw."""


class Backoff:
    def __init__(
        self, first_s: float = FIRST_S, max_s: float = MAX_S, rng: random.Random | None = None
    ) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._rng = rng if rng is not None else random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (and count it)."""
        bound = min(self.max_s, self.first_s * 2**self.attempt)
        self.attempt += 1
        return max(MIN_S, self._rng.uniform(0.0, bound))

    def reset(self) -> None:
        """Connected: the next failure starts from the first delay again."""
        self.attempt = 0
