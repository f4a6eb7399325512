"""Adaptive jitter buffer for one speaker: untrusted packets in, one decision per tick out.

Pure state (house style): no clock, no I/O; the caller passes ``now`` in seconds.

Packets carry a sequence number (32 bits on the wire, see echomesh_trio/voice/packet.py) that
counts 20 ms frames and keeps counting through frames the sender did not send (DTX,
voice-activated transmission), so the sequence number is also the media clock. Frame ``n``
is due at ``n * 20 ms + base + target``, where ``base`` and ``target`` come from
:class:`DelayEstimator`. On each tick the buffer decides:

* :class:`Play` the packet of the next frame;
* :class:`Recover` a lost frame from a later packet (Opus in-band FEC, or redundancy);
* :class:`Conceal` a frame given up on (``seq`` set), or stretch time while a frame that is
  not yet due, or due while nothing after it has arrived, is awaited (``seq`` None; the
  playout may make that filler shorter than a frame);
* :class:`Silence`: nothing to play, the speaker is idle.

Delay moves in three ways: it grows by stretching while an expected packet is not yet due;
a talk spurt starts at the current target (the cheap moment to change it, as Mumble does);
and frames more than ``CATCH_UP_BEHIND_S`` behind their due time are dropped as late, so a
long stall does not leave a standing delay behind for the rest of the spurt.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from echomesh_trio.audio.codec import MAX_DTX_PACKET
from echomesh_trio.audio.delay_estimator import DelayEstimator
from echomesh_trio.media import FRAME_MS
from echomesh_trio.voice.packet import MAX_REDUNDANT_FRAMES

SEQ_BITS = 32
"""Width of the voice datagram's sequence number; tests use 16 to exercise wrap-around."""
FRAME_S = FRAME_MS / 1000

DEFAULT_CAPACITY = 64
"""Packets held per speaker: 1.28 s of audio, far more than the 0.5 s delay ceiling needs."""

MAX_PAYLOAD = 4_000
"""An Opus frame is at most 1,275 bytes; with redundancy a few of them. Bigger is garbage."""

HISTORY = 256
"""Sequence numbers remembered after playout, to tell duplicates from late packets."""

MAX_CONCEAL_RUN = 3
"""Frames concealed in a row before the speaker counts as idle (PLC beyond 60 ms buzzes)."""

SAFETY_MARGIN_S = 0.001
"""Added to the target: a packet due the very instant it arrives misses the audio thread."""

LOSS_WINDOW = 200
"""Frames over which the loss estimate averages (4 s of speech)."""

MAX_LOSS_GAP = 8
"""A sequence gap longer than this is a pause in speech, not loss. Shorter gaps after a DTX
frame (the sender sends the first DTX frame of each pause, 1-2 bytes) are pauses too."""

CATCH_UP_BEHIND_S = 0.5
"""Within a talk spurt, frames are dropped to catch up only when playout is this far behind
schedule. Below it a late stream is played whole and the delay it built up goes at the next
pause: dropping speech costs more than a few seconds of extra delay (measured: dropping
everything more than a frame behind cost up to 1.2 PESQ on a Wi-Fi-like path against a
receiver that never drops)."""

MAX_WAIT_S = 0.35
"""How long past its due time a missing frame is waited for while nothing after it has
arrived (a stall or a late packet, not a loss); covers the 100-300 ms stalls of Wi-Fi."""

LOOKAHEAD_FRAMES = 1
"""Frames of look-ahead while the stream is lossy: the next packet is there when a lost
frame is due, so one loss is rebuilt (FEC or a copy) without waiting. A longer burst makes
the playout wait for the packet after it (whose copies reach further back), which adds delay
only when bursts happen. Looking ahead by as many frames as there are copies (three) cost
+20-40 ms on every frame at 10 % loss for no consistent PESQ gain (within +-0.1 per
utterance on bursty loss)."""

REORDER_WAIT_S = 0.15
REORDER_WAIT_MIN_S = 0.06
"""While the stream is not lossy (no loss look-ahead: measured loss under 2 %), a missing
frame whose successors have arrived is waited for up to the jitter target (at least
``REORDER_WAIT_MIN_S``, at most ``REORDER_WAIT_S``) past its due time before it is rebuilt
or concealed: there it is almost always late (Pareto-like jitter, reordering), and playing
it beats concealing it. (A fixed 60 ms left 0.1-0.17 PESQ below the naive receiver on three
Pareto utterances; a fixed 150 ms made every real loss on the reorder profile cost 150 ms of
delay until the next pause; a threshold of 0.5 % measured loss was crossed by the hole
itself.)"""

