"""Sound cards through PortAudio (python-sounddevice).

PortAudio calls our callbacks on its own thread. They only copy and hand off: no locks, no
logging, no heavy allocation, never blocking, never raising.

* **Capture**: the callback copies ``indata`` and hands it to Trio with
  ``TrioToken.run_sync_soon``; on the Trio thread the block joins a queue bounded at
  ``CAPTURE_QUEUE_S`` (0.5 s; beyond it the oldest blocks are dropped and counted) and wakes
  the reader of :meth:`SoundDeviceInput.receive_frame`, which resamples to 48 kHz and cuts
  20 ms frames.
* **Playback**: a Trio task (:meth:`SoundDeviceOutput.play`) pulls 5 ms blocks from the
  source, resamples them to the card's rate and keeps a ring of ``PLAYBACK_AHEAD_BLOCKS``
  (2) device blocks full; the callback pops one block per call into ``outdata`` (silence
  when the ring is empty, counted) and asks Trio for the next. The source is pulled on the
  Trio thread, never the callback's: ``VoiceReceiver`` is not thread-safe and its ``now``
  is Trio's clock. The ring is a ``collections.deque``: ``append`` and ``popleft`` are
  atomic in CPython, so neither side takes a lock.

PortAudio's status flags (input overflow, output underflow) are counted in
``statistics()``. Without a sound card, opening raises :class:`AudioDeviceError` naming the
file and null devices.
"""

from __future__ import annotations

import collections
from typing import Any

import trio

from echomesh_trio.audio.pcm import Pcm
from echomesh_trio.devices.base import (
    CAPTURE_QUEUE_S,
    NO_DEVICE_HINT,
    PLAYBACK_AHEAD_BLOCKS,
    PLAYBACK_BLOCK_MS,
    PLAYBACK_BLOCK_SAMPLES,
    AudioDeviceError,
    AudioSource,
    CaptureDevice,
    CaptureStatistics,
    PlaybackStatistics,
    fit_block,
)
from echomesh_trio.devices.resample import SampleFifo, StreamResampler
from echomesh_trio.media import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # PortAudio itself is missing
        raise AudioDeviceError(
            f"PortAudio is not available ({exc}); install libportaudio2. " + NO_DEVICE_HINT
        ) from exc
    return sounddevice


def list_devices() -> list[dict[str, Any]]:
    """Sound devices PortAudio knows (empty on a machine without a sound card)."""
    return [dict(d) for d in _sounddevice().query_devices()]


def _resolve(sd: Any, device: int | str | None, kind: str) -> tuple[int | None, int]:
    """(PortAudio device index or None for default, its native sample rate)."""
    try:
        info = sd.query_devices(device, kind)
    except (ValueError, sd.PortAudioError) as exc:
        which = "default" if device is None else repr(device)
        raise AudioDeviceError(
            f"no usable sound {kind} device ({which}): {exc}. " + NO_DEVICE_HINT
        ) from exc
    rate = int(info["default_samplerate"])
    return info["index"], rate if rate > 0 else SAMPLE_RATE


