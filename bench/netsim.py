"""Seeded user-space network models for the voice-quality benchmark (this kernel has no netem).

A profile turns the send times of a packet stream into deliveries: each packet is lost, or
arrives once (or twice, duplicated) after a transit delay. Delays come from a per-profile
jitter law plus optional *stalls*: the link stops for 100-300 ms and everything sent meanwhile
arrives together at its end, the delay spike that Wi-Fi retransmissions and bufferbloat cause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BASE_TRANSIT_S = 0.020
"""The fastest path; the benchmark measures delay above it."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """Packet ``index`` arrives at ``arrival`` (seconds)."""

    index: int
    arrival: float


@dataclass(frozen=True, slots=True)
class Profile:
    """One network condition."""

    name: str
    description: str
    jitter: Callable[[np.random.Generator, int], np.ndarray]
    random_loss: float = 0.0
    burst_loss: tuple[float, float] | None = None  # Gilbert-Elliott (p good->bad, p bad->good)
    stall_every_s: float = 0.0
    stall_s: tuple[float, float] = (0.1, 0.3)
    reorder: float = 0.0  # share of packets held back an extra 20-60 ms
    duplicate: float = 0.0


def _zero(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.zeros(n)


def _lan(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.gamma(2.0, 0.001, n)  # mean 2 ms


def _small(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.gamma(2.0, 0.0015, n)  # mean 3 ms


def _wifi(rng: np.random.Generator, n: int) -> np.ndarray:
    # Contention comes and goes: a slowly varying level (AR(1)) plus per-packet noise;
    # most packets see 0-40 ms.
    level = np.empty(n)
    x = 0.0
    noise = rng.normal(0.0, 1.0, n)
    for i in range(n):
        x = 0.98 * x + 0.2 * noise[i]
        level[i] = x
    slow = 0.012 * (1.0 + np.tanh(level))  # 0..24 ms
    return slow + rng.gamma(2.0, 0.004, n)  # + mean 8 ms


def _pareto(rng: np.random.Generator, n: int) -> np.ndarray:
    a = 2.5
    scale = 0.010 * (a - 1) / a  # mean 10 ms
    return (rng.pareto(a, n) + 1.0) * scale - scale


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("clean", "no loss, no jitter", _zero),
        Profile("loss5", "5% random loss, ~3 ms jitter", _small, random_loss=0.05),
        Profile("loss10", "10% random loss, ~3 ms jitter", _small, random_loss=0.10),
        Profile(
            "burst10",
            "Gilbert-Elliott loss, 10% average, mean burst 2 packets",
            _small,
            burst_loss=(0.1 * 0.5 / 0.9, 0.5),
        ),
        Profile("lan", "gamma jitter, mean 2 ms", _lan),
        Profile(
            "wifi",
            "0-40 ms varying jitter, a 100-300 ms stall every ~20 s",
            _wifi,
            stall_every_s=20.0,
        ),
        Profile(
            "pareto",
            "Pareto jitter (a=2.5, mean 10 ms), a stall every ~30 s",
            _pareto,
            stall_every_s=30.0,
        ),
        Profile(
            "reorder",
            "5% of packets held back 20-60 ms (reordered), 3% duplicated, 1% loss",
            _small,
            random_loss=0.01,
            reorder=0.05,
            duplicate=0.03,
        ),
    )
}


def simulate(profile: Profile, send_times: np.ndarray, seed: int) -> list[Delivery]:
    """Deliveries of packets sent at ``send_times``, sorted by arrival."""
    rng = np.random.default_rng(seed)
    n = len(send_times)
    transit = BASE_TRANSIT_S + profile.jitter(rng, n)
    lost = rng.random(n) < profile.random_loss
    if profile.burst_loss is not None:
        p_gb, p_bg = profile.burst_loss
        bad = False
        u = rng.random(n)
        for i in range(n):
            bad = u[i] >= p_bg if bad else u[i] < p_gb
            lost[i] |= bad
    if profile.reorder:
        held = rng.random(n) < profile.reorder
        transit = transit + held * rng.uniform(0.020, 0.060, n)
    arrival = send_times + transit
    if profile.stall_every_s and n:
        t = float(send_times[0]) + rng.exponential(profile.stall_every_s)
        while t < send_times[-1]:
            end = t + rng.uniform(*profile.stall_s)
            inside = (send_times >= t) & (send_times < end)
            # Queued behind the stall, then drained at ~1 ms per packet.
            order = np.cumsum(inside) * 0.001
            arrival = np.where(inside, np.maximum(arrival, end + order), arrival)
            t = end + rng.exponential(profile.stall_every_s)
    deliveries = [Delivery(i, float(arrival[i])) for i in range(n) if not lost[i]]
    if profile.duplicate:
        dup = rng.random(n) < profile.duplicate
        extra = rng.uniform(0.0, 0.030, n)
        deliveries += [
            Delivery(i, float(arrival[i] + extra[i])) for i in range(n) if dup[i] and not lost[i]
        ]
    deliveries.sort(key=lambda d: d.arrival)
    return deliveries