START_EARLY_S = 0.0025
"""A talk spurt whose first packet is there may start this much before its due time (at
most by the jitter target itself): the device pulls 5 ms blocks, so starting at the block
nearest the due time instead of the next one saves 2.5 ms on average (a late packet after
that only makes the playout wait)."""

RESYNC_IDLE_S = 2.0
"""After this long without packets a sender may restart its sequence numbers anywhere."""

RESYNC_LATE_RUN = 50
"""This many late packets in a row mean the sender's clock jumped: start over."""


class PushResult(Enum):
    """What :meth:`JitterBuffer.push` did with a packet."""

    BUFFERED = "buffered"
    DUPLICATE = "duplicate"
    LATE = "late"
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class Packet:
    """A buffered voice packet: its Opus frame and copies of the frames before it.

    ``end_of_spurt``: the sender stops after this frame (the voice datagram's END_OF_SPURT
    flag), so the gap that follows is a pause, not loss, and needs no concealment.
    """

    frame: bytes
    redundant: tuple[bytes, ...] = ()
    end_of_spurt: bool = False


@dataclass(frozen=True, slots=True)
class Play:
    """Decode ``packet.frame``, the packet of frame ``seq``."""

    seq: int
    packet: Packet


@dataclass(frozen=True, slots=True)
class Recover:
    """Frame ``seq`` is lost; rebuild it from ``packet``, the packet of frame ``source_seq``
    (its redundant copy, or Opus in-band FEC). The source stays buffered for its own tick.
    """

    seq: int
    source_seq: int
    packet: Packet


@dataclass(frozen=True, slots=True)
class Conceal:
    """Conceal frame ``seq`` (given up), or stretch time while waiting if ``seq`` is None."""

    seq: int | None


@dataclass(frozen=True, slots=True)
class Silence:
    """The speaker is idle: output silence."""


Decision = Play | Recover | Conceal | Silence


@dataclass(frozen=True, slots=True)
class JitterStatistics:
    """Counters and state of one jitter buffer (times in seconds).

    Every accepted push ends in exactly one of ``played``, ``late``, ``duplicates``,
    ``dropped`` or is still buffered (``depth``): ``received`` is their sum.
    """

    target_delay: float
    fec_lookahead: bool
    depth: int
    received: int
    played: int
    recovered: int
    concealed: int
    stretched: int
    late: int
    duplicates: int
    dropped: int
    resyncs: int
    spikes: int
    loss_estimate: float

    @property
    def late_loss_rate(self) -> float:
        """Fraction of genuine packets that came too late to be played."""
        useful = self.received - self.duplicates - self.dropped
        return self.late / useful if useful > 0 else 0.0


