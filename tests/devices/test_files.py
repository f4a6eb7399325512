"""File, tone and null devices, paced by Trio's clock (a MockClock that jumps when idle)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing

from echomesh_trio.devices import (
    AudioDeviceError,
    NullOutput,
    WavFileInput,
    WavFileOutput,
    open_input,
    open_output,
)
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE


class Recorder:
    """A playback source that remembers each pull and returns a ramp."""

    def __init__(self) -> None:
        self.pulls: list[tuple[int, float]] = []

    def pull(self, samples: int, now: float) -> np.ndarray:
        self.pulls.append((samples, now))
        return np.full(samples, len(self.pulls), np.int16)


async def test_tone_and_null_inputs_give_one_frame_per_20_ms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for spec in ("tone:300", "null"):
        dev = open_input(spec)
        start = trio.current_time()
        frames = [await dev.receive_frame() for _ in range(6)]
        assert trio.current_time() - start == pytest.approx(0.1)  # the first one at once
        assert all(f.shape == (FRAME_SAMPLES,) and f.dtype == np.int16 for f in frames)
        assert dev.statistics().frames == 6
        dev.close()
        with pytest.raises(trio.ClosedResourceError):
            await dev.receive_frame()
    tone = await open_input("tone:1000").receive_frame()
    assert np.abs(tone).max() == pytest.approx(3277, abs=2)  # -20 dBFS peak


async def test_async_iteration_ends_when_the_device_is_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    dev = open_input("null")
    seen = 0
    async for _ in dev:
        seen += 1
        if seen == 3:
            dev.close()
    assert seen == 3


def write_wav(path: Path, rate: int, channels: int, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


async def test_wav_input_is_converted_to_48_khz_mono(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "in.wav"
    t = np.arange(44_100) / 44_100
    x = 8000 * np.sin(2 * np.pi * 500 * t)
    write_wav(path, 44_100, 2, np.repeat(x, 2))
    src = WavFileInput(path)
    frames = []
    while not src.finished:
        frames.append(await src.receive_frame())
    assert len(frames) == 50  # one second
    pcm = np.concatenate(frames)
    expected = 8000 * np.sin(2 * np.pi * 500 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    middle = slice(1000, SAMPLE_RATE - 1000)
    assert np.abs(pcm[middle] - expected[middle]).max() < 20
    assert not (await src.receive_frame()).any()  # silence after the end


async def test_wav_output_pulls_5_ms_blocks_at_their_due_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    out_path = tmp_path / "out.wav"
    sink = open_output(f"file:{out_path}")
    source = Recorder()
    start = trio.current_time()
    with trio.move_on_after(1.0):
        await sink.play(source)
    sink.close()
    assert len(source.pulls) == 200  # at 0, 5 ms, ..., 995 ms
    assert all(n == 240 for n, _ in source.pulls)
    assert [now - start for _, now in source.pulls[:3]] == pytest.approx([0, 0.005, 0.010])
    assert sink.statistics().blocks == 200
    with wave.open(str(out_path), "rb") as r:
        assert (r.getframerate(), r.getnchannels(), r.getnframes()) == (48_000, 1, 200 * 240)
        data = np.frombuffer(r.readframes(480), dtype="<i2")
    assert data[0] == 1 and data[240] == 2


async def test_short_pulls_are_padded_and_counted(autojump_clock: trio.testing.MockClock) -> None:
    class Short:
        def pull(self, samples: int, now: float) -> np.ndarray:
            return np.ones(samples - 10, np.int16)

    sink = NullOutput()
    with trio.move_on_after(0.0499):
        await sink.play(Short())
    assert sink.statistics().blocks == 10 and sink.statistics().underruns == 10


def test_bad_wav_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(AudioDeviceError, match=r"bad\.wav"):
        WavFileInput(bad)
    eight_bit = tmp_path / "8bit.wav"
    with wave.open(str(eight_bit), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(b"\x80" * 100)
    with pytest.raises(AudioDeviceError, match="16-bit"):
        WavFileInput(eight_bit)
    with pytest.raises(AudioDeviceError):
        WavFileOutput(tmp_path / "missing-dir" / "x.wav")
