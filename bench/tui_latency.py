"""The TUI in the loop: how fast its talk indicator lights, and its CPU with four speakers.

    python -m bench.tui_latency [--spurts 30] [--cpu-seconds 10]

Starts the real server (a child process) and the real app (``EchoMeshApp``, as
``echomesh-tui`` runs it, on null audio devices) in another child process on a
pseudo-terminal of 120x36, so that it draws everything a terminal would get. Then:

1. **Talk indicator.** A talker in this process (the client library, a tone, push-to-talk)
   talks ``--spurts`` times, 0.4 s on and 0.6 s off. In the TUI process, the first voice
   packet of each spurt is stamped on arrival (``AudioEngine.frame_received``) and the
   indicator when the first frame showing the talker lit is written to the terminal
   (``App._display``): the figure is arrival -> on screen, on one monotonic clock. It
   includes the client core's event queue, the coalescing of state updates (at most 20
   batches a second), the app's message queue, Textual's layout and rendering, and the
   write to the terminal. Also reported: the talker's key press -> on screen (adds the
   20 ms frame fill, encode and the relay).
2. **CPU.** Four talkers (continuous tones) in the TUI's room; the TUI process's user+system
   CPU over ``--cpu-seconds`` (from /proc), as % of one core.

The last line is one JSON object: ``light_p50_ms``, ``light_p95_ms``, ``light_max_ms``,
``press_to_light_p50_ms``, ``press_to_light_p95_ms``, ``spurts``, ``missed``,
``tui_cpu_pct``, ``tui_idle_cpu_pct``, ``batches_per_s``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from bench.common import free_port, percentile, proc_cpu_s, wait_listening
from bench.latency import config, hold_client, server_command
from echomesh_trio.audio.sender import GateMode
from echomesh_trio.client.core import open_client
from echomesh_trio.devices.files import NullOutput, ToneInput

ROOM = "tui"
SPURT_ON_S = 0.4
SPURT_OFF_S = 0.6
TERMINAL = (120, 36)


# ---------------------------------------------------------------------- the TUI process
def run_tui(port: int, out: Path, seconds: float, profile: Path | None = None) -> None:
    from echomesh_trio.client.audio_engine import AudioEngine
    from echomesh_trio.voice.packet import Flags
    from tui_client.app import EchoMeshApp, Launch
    from tui_client.widgets.members import MemberList

    arrivals: list[tuple[str, float]] = []
    shown: list[tuple[str, float]] = []
    app_ref: list[EchoMeshApp] = []

    original = AudioEngine.frame_received

    def frame_received(engine: AudioEngine, frame: Any) -> None:
        end = bool(frame.flags & Flags.END_OF_SPURT)
        if frame.source_id not in engine.talk.speaking and not end:
            arrivals.append((str(frame.source_id), time.monotonic()))
        original(engine, frame)

    AudioEngine.frame_received = frame_received  # type: ignore[method-assign,assignment]

    class BenchApp(EchoMeshApp):
        lit: frozenset[str] = frozenset()

        def on_mount(self) -> None:  # Textual calls EchoMeshApp.on_mount as well
            self.set_timer(0.05, ready)
            self.set_timer(seconds, finish)

        def _display(self, screen: Any, renderable: Any) -> None:
            super()._display(screen, renderable)
            try:
                lit = self.screen.query_one(MemberList).lit
            except Exception:
                return
            for name in lit - self.lit:
                shown.append((name, time.monotonic()))
            self.lit = lit

    tmp = Path(tempfile.mkdtemp())
    launch = Launch(
        host="127.0.0.1", port=port, user="tui", password="benchmark", room=ROOM,
        plaintext=True, audio_input="null", audio_output="null",
        known_servers=tmp / "known.toml", servers_file=tmp / "servers.toml",
    )  # fmt: skip
    app = BenchApp(launch)
    app_ref.append(app)

    def ready() -> None:
        if app.model.state.value == "connected" and ROOM in app.model.rooms:
            (out.with_suffix(".ready")).write_text("ready")
        else:
            app.set_timer(0.05, ready)

    def finish() -> None:
        session = app.session
        batches = session.coalescer.batches if session is not None else 0
        sources = {}
        if session is not None and session.client is not None:
            sources = {str(s): m.username for s, m in session.client._sources.items()}
        out.write_text(json.dumps({
            "arrivals": [(sources.get(s, s), t) for s, t in arrivals],
            "shown": shown, "batches": batches, "seconds": seconds,
        }))  # fmt: skip
        app.exit()

    if profile is not None:
        import cProfile

        cProfile.runctx("app.run()", globals(), {"app": app}, str(profile))
    else:
        app.run()


def run_plain(port: int, out: Path, seconds: float) -> None:
    """The baseline: the same client and devices as the TUI's, with no Textual and no
    guest mode (plain ``trio.run``), for the TUI's own share of the CPU."""
    from echomesh_trio.devices.files import NullInput
    from tui_client.audio import DISCARD_BLOCK_SAMPLES

    async def main() -> None:
        cfg = config(port, "tui", ROOM, audio_input=NullInput(),
                     audio_output=NullOutput(DISCARD_BLOCK_SAMPLES),
                     transmit_mode=GateMode.PUSH_TO_TALK)  # fmt: skip
        async with open_client(cfg) as client:
            await client.wait_connected()
            _write(out.with_suffix(".ready"), "ready")
            with trio.move_on_after(seconds):
                async for _ in client.events():
                    pass

    trio.run(main)
    _write(out, json.dumps({"arrivals": [], "shown": [], "batches": 0, "seconds": seconds}))


