"""Opus encoder and decoder wrappers: 48 kHz mono, 20 ms frames, VOIP, FEC, DTX.

Small classes with no I/O and no clock. They hide opuslib 3.0.1's traps: ``import opuslib``
raises a bare ``Exception`` when libopus is missing, the ``inband_fec`` property raises
``TypeError`` and ``dtx`` silently does nothing (so the ctls are called directly), and PLC
needs ``decode(b"", n)`` because ``decode(None, n)`` fails.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from echomesh_trio.audio.pcm import Pcm, check_frame
from echomesh_trio.media import CHANNELS, FRAME_SAMPLES, SAMPLE_RATE

DEFAULT_BITRATE = 32_000
"""32 kbit/s: the lowest rate at which libopus 1.3 keeps in-band FEC fullband at any loss."""

MIN_BITRATE = 6_000
MAX_BITRATE = 128_000

DEFAULT_COMPLEXITY = 10
"""Measured here at 32 kbit/s VOIP: complexity 8 and 10 cost the same (~0.4 ms per frame)."""

MAX_DTX_PACKET = 2
"""libopus marks a frame DTX by returning a 1-2 byte packet; the sender need not send it."""

MAX_EXPECTED_LOSS = 25
"""Beyond ~25 % libopus spends so many bits on FEC that clean frames suffer for little gain."""


class OpusUnavailableError(RuntimeError):
    """libopus (the C library) cannot be loaded; the message says how to install it."""


class OpusCodecError(RuntimeError):
    """libopus rejected a call; for decoding, the packet was not valid Opus (peer's fault)."""


_opuslib: ModuleType | None = None


def load_opuslib() -> ModuleType:
    """Import opuslib once, turning its bare ``Exception`` into :class:`OpusUnavailableError`."""
    global _opuslib
    if _opuslib is None:
        try:
            import opuslib
            import opuslib.api.ctl
            import opuslib.api.encoder
        except Exception as exc:  # opuslib raises a bare Exception when libopus is missing
            raise OpusUnavailableError(
                "The Opus library (libopus) could not be loaded: "
                f"{exc}. Install it with `apt install libopus0` (Debian/Ubuntu), "
                "`dnf install opus` (Fedora) or `brew install opus` (macOS)."
            ) from exc
        _opuslib = opuslib
    return _opuslib


def expected_loss_percent(reported_loss: float) -> int:
    """Map a loss fraction reported by receivers to the encoder's expected-loss setting.

    Zero on a clean link (FEC costs PESQ 0.3-0.5 there); otherwise a little above the
    reported loss, because libopus sizes its FEC for the stated loss and reports lag.
    """
    if not math.isfinite(reported_loss) or reported_loss < 0.005:
        return 0
    return min(MAX_EXPECTED_LOSS, max(1, math.ceil(reported_loss * 100 * 1.5)))


@dataclass(frozen=True, slots=True)
class EncoderStatistics:
    """Counters of one encoder."""

    frames: int
    dtx_frames: int
    bytes_out: int
    bitrate: int
    expected_loss_percent: int


class OpusEncoder:
    """Encode 20 ms mono frames; FEC follows the loss the receivers report."""

    def __init__(
        self,
        bitrate: int = DEFAULT_BITRATE,
        *,
        complexity: int = DEFAULT_COMPLEXITY,
        fec: bool = True,
        dtx: bool = True,
    ) -> None:
        lib = load_opuslib()
        self._lib = lib
        self._enc: Any = lib.Encoder(SAMPLE_RATE, CHANNELS, lib.APPLICATION_VOIP)
        self._fec = fec
        self._bitrate = 0
        self._loss = 0
        self._frames = 0
        self._dtx_frames = 0
        self._bytes_out = 0
        self._ctl(lib.api.ctl.set_complexity, max(0, min(10, complexity)))
        self._ctl(lib.api.ctl.set_signal, lib.SIGNAL_VOICE)
        self._ctl(lib.api.ctl.set_inband_fec, 1 if fec else 0)
        self._ctl(lib.api.ctl.set_dtx, 1 if dtx else 0)
        self._ctl(lib.api.ctl.set_packet_loss_perc, 0)
        self.set_bitrate(bitrate)

    def _ctl(self, request: Any, value: int) -> None:
        # The property setters of opuslib 3.0.1 are broken for FEC/DTX: call the ctl directly.
        self._lib.api.encoder.encoder_ctl(self._enc.encoder_state, request, value)

    @property
    def lookahead(self) -> int:
        """Encoder delay in samples (312 at 48 kHz); align signals by this before comparing."""
        return int(
            self._lib.api.encoder.encoder_ctl(
                self._enc.encoder_state, self._lib.api.ctl.get_lookahead
            )
        )

    def set_bitrate(self, bitrate: int) -> None:
        """Set the target bitrate in bit/s, clamped to what makes sense for mono voice."""
        self._bitrate = max(MIN_BITRATE, min(MAX_BITRATE, int(bitrate)))
        self._ctl(self._lib.api.ctl.set_bitrate, self._bitrate)

    def set_reported_loss(self, loss_fraction: float) -> None:
        """Follow the loss fraction (0..1) that receivers report, to size in-band FEC."""
        loss = expected_loss_percent(loss_fraction) if self._fec else 0
        if loss != self._loss:
            self._loss = loss
            self._ctl(self._lib.api.ctl.set_packet_loss_perc, loss)

    def encode(self, pcm: Pcm) -> bytes:
        """Encode one frame. A result of at most ``MAX_DTX_PACKET`` bytes is DTX silence."""
        check_frame(pcm)
        try:
            packet = bytes(self._enc.encode(pcm.tobytes(), FRAME_SAMPLES))
        except self._lib.OpusError as exc:
            raise OpusCodecError(f"opus_encode failed: {exc}") from exc
        self._frames += 1
        self._bytes_out += len(packet)
        if len(packet) <= MAX_DTX_PACKET:
            self._dtx_frames += 1
        return packet

    def statistics(self) -> EncoderStatistics:
        return EncoderStatistics(
            frames=self._frames,
            dtx_frames=self._dtx_frames,
            bytes_out=self._bytes_out,
            bitrate=self._bitrate,
            expected_loss_percent=self._loss,
        )


def is_dtx(packet: bytes) -> bool:
    """True for a packet that only says "silence continues" (the sender may skip it)."""
    return len(packet) <= MAX_DTX_PACKET


@dataclass(frozen=True, slots=True)
class DecoderStatistics:
    """Counters of one decoder; ``invalid`` counts packets libopus rejected."""

    decoded: int
    concealed: int
    fec_recovered: int
    invalid: int


class OpusDecoder:
    """Decode, conceal or FEC-recover 20 ms frames; invalid packets become concealment."""

    def __init__(self) -> None:
        lib = load_opuslib()
        self._lib = lib
        self._dec: Any = lib.Decoder(SAMPLE_RATE, CHANNELS)
        self._decoded = 0
        self._concealed = 0
        self._fec = 0
        self._invalid = 0

    def _run(self, packet: bytes, fec: bool) -> Pcm | None:
        try:
            raw = self._dec.decode(packet, FRAME_SAMPLES, fec)
        except self._lib.OpusError:
            return None
        pcm = np.frombuffer(raw, dtype=np.int16)
        if pcm.shape[0] != FRAME_SAMPLES:
            # A valid packet of another duration (e.g. 10 ms): pad or cut to one tick.
            out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            n = min(FRAME_SAMPLES, pcm.shape[0])
            out[:n] = pcm[:n]
            return out
        return pcm

    def decode(self, packet: bytes) -> Pcm:
        """Decode an untrusted packet; if libopus rejects it, conceal instead (and count)."""
        if packet:
            pcm = self._run(packet, False)
            if pcm is not None:
                self._decoded += 1
                return pcm
            self._invalid += 1
        return self.conceal()

    def conceal(self, samples: int = FRAME_SAMPLES) -> Pcm:
        """Packet-loss concealment (fades to silence over time).

        ``samples`` may be any multiple of 2.5 ms up to one frame, so that a playout can
        stretch time by less than a frame while it waits for a late packet.
        """
        self._concealed += 1
        step = SAMPLE_RATE // 400
        n = max(step, min(FRAME_SAMPLES, samples // step * step))
        try:
            raw = self._dec.decode(b"", n, False)
        except self._lib.OpusError:
            return np.zeros(n, dtype=np.int16)
        return np.frombuffer(raw, dtype=np.int16).copy()

    def recover(self, next_packet: bytes) -> Pcm:
        """Rebuild the frame before ``next_packet`` from its in-band FEC (PLC if it has none).

        The caller still decodes ``next_packet`` normally on the following tick.
        """
        if next_packet:
            pcm = self._run(next_packet, True)
            if pcm is not None:
                self._fec += 1
                return pcm
            self._invalid += 1
        return self.conceal()

    def save_state(self) -> bytes:
        """A copy of the decoder's state (libopus keeps it in one block without pointers, so
        a byte copy is a complete snapshot)."""
        return ctypes.string_at(self._state_address(), self._state_size())

    def restore_state(self, state: bytes) -> None:
        """Go back to a state from :meth:`save_state` of this decoder."""
        if len(state) != self._state_size():
            raise ValueError("not a state of this decoder")
        ctypes.memmove(self._state_address(), state, len(state))

    def _state_size(self) -> int:
        return int(self._lib.api.decoder.libopus_get_size(CHANNELS))

    def _state_address(self) -> int:
        return ctypes.addressof(self._dec.decoder_state.contents)

    def reset(self) -> None:
        """Forget the decoder state (a new talk spurt from a new source)."""
        self._dec.reset_state()

    def statistics(self) -> DecoderStatistics:
        return DecoderStatistics(
            decoded=self._decoded,
            concealed=self._concealed,
            fec_recovered=self._fec,
            invalid=self._invalid,
        )
