"""Loss feedback: listeners report what they heard of each speaker; each speaker is told
the loss its listeners see, so its encoder's expected-loss setting and redundancy can
follow the real path (docs/PROTOCOL.md, "Loss feedback").

Pure state, time passed in. The server keeps one ``LossFeedback``; the control handler
records each ``ReportVoiceLoss`` and sends the feedback it returns to those speakers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from echomesh_trio.protocol.events import SpeakerLoss, VoiceLossFeedback

MAX_SPEAKERS_PER_REPORT: Final = 64
"""Entries in one report; a room has far fewer talkers than this."""
MAX_EXPECTED: Final = 10_000
"""Packets per speaker per report: 50 packets/s for 200 s; reports come every few
seconds, so anything larger is not a real count."""
FRESH_S: Final = 15.0
"""A listener's last report counts towards a speaker's feedback for this long."""
FEEDBACK_INTERVAL_S: Final = 2.0
"""A speaker is told at most this often (reports from several listeners arrive at
different moments)."""


class InvalidLossReport(ValueError):
    """A report with counts that cannot be true (the peer's fault)."""


@dataclass(slots=True)
class _Heard:
    expected: int
    lost: int
    late: int
    at: float


def check_report(speakers: tuple[SpeakerLoss, ...]) -> None:
    """Raise InvalidLossReport unless every entry is plausible."""
    if len(speakers) > MAX_SPEAKERS_PER_REPORT:
        raise InvalidLossReport(
            f"{len(speakers)} speakers in one report; the limit is {MAX_SPEAKERS_PER_REPORT}"
        )
    for s in speakers:
        if not 0 <= s.expected <= MAX_EXPECTED:
            raise InvalidLossReport(f"expected {s.expected} packets; the limit is {MAX_EXPECTED}")
        if s.lost + s.late > s.expected:
            raise InvalidLossReport("lost + late exceeds the packets expected")


class LossFeedback:
    """The latest report of every listener about every speaker it heard."""

    def __init__(self) -> None:
        self._heard: dict[int, dict[int, _Heard]] = {}  # speaker -> listener -> report
        self._last_told: dict[int, float] = {}

    def record(
        self, listener: int, speakers: Iterable[SpeakerLoss], now: float
    ) -> list[tuple[int, VoiceLossFeedback]]:
        """Take a listener's report (already checked); return (speaker, feedback) for
        every speaker whose feedback is due now."""
        due: list[tuple[int, VoiceLossFeedback]] = []
        for s in speakers:
            if s.source_id == listener or s.expected == 0:
                continue
            self._heard.setdefault(s.source_id, {})[listener] = _Heard(
                s.expected, s.lost, s.late, now
            )
            if now - self._last_told.get(s.source_id, -FEEDBACK_INTERVAL_S) < FEEDBACK_INTERVAL_S:
                continue
            feedback = self.feedback(s.source_id, now)
            if feedback is not None:
                self._last_told[s.source_id] = now
                due.append((s.source_id, feedback))
        return due

    def feedback(self, speaker: int, now: float) -> VoiceLossFeedback | None:
        """What the speaker's listeners report, from reports fresher than FRESH_S."""
        reports = self._heard.get(speaker)
        if not reports:
            return None
        for listener in [k for k, r in reports.items() if now - r.at > FRESH_S]:
            del reports[listener]
        if not reports:
            del self._heard[speaker]
            return None
        expected = sum(r.expected for r in reports.values())
        lost = sum(r.lost for r in reports.values())
        late = sum(r.late for r in reports.values())
        worst = max(r.lost / r.expected for r in reports.values())
        return VoiceLossFeedback(lost / expected, late / expected, worst, len(reports))

    def forget(self, source_id: int) -> None:
        """The session ended: it is neither a speaker nor a listener any more."""
        self._heard.pop(source_id, None)
        self._last_told.pop(source_id, None)
        for speaker in list(self._heard):
            reports = self._heard[speaker]
            reports.pop(source_id, None)
            if not reports:
                del self._heard[speaker]

    def statistics(self) -> tuple[int, int]:
        """(speakers with reports, reports held)."""
        return len(self._heard), sum(len(r) for r in self._heard.values())