def _write(path: Path, text: str) -> None:
    path.write_text(text)


# ---------------------------------------------------------------------- the driver
def start_tui(
    port: int, out: Path, seconds: float, profile: Path | None, role: str = "tui"
) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", TERMINAL[1], TERMINAL[0], 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.tui_latency", "--role", role, f"--port={port}",
         f"--out={out}", f"--seconds={seconds}",
         *([f"--profile={profile}"] if profile else [])],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)

    def drain() -> None:  # the terminal: read what the app draws, keep only the end
        tail = b""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                out.with_suffix(".tty").write_bytes(tail)
                return
            tail = (tail + data)[-20_000:]

    threading.Thread(target=drain, daemon=True).start()
    return proc, master


async def drive(port: int, tui: subprocess.Popen[bytes], spurts: int, cpu_s: float) -> dict:
    result: dict[str, Any] = {}
    presses: list[float] = []
    talker = config(port, "talker", ROOM, audio_input=ToneInput(440.0),
                    audio_output=NullOutput(960), transmit_mode=GateMode.PUSH_TO_TALK)  # fmt: skip
    async with open_client(talker) as mouth:
        await mouth.wait_connected()
        await trio.sleep(1.0)
        cpu0, t0 = proc_cpu_s(tui.pid), time.monotonic()
        await trio.sleep(3.0)
        result["tui_idle_cpu_pct"] = 100 * (proc_cpu_s(tui.pid) - cpu0) / (time.monotonic() - t0)
        for _ in range(spurts):
            presses.append(time.monotonic())
            mouth.ptt(True)
            await trio.sleep(SPURT_ON_S)
            mouth.ptt(False)
            await trio.sleep(SPURT_OFF_S)
    result["presses"] = presses
    configs = [
        config(
            port,
            f"speaker{i}",
            ROOM,
            audio_input=ToneInput(300.0 + 110 * i),
            audio_output=NullOutput(960),
            transmit_mode=GateMode.CONTINUOUS,
        )
        for i in range(4)
    ]
    async with trio.open_nursery() as nursery:
        for cfg in configs:
            await nursery.start(hold_client, cfg)
        await trio.sleep(2.0)
        cpu0, t0 = proc_cpu_s(tui.pid), time.monotonic()
        await trio.sleep(cpu_s)
        result["tui_cpu_pct"] = 100 * (proc_cpu_s(tui.pid) - cpu0) / (time.monotonic() - t0)
        nursery.cancel_scope.cancel()
    return result


