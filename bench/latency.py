"""Mouth-to-ear delay through a real server, and the CPU of a client hearing four speakers.

    python -m bench.latency [--bursts 60] [--cpu-seconds 10]

Starts the real server (``python -m echomesh_trio.cli``) in a child process, then:

1. **Delay.** Two clients of the client library in this process, on file devices paced by
   the Trio clock: the talker's microphone is low background noise (-50 dBFS, so the
   stream never pauses) with a marked burst (a 30 ms chirp, 500-4,000 Hz) every 0.5 s;
   the listener's output device records every block with the time its first sample is
   heard (the time the output pulls it, as a sound card's callback would). A burst
   "enters the microphone" at the time its first sample was captured: the frame holding
   it is released when its last sample is in (``PacedInput``: frame i at start + 20 ms x
   (i + 1) of capture), so a sample at offset k entered 20 ms - k/48 kHz before that. It
   "leaves the speaker" at the play time of the block where a matched filter finds it,
   plus its offset in the block. Both times are on one monotonic clock (Trio's). The
   figure therefore includes the 20 ms frame fill, Opus's 6.5 ms look-ahead, encode,
   sealing, both loopback hops and the relay, the jitter buffer, decode, mixing and the
   5 ms playout block; it excludes a sound card's own buffers (typically 5-20 ms each
   way), which file devices do not have.
2. **CPU.** A listening client in a child process (``--role listener``) in a room with
   four talkers (this process, continuous tone and noise); the child's user+system CPU
   over ``--cpu-seconds`` from ``/proc``.

The last line is one JSON object: ``p50_ms``, ``p95_ms``, ``max_ms``, ``samples``,
``missed``, ``client_cpu_pct`` (of one core), ``listener_speakers``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trio

from bench.common import free_port, machine_cpu, percentile, proc_cpu_s, wait_listening
from echomesh_trio.audio.pcm import Pcm
from echomesh_trio.audio.sender import GateMode
from echomesh_trio.client import events as ce
from echomesh_trio.client.core import Client, ClientConfig, open_client
from echomesh_trio.devices.files import NullInput, NullOutput, PacedInput, PacedOutput, ToneInput
from echomesh_trio.media import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE

BURST_EVERY_S = 0.5
BURST_S = 0.03
NOISE_DBFS = -50.0


def chirp() -> np.ndarray:
    t = np.arange(int(BURST_S * SAMPLE_RATE)) / SAMPLE_RATE
    f0, f1 = 500.0, 4000.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * BURST_S))
    return np.sin(phase) * np.hanning(len(t)) * 16_000


class BurstInput(PacedInput):
    """Noise with a chirp every BURST_EVERY_S; remembers when each burst entered."""

    def __init__(self, seed: int = 1) -> None:
        super().__init__()
        self._rng = np.random.default_rng(seed)
        self._burst = chirp()
        self._every = int(BURST_EVERY_S * SAMPLE_RATE)
        self._noise = 10 ** (NOISE_DBFS / 20) * 32_768
        self.entered: list[float] = []
        self.first_burst_frame = 1 << 62  # none until start_bursts
        self.wanted = 0
        self.done = trio.Event()

    def start_bursts(self, count: int, after_frames: int = 25) -> None:
        """``count`` bursts, the first ``after_frames`` frames from now; ``done`` is set
        when the last one has entered."""
        self.first_burst_frame = self._frames + after_frames
        self.wanted = count

    def _next_frame(self) -> Pcm:
        index = self._frames - 1  # PacedInput counted this frame already
        assert self._start is not None
        released = self._start + index * FRAME_MS / 1000  # its due time, on Trio's clock
        frame = self._rng.normal(0, self._noise, FRAME_SAMPLES)
        start = index * FRAME_SAMPLES
        first = self.first_burst_frame * FRAME_SAMPLES
        if start >= first:
            offset = (start - first) % self._every
            if offset < len(self._burst):  # this frame holds (part of) a burst
                n = min(FRAME_SAMPLES, len(self._burst) - offset)
                frame[:n] += self._burst[offset : offset + n]
                if offset == 0:
                    # Captured over the 20 ms before release; sample 0 came in first.
                    self.entered.append(released - FRAME_MS / 1000)
                    if len(self.entered) >= self.wanted:
                        self.done.set()
        return np.clip(frame, -32_768, 32_767).astype(np.int16)

    async def receive_frame(self) -> Pcm:
        # Released when the frame is complete: 20 ms after its first sample.
        if self._start is None:
            self._start = trio.current_time() + FRAME_MS / 1000
        return await super().receive_frame()


class TimedRecorder(PacedOutput):
    """Keeps every block with the time its first sample is heard."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[Pcm] = []
        self.first_due: float | None = None

    async def play(self, source: object) -> None:
        self.first_due = trio.current_time()
        await super().play(source)  # type: ignore[arg-type]

    def _write(self, block: Pcm) -> None:
        self.blocks.append(block.copy())


