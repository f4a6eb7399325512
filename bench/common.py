"""Helpers every benchmark shares: free ports, percentiles, CPU and memory accounting.

Benchmarks spawn a real server and load generators as separate processes, so CPU and RSS
are read from /proc (Linux only, as the benchmarks are).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Sequence
from typing import Any


def wait_listening(proc: subprocess.Popen[Any], port: int, timeout_s: float = 30.0) -> None:
    """Until the server process ``proc`` accepts TCP on 127.0.0.1:``port``; SystemExit with
    the reason if it exits first or does not listen within ``timeout_s`` (then killed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(
                    f"the server did not start listening within {timeout_s:.0f} s"
                ) from None
            time.sleep(0.05)


def free_port(*, udp_too: bool = False) -> int:
    """A port free on 127.0.0.1 for TCP (and for UDP as well with ``udp_too``: the server's
    voice relay binds the same number as its control port).

    Only for spawning a server process that must be told its port on the command line;
    in-process servers bind port 0 and report what they bound.
    """
    for _ in range(50):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            if not udp_too:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise SystemExit("no free port on 127.0.0.1")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values. Sorts a copy."""
    if not 0.0 <= q <= 1.0:  # percentile(x, 95) once reported the maximum as p95
        raise ValueError(f"q is a fraction between 0 and 1, not {q}")
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included)."""
    user, system = proc_cpu_split_s(pid)
    return user + system


def proc_cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def proc_rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)