class SoundDeviceInput(CaptureDevice):
    """Microphone. Construct inside Trio; :meth:`open` attaches a PortAudio stream, and
    tests drive :meth:`callback` directly."""

    def __init__(self, device_rate: int = SAMPLE_RATE, *, queue_s: float = CAPTURE_QUEUE_S):
        self._token = trio.lowlevel.current_trio_token()
        self.device_rate = device_rate
        self.block_samples = device_rate * FRAME_MS // 1000
        """Device samples per callback: one frame's worth (no added latency)."""
        self._limit = max(self.block_samples, int(queue_s * device_rate))
        self._blocks: collections.deque[Pcm] = collections.deque()
        self._queued = 0
        self._resampler = StreamResampler(device_rate, SAMPLE_RATE)
        self._fifo = SampleFifo()
        self._arrived = trio.Event()
        self._stream: Any = None
        self._closed = False
        self._frames = 0
        self._dropped = 0
        self._input_overflows = 0  # written by the callback thread only

    @classmethod
    def open(cls, device: int | str | None = None) -> SoundDeviceInput:
        """Open and start the default (None), numbered or named input device."""
        sd = _sounddevice()
        index, rate = _resolve(sd, device, "input")
        mic = cls(rate)
        try:
            mic._stream = sd.InputStream(
                device=index,
                samplerate=rate,
                channels=1,
                dtype="int16",
                blocksize=mic.block_samples,
                latency="low",
                callback=mic.callback,
            )
            mic._stream.start()
        except sd.PortAudioError as exc:
            mic.close()
            raise AudioDeviceError(f"cannot open input device: {exc}. " + NO_DEVICE_HINT) from exc
        return mic

    def callback(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        """PortAudio's thread: copy the block (PortAudio reuses ``indata``), hand it to Trio."""
        if status.input_overflow:
            self._input_overflows += 1
        block = indata[:, 0].copy()
        try:
            self._token.run_sync_soon(self._deliver, block)
        except trio.RunFinishedError:
            pass  # Trio has ended; the stream is about to be closed

    def _deliver(self, block: Pcm) -> None:
        """Trio's thread, from run_sync_soon (an exception here would end the whole run):
        queue the block, drop the oldest beyond the bound, wake the reader."""
        if self._closed:
            return
        self._blocks.append(block)
        self._queued += block.shape[0]
        while self._queued > self._limit and len(self._blocks) > 1:
            self._queued -= self._blocks.popleft().shape[0]
            self._dropped += 1
        self._arrived.set()

    async def receive_frame(self) -> Pcm:
        """The next 20 ms frame at 48 kHz; waits for the card. Closed: ClosedResourceError."""
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the capture device is closed")
            frame = self._fifo.pop(FRAME_SAMPLES)
            if frame is not None:
                self._frames += 1
                await trio.lowlevel.checkpoint()
                return frame
            if self._blocks:
                block = self._blocks.popleft()
                self._queued -= block.shape[0]
                self._fifo.push(self._resampler.process(block))
                continue
            self._arrived = trio.Event()
            await self._arrived.wait()

    def statistics(self) -> CaptureStatistics:
        return CaptureStatistics(
            frames=self._frames,
            dropped_blocks=self._dropped,
            input_overflows=self._input_overflows,
        )

    def close(self) -> None:
        """Stop the stream; a waiting reader gets ClosedResourceError."""
        self._closed = True
        self._arrived.set()
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class SoundDeviceOutput:
    """Speaker. Construct inside Trio; :meth:`open` attaches a PortAudio stream (started by
    the first :meth:`play`), and tests drive :meth:`callback` directly."""

    def __init__(self, device_rate: int = SAMPLE_RATE, *, ahead: int = PLAYBACK_AHEAD_BLOCKS):
        self._token = trio.lowlevel.current_trio_token()
        self.device_rate = device_rate
        self.block_samples = PLAYBACK_BLOCK_SAMPLES
        """48 kHz samples per pull from the source."""
        self.device_block = device_rate * PLAYBACK_BLOCK_MS // 1000
        """Device samples per callback."""
        self._ahead = max(1, ahead)
        self._ring: collections.deque[Pcm] = collections.deque()
        self._resampler = StreamResampler(SAMPLE_RATE, device_rate)
        self._fifo = SampleFifo()
        self._wanted = trio.Event()
        self._stream: Any = None
        self._started = False
        self._latency = 0.0
        self._pulled = 0  # 48 kHz samples pulled from the source (Trio thread)
        self._short_pulls = 0  # source blocks that came back short (Trio thread)
        # written by the callback thread only:
        self._played = 0  # device samples played from the ring (filler not counted)
        self._blocks = 0
        self._underruns = 0
        self._output_underflows = 0

    @classmethod
    def open(cls, device: int | str | None = None) -> SoundDeviceOutput:
        """Open the default (None), numbered or named output device."""
        sd = _sounddevice()
        index, rate = _resolve(sd, device, "output")
        out = cls(rate)
        try:
            out._stream = sd.OutputStream(
                device=index,
                samplerate=rate,
                channels=1,
                dtype="int16",
                blocksize=out.device_block,
                latency="low",
                callback=out.callback,
            )
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot open output device: {exc}. " + NO_DEVICE_HINT) from exc
        out._latency = float(out._stream.latency)
        return out

    def callback(self, outdata: Any, frames: int, time: Any, status: Any) -> None:
        """PortAudio's thread: fill all of ``outdata`` from the ring (silence if it is empty,
        counted) and ask Trio for the next block."""
        if status.output_underflow:
            self._output_underflows += 1
        try:
            block = self._ring.popleft()
        except IndexError:
            block = None
        n = 0
        if block is not None:
            n = min(frames, block.shape[0])
            outdata[:n, 0] = block[:n]
        if n < frames:
            outdata[n:] = 0
            self._underruns += 1
        self._played += n
        self._blocks += 1
        try:
            self._token.run_sync_soon(self._wake)
        except trio.RunFinishedError:
            pass

    def _wake(self) -> None:
        self._wanted.set()

    def _ahead_s(self) -> float:
        """Audio pulled from the source but not yet played (ring, FIFO, resampler)."""
        return max(0.0, self._pulled / SAMPLE_RATE - self._played / self.device_rate)

    async def play(self, source: AudioSource) -> None:
        """Keep the ring full from ``source`` until cancelled (starts the stream). After a
        cancellation the stream plays silence (counted as underruns) until :meth:`close`."""
        while True:
            while len(self._ring) < self._ahead:
                block = self._fifo.pop(self.device_block)
                if block is not None:
                    self._ring.append(block)
                    continue
                now = trio.current_time() + self._ahead_s() + self._latency
                pcm, short = fit_block(source.pull(self.block_samples, now), self.block_samples)
                self._short_pulls += short
                self._pulled += self.block_samples
                self._fifo.push(self._resampler.process(pcm))
            if self._stream is not None and not self._started:
                self._started = True
                self._stream.start()
            self._wanted = trio.Event()
            await self._wanted.wait()

    def statistics(self) -> PlaybackStatistics:
        return PlaybackStatistics(
            blocks=self._blocks,
            underruns=self._underruns + self._short_pulls,
            output_underflows=self._output_underflows,
        )

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
