"""LossFeedback: listeners' reports in, per-speaker feedback out (pure, time passed in)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echomesh_trio.protocol.events import SpeakerLoss
from echomesh_trio.voice.loss import (
    FEEDBACK_INTERVAL_S,
    FRESH_S,
    InvalidLossReport,
    LossFeedback,
    check_report,
)


def test_feedback_weights_listeners_by_packets_expected() -> None:
    loss = LossFeedback()
    assert loss.record(2, [SpeakerLoss(1, 100, 10, 0)], now=0.0)[0][1].loss == pytest.approx(0.1)
    # Within the interval the speaker is not told again, but the report is kept.
    assert loss.record(3, [SpeakerLoss(1, 300, 0, 3)], now=0.5) == []
    feedback = loss.feedback(1, now=0.5)
    assert feedback is not None
    assert feedback.listeners == 2
    assert feedback.loss == pytest.approx(10 / 400)
    assert feedback.late_loss == pytest.approx(3 / 400)
    assert feedback.worst_loss == pytest.approx(0.1)
    due = loss.record(3, [SpeakerLoss(1, 300, 0, 0)], now=FEEDBACK_INTERVAL_S)
    assert [speaker for speaker, _ in due] == [1]


def test_stale_reports_and_departed_sessions_are_forgotten() -> None:
    loss = LossFeedback()
    loss.record(2, [SpeakerLoss(1, 100, 50, 0)], now=0.0)
    assert loss.feedback(1, now=FRESH_S + 1) is None
    loss.record(2, [SpeakerLoss(1, 100, 50, 0), SpeakerLoss(3, 10, 0, 0)], now=20.0)
    loss.forget(2)  # the listener left: nothing of its reports remains
    assert loss.feedback(1, now=20.0) is None and loss.statistics() == (0, 0)


def test_a_listener_cannot_report_on_itself() -> None:
    loss = LossFeedback()
    assert loss.record(5, [SpeakerLoss(5, 100, 100, 0)], now=0.0) == []
    assert loss.statistics() == (0, 0)


@pytest.mark.parametrize(
    "entry",
    [SpeakerLoss(1, 10, 11, 0), SpeakerLoss(1, 10, 5, 6), SpeakerLoss(1, 10**6, 0, 0)],
)
def test_impossible_counts_are_refused(entry: SpeakerLoss) -> None:
    with pytest.raises(InvalidLossReport):
        check_report((entry,))


counts = st.integers(0, 2000)


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5), counts, counts, counts)))
def test_feedback_is_always_a_fraction(reports: list[tuple[int, int, int, int, int]]) -> None:
    loss = LossFeedback()
    for t, (listener, speaker, expected, lost, late) in enumerate(reports):
        entry = SpeakerLoss(speaker, expected + lost + late, lost, late)
        check_report((entry,))
        for _, f in loss.record(listener, [entry], now=float(t)):
            assert 0.0 <= f.late_loss <= 1.0 and 0.0 <= f.loss <= f.worst_loss <= 1.0
            assert f.listeners >= 1