def pair(presses: list[float], events: list[tuple[str, float]], who: str) -> list[float]:
    """For each press, the first event of ``who`` after it (within the spurt)."""
    times = sorted(t for name, t in events if name == who)
    out = []
    for p in presses:
        later = [t for t in times if p <= t < p + SPURT_ON_S + SPURT_OFF_S]
        out.append(later[0] if later else math.nan)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tui_latency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--spurts", type=int, default=30)
    parser.add_argument("--cpu-seconds", type=float, default=10.0)
    parser.add_argument("--role", choices=["main", "tui", "plain"], default="main",
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--baseline", action="store_true",
                        help="the library alone in the TUI's place (no Textual)")  # fmt: skip
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, metavar="OUT.prof",
                        help="profile the TUI process (cProfile) into this file")  # fmt: skip
    args = parser.parse_args(argv)
    if args.role == "tui":
        run_tui(args.port, args.out, args.seconds, args.profile)
        return 0
    if args.role == "plain":
        run_plain(args.port, args.out, args.seconds)
        return 0

    port = free_port(udp_too=True)
    tui_seconds = 1.0 + 3.0 + args.spurts * (SPURT_ON_S + SPURT_OFF_S) + 2.0 + args.cpu_seconds
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tui.json"
        server = subprocess.Popen(server_command(port, Path(tmp)))
        try:
            wait_listening(server, port)
            role = "plain" if args.baseline else "tui"
            tui, master = start_tui(port, out, tui_seconds + 30, args.profile, role)
            deadline = time.monotonic() + 60
            while not out.with_suffix(".ready").exists():
                if tui.poll() is not None or time.monotonic() > deadline:
                    tui.kill()
                    time.sleep(0.5)
                    tty = out.with_suffix(".tty")
                    said = tty.read_bytes()[-3000:] if tty.exists() else b""
                    raise SystemExit(f"the TUI did not connect: {said!r}")
                time.sleep(0.05)
            result = trio.run(drive, port, tui, args.spurts, args.cpu_seconds)
            tui_wall = time.monotonic()
            while not out.exists():
                if tui.poll() is not None or time.monotonic() > tui_wall + 60:
                    raise SystemExit("the TUI wrote no results")
                time.sleep(0.1)
            time.sleep(0.2)
            data = json.loads(out.read_text())
            tui.wait(30)
            os.close(master)
        finally:
            server.terminate()
            server.wait(10)
    presses = result.pop("presses")
    arrived = pair(presses, [(x[0], x[1]) for x in data["arrivals"]], "talker")
    shown = pair(presses, [(x[0], x[1]) for x in data["shown"]], "talker")
    light = sorted(1000 * (s - a) for a, s in zip(arrived, shown, strict=True)
                   if not (math.isnan(a) or math.isnan(s)))  # fmt: skip
    press = sorted(1000 * (s - p) for p, s in zip(presses, shown, strict=True)
                   if not math.isnan(s))  # fmt: skip
    summary = {
        "baseline": args.baseline,
        "light_p50_ms": round(percentile(light, 0.5), 1),
        "light_p95_ms": round(percentile(light, 0.95), 1),
        "light_max_ms": round(light[-1], 1) if light else math.nan,
        "press_to_light_p50_ms": round(percentile(press, 0.5), 1),
        "press_to_light_p95_ms": round(percentile(press, 0.95), 1),
        "spurts": len(presses),
        "missed": len(presses) - len(light),
        "tui_cpu_pct": round(result["tui_cpu_pct"], 1),
        "tui_idle_cpu_pct": round(result["tui_idle_cpu_pct"], 1),
        "batches_per_s": round(data["batches"] / data["seconds"], 1),
    }
    print(
        f"talk indicator, first packet -> on screen: p50 {summary['light_p50_ms']} ms, "
        f"p95 {summary['light_p95_ms']} ms (goal p95 <= 100 ms); key press -> on screen "
        f"p50 {summary['press_to_light_p50_ms']} ms; {summary['missed']} of {len(presses)} "
        f"missed\nTUI with four speakers: {summary['tui_cpu_pct']} % of one core (goal "
        f"<= 10 %), idle {summary['tui_idle_cpu_pct']} %"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