class JitterBuffer:
    """Reorders, de-duplicates and schedules one speaker's packets (see the module doc)."""

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        fec: bool = True,
        estimator: DelayEstimator | None = None,
        max_payload: int = MAX_PAYLOAD,
        seq_bits: int = SEQ_BITS,
    ) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        if not 8 <= seq_bits <= 64:
            raise ValueError("seq_bits must be 8..64")
        self._modulus = 1 << seq_bits
        self._half = self._modulus // 2
        self._capacity = capacity
        self._fec = fec
        self._est = estimator if estimator is not None else DelayEstimator()
        self._max_payload = max_payload
        self._packets: dict[int, Packet] = {}
        self._ref: int | None = None  # extended seq of the newest accepted packet
        self._ref_pause = False  # ... and whether it announced a pause (DTX, end of spurt)
        self._last: int | None = None  # extended seq of the last frame decided
        self._next: int | None = None  # cursor while a talk spurt plays; None when idle
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._last_push = -math.inf
        self._late_run = 0
        self._conceal_run = 0
        self._loss = 0.0
        self._lookahead = False
        # counters
        self._received = 0
        self._played = 0
        self._recovered = 0
        self._concealed = 0
        self._stretched = 0
        self._late = 0
        self._duplicates = 0
        self._dropped = 0
        self._resyncs = 0

    # -- arrivals -------------------------------------------------------------------------

    def push(
        self,
        seq: int,
        frame: bytes,
        now: float,
        *,
        redundant: Sequence[bytes] = (),
        end_of_spurt: bool = False,
    ) -> PushResult:
        """Accept one untrusted packet that arrived at ``now``.

        ``redundant[i]`` is the sender's copy of frame ``seq - 1 - i`` (empty if none).
        """
        self._received += 1
        size = len(frame) + sum(len(r) for r in redundant)
        if not frame or size > self._max_payload or len(redundant) > MAX_REDUNDANT_FRAMES:
            self._dropped += 1
            return PushResult.DROPPED
        seq %= self._modulus
        ext = self._extend(seq)
        if self._last is not None and ext <= self._last and self._should_resync(now):
            ext = self._resync(seq)
        elif self._last is not None and ext - self._last >= self._half:
            # So far ahead that it could be mistaken for an old packet: not voice.
            self._dropped += 1
            return PushResult.DROPPED
        self._last_push = now
        if self._last is not None and ext <= self._last:
            if ext in self._seen:
                self._duplicates += 1
                return PushResult.DUPLICATE
            self._remember(ext)
            self._observe(ext, now)
            self._count_loss(ext)  # late, not lost: it filled a gap counted as loss
            self._late += 1
            self._late_run += 1
            return PushResult.LATE
        if ext in self._packets:
            self._duplicates += 1
            return PushResult.DUPLICATE
        self._late_run = 0
        self._packets[ext] = Packet(
            bytes(frame), tuple(bytes(r) for r in redundant), bool(end_of_spurt)
        )
        if len(self._packets) > self._capacity:
            # Overflow: keep the frames needed soonest, drop the furthest in the future.
            newest = max(self._packets)
            del self._packets[newest]
            self._dropped += 1
            if newest == ext:
                return PushResult.DROPPED
        self._count_loss(ext)
        if self._ref is None or ext > self._ref:
            self._ref = ext
            self._ref_pause = bool(end_of_spurt) or len(frame) <= MAX_DTX_PACKET
        self._observe(ext, now)
        return PushResult.BUFFERED

    def _count_loss(self, ext: int) -> None:
        """Loss inside talk spurts, seen from sequence gaps; drives FEC look-ahead and is
        what the client reports to the sender's encoder."""
        if self._ref is None:
            return
        if ext > self._ref:
            gap = ext - self._ref - 1
            if self._ref_pause or gap > MAX_LOSS_GAP:
                gap = 0  # a pause the sender announced, or too long to be loss
            for _ in range(gap):
                self._loss += (1.0 - self._loss) / LOSS_WINDOW
            self._loss -= self._loss / LOSS_WINDOW
        else:  # a reordered (or late) packet filled a gap counted as loss
            self._loss = max(0.0, self._loss - 1.0 / LOSS_WINDOW)
        if self._fec and self._loss > 0.02:
            self._lookahead = True
        elif self._loss < 0.005:
            self._lookahead = False

    def _extend(self, seq: int) -> int:
        """Map a wrapped sequence number to the unwrapped one nearest the newest packet."""
        if self._ref is None:
            return seq
        delta = (seq - self._ref + self._half) % self._modulus - self._half
        return self._ref + delta

    def _should_resync(self, now: float) -> bool:
        idle = self._next is None and not self._packets
        return (idle and now - self._last_push > RESYNC_IDLE_S) or (
            self._late_run >= RESYNC_LATE_RUN
        )

    def _resync(self, seq: int) -> int:
        """The sender restarted its numbering or clock: continue right after the last frame."""
        assert self._last is not None
        self._resyncs += 1
        self._late += len(self._packets)  # what is buffered belongs to the old timeline
        self._packets.clear()
        self._next = None
        self._late_run = 0
        self._est.reset_base()
        # The first number after the last frame played that is congruent with ``seq``.
        ext = self._last + 1 + (seq - self._last - 1) % self._modulus
        self._ref = ext
        return ext

    def _observe(self, ext: int, now: float) -> None:
        self._est.observe(now - ext * FRAME_S)

    def _remember(self, ext: int) -> None:
        self._seen.add(ext)
        self._seen_order.append(ext)
        if len(self._seen_order) > HISTORY:
            self._seen.discard(self._seen_order.popleft())

    # -- playout --------------------------------------------------------------------------

    @property
    def modulus(self) -> int:
        """Sequence numbers wrap at this value."""
        return self._modulus

    @property
    def target_delay(self) -> float:
        """Delay above the fastest path that frames are scheduled at, FEC look-ahead included."""
        lookahead = LOOKAHEAD_FRAMES if self._lookahead else 0
        return self._est.target + SAFETY_MARGIN_S + lookahead * FRAME_S

    def _due(self, ext: int) -> float:
        base = self._est.base
        return ext * FRAME_S + (base if base is not None else 0.0) + self.target_delay

    def pop(self, now: float) -> Decision:
        """Decide what the next tick plays. Exactly one decision per call."""
        if self._next is None:
            if not self._packets:
                return Silence()
            first = min(self._packets)
            # (Never earlier than the jitter allows: on a jitter-free path the next frame
            # would then not be there in time.)
            if now < self._due(first) - min(START_EARLY_S, self._est.target):
                return Silence()
            self._next = first
            self._conceal_run = 0
        n = self._next
        # Frames far behind schedule are late: skipping them keeps a long stall from
        # turning into standing delay (shorter delays go at the next pause).
        while (
            n in self._packets
            and now - self._due(n) > CATCH_UP_BEHIND_S
            and (n + 1) in self._packets
        ):
            del self._packets[n]
            self._remember(n)
            self._late += 1
            self._last = n
            n += 1
        self._next = n
        if n in self._packets:
            packet = self._packets.pop(n)
            self._remember(n)
            self._advance(n, had_packet=True)
            self._played += 1
            pause = packet.end_of_spurt or len(packet.frame) <= MAX_DTX_PACKET
            if pause and (n + 1) not in self._packets:
                # The speaker said so (end of spurt, or the DTX frame that starts a pause):
                # idle now, nothing to conceal; the next spurt starts on schedule.
                self._next = None
            return Play(n % self._modulus, packet)
        later = min(self._packets) if self._packets else None
        stalled = later is None and self._conceal_run == 0  # (not after giving up once)
        # On a loss-free path a hole with packets behind it is a packet overtaken by later
        # ones (heavy-tailed jitter), not a loss: worth a short wait.
        overtaken = later is not None and not self._lookahead
        behind = now - self._due(n)
        if (
            behind < 0
            or (stalled and behind < MAX_WAIT_S)
            or (
                overtaken
                and behind < min(REORDER_WAIT_S, max(REORDER_WAIT_MIN_S, self._est.target))
            )
        ):
            # Not yet due, or due but nothing after it has come either: the stream is late
            # (a stall), not lossy. Wait: the playout stretches time with filler.
            self._stretched += 1
            return Conceal(None)
        self._advance(n, had_packet=False)
        if later is not None and self._can_recover(n, later):
            self._recovered += 1
            return Recover(n % self._modulus, later % self._modulus, self._packets[later])
        if later is None or later - n > MAX_CONCEAL_RUN:
            self._conceal_run += 1
            if self._conceal_run > MAX_CONCEAL_RUN:
                self._next = None
                return Silence()
        self._concealed += 1
        return Conceal(n % self._modulus)

    def _can_recover(self, n: int, later: int) -> bool:
        distance = later - n
        if distance == 1 and self._fec:
            return True
        copies = self._packets[later].redundant
        return 1 <= distance <= len(copies) and bool(copies[distance - 1])

    def _advance(self, n: int, *, had_packet: bool) -> None:
        self._last = n
        self._next = n + 1
        if had_packet:
            self._conceal_run = 0

    def statistics(self) -> JitterStatistics:
        return JitterStatistics(
            target_delay=self.target_delay,
            fec_lookahead=self._lookahead,
            depth=len(self._packets),
            received=self._received,
            played=self._played,
            recovered=self._recovered,
            concealed=self._concealed,
            stretched=self._stretched,
            late=self._late,
            duplicates=self._duplicates,
            dropped=self._dropped,
            resyncs=self._resyncs,
            spikes=self._est.estimate().spikes,
            loss_estimate=self._loss,
        )
