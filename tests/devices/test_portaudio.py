"""Sound-card devices: the real sounddevice only for the no-card error; the callbacks are
plain methods, called here with numpy arrays and a status like PortAudio's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import trio
import trio.testing

from echomesh_trio.devices import (
    AudioDeviceError,
    SoundDeviceInput,
    SoundDeviceOutput,
    list_devices,
    open_input,
    open_output,
)
from echomesh_trio.media import FRAME_SAMPLES


@dataclass
class Status:
    """The attributes of sounddevice.CallbackFlags that the callbacks read."""

    input_overflow: bool = False
    output_underflow: bool = False


OK = Status()


async def test_no_sound_card_error_suggests_file_and_null_devices() -> None:
    if list_devices():
        pytest.skip("this machine has a sound card")
    with pytest.raises(AudioDeviceError, match="null") as info:
        open_output("default")
    assert "Error querying device -1" in str(info.value)
    with pytest.raises(AudioDeviceError, match="file:"):
        open_input("0")
    with pytest.raises(AudioDeviceError, match="tone"):
        SoundDeviceInput.open()


async def test_capture_callback_hands_copies_to_trio_resampled_to_48_khz() -> None:
    mic = SoundDeviceInput(44_100)
    assert mic.block_samples == 882
    block = np.full((882, 1), 500, np.int16)

    def card() -> None:  # PortAudio's thread
        for i in range(4):
            mic.callback(block, 882, None, Status(input_overflow=i == 0))
            block[:] = 0  # PortAudio reuses its buffer: the callback must have copied

        block[:] = 500

    await trio.to_thread.run_sync(card)
    frames = [await mic.receive_frame() for _ in range(3)]
    assert all(f.shape == (FRAME_SAMPLES,) for f in frames)
    assert abs(int(frames[0][600]) - 500) <= 2  # first block: 500 (after the filter's onset)
    assert np.abs(frames[2][300:]).max() <= 1  # the zeros written after the copy
    stats = mic.statistics()
    assert (stats.frames, stats.input_overflows, stats.dropped_blocks) == (3, 1, 0)
    mic.close()


async def test_capture_wakes_a_waiting_reader() -> None:
    mic = SoundDeviceInput()
    got: list[np.ndarray] = []

    async def reader() -> None:
        got.append(await mic.receive_frame())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert not got
        await trio.to_thread.run_sync(mic.callback, np.full((960, 1), 7, np.int16), 960, None, OK)
    assert len(got) == 1 and (got[0] == 7).all()


async def test_capture_queue_drops_the_oldest_beyond_half_a_second() -> None:
    mic = SoundDeviceInput()
    for i in range(40):  # 0.8 s while nobody reads
        mic.callback(np.full((960, 1), i, np.int16), 960, None, OK)
    await trio.testing.wait_all_tasks_blocked()  # the run_sync_soon deliveries ran
    frames = [await mic.receive_frame() for _ in range(25)]
    assert [int(f[0]) for f in frames] == list(range(15, 40))
    assert mic.statistics().dropped_blocks == 15


async def test_closing_capture_ends_a_waiting_reader_and_iteration() -> None:
    mic = SoundDeviceInput()
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await mic.receive_frame()

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        mic.close()
    assert [f async for f in mic] == []
    mic.callback(np.zeros((960, 1), np.int16), 960, None, OK)  # late callback: ignored
    await trio.testing.wait_all_tasks_blocked()


class Constant:
    def __init__(self, value: int) -> None:
        self.value = value
        self.nows: list[float] = []

    def pull(self, samples: int, now: float) -> np.ndarray:
        self.nows.append(now)
        return np.full(samples, self.value, np.int16)


async def test_playback_callback_fills_outdata_and_counts_underruns() -> None:
    speaker = SoundDeviceOutput(44_100)
    assert speaker.device_block == 220 and speaker.block_samples == 240
    out = np.full((220, 1), 7, np.int16)
    speaker.callback(out, 220, None, Status(output_underflow=True))  # nothing playing yet
    assert not out.any()
    source = Constant(1000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(speaker.play, source)
        await trio.testing.wait_all_tasks_blocked()
        first = trio.current_time()
        assert source.nows[0] == pytest.approx(first)  # first block plays now
        for _ in range(20):

            def card() -> None:
                speaker.callback(out, 220, None, OK)

            await trio.to_thread.run_sync(card)
            await trio.testing.wait_all_tasks_blocked()  # play() refilled the ring
        nursery.cancel_scope.cancel()
    assert np.abs(out[:, 0].astype(int) - 1000).max() <= 2  # resampled to 44.1 kHz
    stats = speaker.statistics()
    assert (stats.blocks, stats.underruns, stats.output_underflows) == (21, 1, 1)
    # Each pull's ``now`` is when that block will be heard: later than the Trio time of the
    # pull by the audio already queued (the ring of two blocks, the resampler's lag).
    assert source.nows[-1] > first


async def test_playback_ring_never_holds_more_than_two_blocks() -> None:
    speaker = SoundDeviceOutput()
    source = Constant(5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(speaker.play, source)
        await trio.testing.wait_all_tasks_blocked()
        assert len(source.nows) == 2  # two 5 ms blocks ahead, then it waits for the card
        out = np.zeros((240, 1), np.int16)
        speaker.callback(out, 240, None, OK)
        await trio.testing.wait_all_tasks_blocked()
        assert len(source.nows) == 3
        nursery.cancel_scope.cancel()
    assert (out == 5).all()