def find_bursts(
    recorder: TimedRecorder, entered: Sequence[float], window_s: float = 0.25
) -> tuple[list[float], int]:
    """Delay of each burst (s): where the matched filter peaks within ``window_s`` after
    it entered. Returns the delays and how many bursts were not found."""
    assert recorder.first_due is not None
    audio = np.concatenate(recorder.blocks).astype(np.float64)
    template = chirp()
    block = recorder.block_samples
    delays, missed = [], 0
    for t_in in entered:
        lo = int((t_in - recorder.first_due) * SAMPLE_RATE)
        hi = lo + int(window_s * SAMPLE_RATE) + len(template)
        if lo < 0 or hi > len(audio):
            missed += 1
            continue
        segment = audio[lo:hi]
        corr = np.correlate(segment, template, mode="valid")
        energy = np.sqrt(np.convolve(segment**2, np.ones(len(template)), mode="valid")) + 1e-9
        score = corr / (energy * np.sqrt(np.sum(template**2)))
        peak = int(np.argmax(score))
        if score[peak] < 0.5:
            missed += 1
            continue
        sample = lo + peak
        heard = recorder.first_due + (sample // block) * block / SAMPLE_RATE
        heard += (sample % block) / SAMPLE_RATE
        delays.append(heard - t_in)
    return delays, missed


def server_command(port: int, data_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "echomesh_trio.cli", "--plaintext", "--host=127.0.0.1",
        f"--port={port}", f"--data-dir={data_dir}", "--password-cost=10",
        "--log-level=warning", "--admin-port=0",
    ]  # fmt: skip


FRONT_END = False
"""The talkers' capture front end (--front-end): off by default, so the figure is the
transport's; RNNoise adds its 20 ms on top (docs/AUDIO.md)."""


def config(port: int, user: str, room: str, **kw: object) -> ClientConfig:
    kw.setdefault("noise_suppression", FRONT_END)
    kw.setdefault("gain_control", FRONT_END)
    return ClientConfig("127.0.0.1", port, user, "benchmark", plaintext=True, rooms=(room,),
                        **kw)  # type: ignore[arg-type]  # fmt: skip


async def measure_delay(port: int, bursts: int) -> tuple[list[float], int]:
    mic, speaker = BurstInput(), TimedRecorder()
    talker = config(port, "talker", "delay", audio_input=mic, audio_output=NullOutput(),
                    transmit_mode=GateMode.CONTINUOUS)  # fmt: skip
    listener = config(port, "listener", "delay", audio_input=NullInput(), audio_output=speaker,
                      transmit_mode=GateMode.PUSH_TO_TALK)  # fmt: skip
    async with open_client(listener) as ear:
        await ear.wait_connected()
        async with open_client(talker) as mouth:
            await mouth.wait_connected()
            mic.start_bursts(bursts)  # from half a second on, the stream under way
            await mic.done.wait()
            await trio.sleep(0.5)  # the last one played out
    return find_bursts(speaker, mic.entered[:bursts])  # later ones were cut off


async def listen(port: int, seconds: float) -> None:
    cfg = config(port, "listener", "cpu", audio_input=NullInput(), audio_output=NullOutput(),
                 transmit_mode=GateMode.PUSH_TO_TALK)  # fmt: skip
    async with open_client(cfg) as client:
        await client.wait_connected()
        print("ready", flush=True)
        with trio.move_on_after(seconds):
            async for event in client.events():
                if isinstance(event, ce.LinkStatistics):
                    print(f"speakers {len(event.speakers)}", flush=True)


async def talkers(port: int, listener: subprocess.Popen[bytes], seconds: float) -> dict:
    configs = [
        config(
            port,
            f"talker{i}",
            "cpu",
            audio_input=ToneInput(300.0 + 110 * i),
            audio_output=NullOutput(),
            transmit_mode=GateMode.CONTINUOUS,
        )
        for i in range(4)
    ]
    result: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        clients = []
        for cfg in configs:
            client = await nursery.start(hold_client, cfg)
            clients.append(client)
        await trio.sleep(2.0)  # the listener's jitter buffers settle
        cpu0, t0 = proc_cpu_s(listener.pid), time.monotonic()
        await trio.sleep(seconds)
        cpu1, t1 = proc_cpu_s(listener.pid), time.monotonic()
        result["client_cpu_pct"] = 100 * (cpu1 - cpu0) / (t1 - t0)
        nursery.cancel_scope.cancel()
    return result


async def hold_client(cfg: ClientConfig, task_status: trio.TaskStatus[Client]) -> None:
    """A connected client until cancelled (``await nursery.start(hold_client, cfg)``)."""
    async with open_client(cfg) as client:
        await client.wait_connected()
        task_status.started(client)
        await trio.sleep_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--bursts", type=int, default=60, help="delay samples (one per 0.5 s)")
    parser.add_argument("--cpu-seconds", type=float, default=10.0)
    parser.add_argument(
        "--front-end", action="store_true", help="noise suppression and AGC on (client default)"
    )
    parser.add_argument("--role", choices=["main", "listener"], default="main",
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global FRONT_END
    FRONT_END = args.front_end
    if args.role == "listener":
        trio.run(listen, args.port, args.cpu_seconds + 30)
        return 0

    port = free_port(udp_too=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(server_command(port, Path(tmp)))
        try:
            wait_listening(server, port)
            busy0 = machine_cpu()
            delays, missed = trio.run(measure_delay, port, args.bursts)
            listener = subprocess.Popen(
                [sys.executable, "-m", "bench.latency", "--role", "listener",
                 f"--port={port}", f"--cpu-seconds={args.cpu_seconds}",
                 *(["--front-end"] if args.front_end else [])],
                stdout=subprocess.PIPE,
            )  # fmt: skip
            assert listener.stdout is not None
            listener.stdout.readline()  # ready
            cpu = trio.run(talkers, port, listener, args.cpu_seconds)
            listener.terminate()
            out = listener.communicate(timeout=10)[0].decode().split()
            speakers = max((int(x) for x in out[1::2] if x.isdigit()), default=0)
            busy1 = machine_cpu()
        finally:
            server.terminate()
            server.wait(10)
    ms = sorted(d * 1000 for d in delays)
    busy = (busy1[0] - busy0[0]) / max(1e-9, busy1[1] - busy0[1])
    result = {
        "p50_ms": round(percentile(ms, 0.50), 2) if ms else math.nan,
        "p95_ms": round(percentile(ms, 0.95), 2) if ms else math.nan,
        "min_ms": round(ms[0], 2) if ms else math.nan,
        "max_ms": round(ms[-1], 2) if ms else math.nan,
        "samples": len(ms),
        "missed": missed,
        "client_cpu_pct": round(cpu["client_cpu_pct"], 2),
        "listener_speakers": speakers,
        "machine_busy": round(busy, 2),
    }
    print(
        f"mouth-to-ear delay over {len(ms)} bursts ({missed} not found): "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, max {result['max_ms']} ms "
        f"(goals: p50 <= 35 ms, p95 <= 45 ms; floor 26.5 ms)\n"
        f"client hearing {speakers} speakers: {result['client_cpu_pct']} % of one core "
        f"(goal <= 5 %)"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
