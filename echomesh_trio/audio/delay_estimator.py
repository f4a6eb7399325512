"""Estimate the playout delay one speaker's packets need, from their arrival times alone.

Each packet gives a *relative delay*: its arrival time minus its media time (frame number
times 20 ms). The smallest relative delay over a recent window is the fastest path through
the network (the base); a packet's *jitter* is how much later than that it came. The target
delay is a high quantile of jitter under a histogram that forgets old packets geometrically
(as WebRTC NetEq does), so it grows at once when late packets appear and shrinks smoothly
when the network calms down. A sample far above the target starts a *spike*: it and the
packets that drain after it (until one is back under the target, at most 0.5 s) enter the
histogram with a small weight, so one stall neither forces a huge delay nor leaves one behind;
if spikes keep coming their weight adds up and the delay covers them. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

BUCKET_S = 0.001
"""Histogram resolution: 1 ms, fine compared with the 5 ms a playout can move by."""

WARMUP_PACKETS = 3
"""Before this many packets every sample counts fully: there is no target to be a spike of.
(It was 50: a stall within the first second then entered at full weight and kept the
target near 200 ms for the next ~20 s; the spike rule needs only a few samples.)"""

SPIKE_PACKETS = 25
"""A spike lasts at most this many packets (0.5 s); what persists longer is the new normal."""

MAX_DELAY_S = 0.5
"""Ceiling on the target: beyond half a second a conversation breaks down anyway."""


@dataclass(frozen=True, slots=True)
class DelayEstimate:
    """What the estimator currently believes, in seconds."""

    target: float
    base: float
    last_jitter: float
    spikes: int


class DelayEstimator:
    """Quantile-of-jitter target delay with geometric forgetting and spike damping."""

    def __init__(
        self,
        *,
        late_budget: float = 0.005,
        forget: float = 0.999,
        base_window: int = 500,
        spike_margin: float = 0.060,
        spike_weight: float = 0.05,
        max_delay: float = MAX_DELAY_S,
    ) -> None:
        if not 0.0 < late_budget < 0.5:
            raise ValueError("late_budget must be in (0, 0.5)")
        if not 0.0 < forget < 1.0:
            raise ValueError("forget must be in (0, 1)")
        self._budget = late_budget
        self._forget = forget
        self._spike_margin = spike_margin
        self._spike_weight = spike_weight
        self._buckets = math.ceil(max_delay / BUCKET_S) + 1
        self._hist = np.zeros(self._buckets, dtype=np.float64)
        self._base_window = base_window
        # Monotonic deque of (packet index, relative delay): a sliding-window minimum.
        self._mins: deque[tuple[int, float]] = deque()
        self._count = 0
        self._base: float | None = None
        self._target = 0.0
        self._last_jitter = 0.0
        self._spikes = 0
        self._spike_left = 0
        self._spike_ref = 0.0

    @property
    def target(self) -> float:
        """The delay above the base, in seconds, that keeps late loss near the budget."""
        return self._target

    @property
    def base(self) -> float | None:
        """Smallest relative delay in the window (None before the first packet)."""
        return self._base

    def reset_base(self) -> None:
        """Forget the base (the stream restarted with a new media clock); keep the histogram."""
        self._mins.clear()
        self._base = None

    def observe(self, relative_delay: float) -> float:
        """Account for one arrival; return its jitter (seconds above the base)."""
        if not math.isfinite(relative_delay):
            return 0.0
        self._count += 1
        mins = self._mins
        while mins and mins[-1][1] >= relative_delay:
            mins.pop()
        mins.append((self._count, relative_delay))
        while mins[0][0] <= self._count - self._base_window:
            mins.popleft()
        new_base = mins[0][1]
        if self._base is not None and new_base != self._base:
            self._shift(self._base - new_base)
        self._base = new_base
        jitter = relative_delay - new_base
        self._last_jitter = jitter
        self._add(jitter)
        return jitter

    def _shift(self, seconds: float) -> None:
        """Re-express the histogram against a new base (positive: jitters grew)."""
        n = round(seconds / BUCKET_S)
        if n == 0:
            return
        h = self._hist
        if n > 0:
            n = min(n, self._buckets - 1)
            top = h[-n - 1 :].sum()
            h[n:] = h[:-n].copy()
            h[:n] = 0.0
            h[-1] = top
        else:
            n = min(-n, self._buckets - 1)
            low = h[: n + 1].sum()
            h[:-n] = h[n:].copy()
            h[-n:] = 0.0
            h[0] = low

    def _add(self, jitter: float) -> None:
        h = self._hist
        weight = 1.0 - self._forget
        if self._spike_left:
            # Inside a spike: the packets that queued behind the stall drain with falling
            # delays; all of them above the target belong to the same event.
            self._spike_left -= 1
            if jitter <= self._spike_ref:
                self._spike_left = 0
            else:
                weight *= self._spike_weight
        elif jitter > self._target + self._spike_margin and self._count > WARMUP_PACKETS:
            # An outlier far above the current target starts a spike (see the module doc).
            self._spikes += 1
            self._spike_left = SPIKE_PACKETS
            # Measured against the target before the spike: early in a stream a few spike
            # samples can move the target themselves, which used to end the spike at once
            # and let the rest of the drain in at full weight (target ~200 ms for 20 s).
            self._spike_ref = self._target
            weight *= self._spike_weight
        h *= self._forget
        idx = min(self._buckets - 1, max(0, int(jitter / BUCKET_S + 0.5)))
        h[idx] += weight
        total = h.sum()
        if total <= 0.0:
            self._target = 0.0
            return
        cumulative = np.cumsum(h)
        k = int(np.searchsorted(cumulative, (1.0 - self._budget) * total))
        self._target = min(k, self._buckets - 1) * BUCKET_S

    def estimate(self) -> DelayEstimate:
        return DelayEstimate(
            target=self._target,
            base=self._base if self._base is not None else 0.0,
            last_jitter=self._last_jitter,
            spikes=self._spikes,
        )
