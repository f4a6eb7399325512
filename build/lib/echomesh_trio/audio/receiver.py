"""Everything the client hears: one playout per speaker, mixed into each device block.

The client library pushes every voice frame it receives (keyed by the speaker's source id)
and the output device pulls mixed blocks. Bounded: at most ``max_speakers`` playouts exist;
a frame from one more speaker is refused and counted, and speakers silent for
``forget_after_s`` are forgotten (their decoder and buffer freed). Pure: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from echomesh_trio.audio.jitter import PushResult
from echomesh_trio.audio.mixer import Mixer
from echomesh_trio.audio.pcm import Pcm
from echomesh_trio.audio.playout import PlayoutStatistics, SpeakerPlayout

DEFAULT_MAX_SPEAKERS = 32
"""Far more than can talk at once in a room; each costs a decoder and a 64-packet buffer."""

DEFAULT_FORGET_AFTER_S = 30.0


@dataclass(frozen=True, slots=True)
class ReceiverStatistics:
    """Per-speaker playout statistics, and frames refused because too many spoke."""

    speakers: Mapping[Hashable, PlayoutStatistics]
    refused: int
    forgotten: int


class VoiceReceiver:
    """Jitter buffers and decoders of all speakers, mixed with per-speaker gain."""

    def __init__(
        self,
        *,
        max_speakers: int = DEFAULT_MAX_SPEAKERS,
        forget_after_s: float = DEFAULT_FORGET_AFTER_S,
        mixer: Mixer | None = None,
    ) -> None:
        self._max = max_speakers
        self._forget_after = forget_after_s
        self.mixer = mixer if mixer is not None else Mixer()
        self._playouts: dict[Hashable, SpeakerPlayout] = {}
        self._last_heard: dict[Hashable, float] = {}
        self._refused = 0
        self._forgotten = 0

    def push(
        self,
        speaker: Hashable,
        seq: int,
        frame: bytes,
        now: float,
        *,
        redundant: Sequence[bytes] = (),
        end_of_spurt: bool = False,
    ) -> PushResult:
        """Queue one untrusted voice frame of ``speaker``."""
        playout = self._playouts.get(speaker)
        if playout is None:
            if len(self._playouts) >= self._max:
                self._refused += 1
                return PushResult.DROPPED
            playout = self._playouts[speaker] = SpeakerPlayout()
        self._last_heard[speaker] = now
        return playout.push(seq, frame, now, redundant=redundant, end_of_spurt=end_of_spurt)

    def pull(self, samples: int, now: float) -> Pcm:
        """The mixed block of ``samples`` samples that the device plays from ``now``."""
        blocks = [(who, p.pull(samples, now)) for who, p in self._playouts.items()]
        for who in [w for w, p in self._playouts.items() if self._stale(w, p, now)]:
            self.remove(who)
            self._forgotten += 1
        return self.mixer.mix(blocks, samples)

    def _stale(self, who: Hashable, playout: SpeakerPlayout, now: float) -> bool:
        return not playout.active and now - self._last_heard[who] > self._forget_after

    def remove(self, speaker: Hashable) -> None:
        """The speaker left the room."""
        self._playouts.pop(speaker, None)
        self._last_heard.pop(speaker, None)

    def talking(self) -> frozenset[Hashable]:
        """Speakers whose voice is being played right now (for a "who speaks" display)."""
        return frozenset(w for w, p in self._playouts.items() if p.active)

    def statistics(self) -> ReceiverStatistics:
        return ReceiverStatistics(
            speakers=MappingProxyType({w: p.statistics() for w, p in self._playouts.items()}),
            refused=self._refused,
            forgotten=self._forgotten,
        )
