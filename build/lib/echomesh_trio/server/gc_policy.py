"""Garbage-collector policy for a process holding thousands of long-lived connections.

With CPython's default policy, every full collection walks the objects of every open
connection: at 5,000 connections that was a ~360 ms pause, and under chat fan-out (20,000
deliveries/s) one came about every 0.4 s, which alone put fan-out latency into seconds
(bench.control; docs/BENCHMARKS.md). Objects that have survived a while are almost all
long-lived (connections, sessions, tasks), so we periodically move them to the permanent
generation (``gc.freeze``), where collections do not walk them, and rarely unfreeze
everything for one full collection that reclaims cycles left by closed connections.
"""

from __future__ import annotations

import gc
import logging
import time

import trio

log = logging.getLogger("echomesh.server")

FREEZE_INTERVAL = 10.0
"""Seconds between freezes: what survived a young collection by then is long-lived."""

FULL_COLLECTION_INTERVAL = 3600.0
"""Seconds between full collections of everything, frozen objects included."""


def freeze_now() -> None:
    """Collect the young generations, then freeze what survives."""
    gc.collect(1)
    gc.freeze()


def full_collection() -> float:
    """Unfreeze, collect everything, freeze again; returns the pause in seconds."""
    start = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - start


async def maintain_gc(
    freeze_interval: float = FREEZE_INTERVAL,
    full_interval: float = FULL_COLLECTION_INTERVAL,
) -> None:
    """Run the policy until cancelled (a task of the server process's root nursery)."""
    freeze_now()
    next_full = trio.current_time() + full_interval
    while True:
        await trio.sleep(freeze_interval)
        if trio.current_time() >= next_full:
            pause = full_collection()
            log.debug("full garbage collection: %.0f ms", pause * 1000)
            next_full = trio.current_time() + full_interval
        else:
            freeze_now()
