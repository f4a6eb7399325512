"""Devices: file, tone and null devices on a clock the test controls; the sound card faked."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from echomesh_trio.audio import devices
from echomesh_trio.audio.devices import (
    AudioDeviceError,
    WavFileInput,
    WavFileOutput,
    open_input,
    open_output,
)
from echomesh_trio.media import FRAME_SAMPLES


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drain(dev: Any) -> list[np.ndarray]:
    out = []
    while (f := dev.read_nowait()) is not None:
        out.append(f)
    return out


def test_tone_and_null_inputs_are_paced_by_the_clock() -> None:
    clock = FakeClock()
    for spec in ("tone:300", "null"):
        dev = open_input(spec, clock)
        clock.now = 0.0
        assert len(drain(dev)) == 1  # the first frame is due at once
        clock.now += 0.1
        frames = drain(dev)
        assert len(frames) == 5 and all(f.shape == (FRAME_SAMPLES,) for f in frames)
        assert dev.statistics().frames == 6
        dev.close()


def test_wav_round_trip_and_resampling(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    t = np.arange(44_100) / 44_100
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44_100)
        x = (8000 * np.sin(2 * np.pi * 500 * t)).astype("<i2")
        w.writeframes(np.repeat(x, 2).tobytes())
    clock = FakeClock()
    src = WavFileInput(path, clock)
    frames = drain(src)  # pacing starts at the first read
    clock.now = 1.2
    frames += drain(src)
    assert len(frames) == 61 and src.finished
    assert not frames[-1].any()  # silence after the end
    out_path = tmp_path / "out.wav"
    sink = open_output(f"file:{out_path}")
    for f in frames:
        sink.write_nowait(f)
    sink.close()
    with wave.open(str(out_path), "rb") as r:
        assert (r.getframerate(), r.getnchannels(), r.getnframes()) == (48_000, 1, 61 * 960)


def test_bad_wav_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(AudioDeviceError, match=r"bad\.wav"):
        WavFileInput(bad, FakeClock())
    with pytest.raises(AudioDeviceError):
        WavFileOutput(tmp_path / "missing-dir" / "x.wav")


def test_no_sound_card_error_suggests_file_and_null_devices() -> None:
    if devices.list_devices():
        pytest.skip("this machine has a sound card")
    with pytest.raises(AudioDeviceError, match="null"):
        open_output("default")
    with pytest.raises(AudioDeviceError, match="file:"):
        open_input("0", FakeClock())


class FakeStream:
    def __init__(self, callback: Any, **kwargs: Any) -> None:
        self.callback = callback
        self.kwargs = kwargs

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeSoundDevice:
    """Stands in for the sounddevice module: one 44.1 kHz card."""

    class PortAudioError(Exception):
        pass

    def query_devices(self, device: Any = None, kind: Any = None) -> Any:
        info = {"index": 3, "name": "Fake card", "default_samplerate": 44_100.0}
        return [info] if kind is None else info

    InputStream = FakeStream
    OutputStream = FakeStream


@pytest.fixture
def fake_card(monkeypatch: pytest.MonkeyPatch) -> FakeSoundDevice:
    card = FakeSoundDevice()
    monkeypatch.setattr(devices, "_sounddevice", lambda: card)
    return card


def test_playback_callback_always_fills_and_counts_underruns(fake_card: FakeSoundDevice) -> None:
    out = devices.SoundDeviceOutput("Fake card")
    stream = out._stream
    assert stream.kwargs["samplerate"] == 44_100 and stream.kwargs["device"] == 3
    buf = np.full((882, 1), 7, np.int16)
    stream.callback(buf, 882, None, None)
    assert not buf.any() and out.statistics().underruns == 1
    out.write_nowait(np.full(FRAME_SAMPLES, 1000, np.int16))
    stream.callback(buf, 882, None, None)
    assert abs(int(buf[400, 0]) - 1000) < 50  # resampled to the card's rate
    assert out.statistics().underruns == 1


def test_capture_callback_copies_and_frames_are_resampled(fake_card: FakeSoundDevice) -> None:
    mic = devices.SoundDeviceInput(3)
    block = np.full((882, 1), 500, np.int16)
    for _ in range(3):
        mic._stream.callback(block, 882, None, None)
    block[:] = 0  # the callback copied: PortAudio may reuse its buffer
    frames = drain(mic)
    assert len(frames) == 3 and frames[0].shape == (FRAME_SAMPLES,)  # 60 ms at 48 kHz
    assert abs(int(frames[0][480]) - 500) < 30
