"""Jitter buffer: ordering, duplicates, lateness, adaptation, and properties under any input."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from echomesh_trio.audio.jitter import (
    CATCH_UP_BEHIND_S,
    HISTORY,
    MAX_WAIT_S,
    Conceal,
    Decision,
    JitterBuffer,
    Play,
    PushResult,
    Recover,
    Silence,
)

F = 0.020
M16 = 1 << 16


def run_until_play(jb: JitterBuffer, now: float, limit: int = 400) -> tuple[Decision, float]:
    """Pop in 5 ms steps until something that is not silence or a wait comes out."""
    for _ in range(limit):
        d = jb.pop(now)
        if not isinstance(d, Silence) and not (isinstance(d, Conceal) and d.seq is None):
            return d, now
        now += 0.005
    raise AssertionError("nothing played")


def test_in_order_stream_plays_every_packet_once() -> None:
    jb = JitterBuffer()
    played = []
    now = 0.0
    for k in range(50):
        now = k * F + 0.03
        jb.push(k, bytes([k]), now)
        d = jb.pop(now)
        if isinstance(d, Play):
            played.append(d.seq)
    for _ in range(10):
        now += F
        d = jb.pop(now)
        if isinstance(d, Play):
            played.append(d.seq)
    assert played == list(range(50))
    s = jb.statistics()
    assert s.late == 0 and s.duplicates == 0 and s.late_loss_rate == 0.0


def test_reordered_packets_come_out_in_order() -> None:
    jb = JitterBuffer()
    for seq in (3, 1, 2, 0):
        jb.push(seq, b"x", 0.1)
    out = []
    now = 0.1
    while len(out) < 4:
        d = jb.pop(now)
        if isinstance(d, Play):
            out.append(d.seq)
        now += F
    assert out == [0, 1, 2, 3]


def test_duplicates_and_late_packets_are_counted_not_played() -> None:
    jb = JitterBuffer()
    assert jb.push(0, b"pa0", 0.0) is PushResult.BUFFERED
    assert jb.push(0, b"pa0", 0.0) is PushResult.DUPLICATE
    d, now = run_until_play(jb, 0.0)
    assert d == Play(0, d.packet) and d.packet.frame == b"pa0"
    assert jb.push(0, b"pa0", now) is PushResult.DUPLICATE  # already played
    jb.push(2, b"pc2", now)
    d, now = run_until_play(jb, now + F)
    assert isinstance(d, Recover | Conceal) and d.seq == 1
    assert jb.push(1, b"pb1", now) is PushResult.LATE
    s = jb.statistics()
    assert (s.duplicates, s.late) == (2, 1)


def test_lost_frame_is_recovered_from_the_next_packet() -> None:
    jb = JitterBuffer()
    jb.push(10, b"p10", 0.0)
    jb.push(12, b"p12", 0.04)
    d, now = run_until_play(jb, 0.0)
    assert isinstance(d, Play) and d.seq == 10
    d, now = run_until_play(jb, now + F)  # (a spurt may start up to 2.5 ms early)
    assert d == Recover(11, 12, d.packet) and d.packet.frame == b"p12"
    d = jb.pop(now + F)
    assert isinstance(d, Play) and d.seq == 12
    assert jb.statistics().recovered == 1


def test_redundant_copy_allows_recovery_across_a_gap_of_two() -> None:
    jb = JitterBuffer()
    jb.push(0, b"p00", 0.0)  # (1-2 bytes would be a DTX frame: the start of a pause)
    jb.push(3, b"p03", 0.06, redundant=(b"p02", b"p01"))
    _, now = run_until_play(jb, 0.0)
    d, _ = run_until_play(jb, now + F)
    assert isinstance(d, Recover) and (d.seq, d.source_seq) == (1, 3)


def test_idle_speaker_gives_silence_after_a_bounded_wait_and_a_short_concealment() -> None:
    jb = JitterBuffer()
    jb.push(0, b"abc", 0.0)
    _, now = run_until_play(jb, 0.0)
    kinds = []
    for i in range(1, 200):
        d = jb.pop(now + i * 0.005)
        kinds.append("wait" if isinstance(d, Conceal) and d.seq is None else type(d).__name__)
    waits = kinds.index("Conceal")
    # Nothing after frame 0 has come: a stall, waited for up to MAX_WAIT_S past its due time.
    assert set(kinds[:waits]) == {"wait"} and waits >= (MAX_WAIT_S - F) / 0.005
    assert waits <= (MAX_WAIT_S + F) / 0.005
    after = [k for k in kinds[waits:] if k != "wait"]  # (waits for the next due time)
    assert after[:3] == ["Conceal"] * 3
    assert set(after[3:]) == {"Silence"} and kinds[-1] == "Silence"


def test_a_dtx_frame_ends_the_spurt_without_concealment() -> None:
    jb = JitterBuffer()
    jb.push(0, b"speech", 0.0)
    jb.push(1, b"\x08", 0.02)  # a 1-byte DTX frame: the sender stops until speech resumes
    _, now = run_until_play(jb, 0.0)
    d = jb.pop(now + F)
    assert isinstance(d, Play) and d.seq == 1
    assert all(isinstance(jb.pop(now + F + i * 0.005), Silence) for i in range(1, 100))
    assert jb.statistics().concealed == 0


def test_sequence_numbers_wrap_around() -> None:
    jb = JitterBuffer(seq_bits=16)
    seqs = [(M16 - 3 + k) % M16 for k in range(6)]
    out = []
    for k, seq in enumerate(seqs):
        jb.push(seq, b"x", k * F)
    now = 0.0
    for _ in range(40):
        d = jb.pop(now)
        if isinstance(d, Play):
            out.append(d.seq)
        now += 0.005
    assert out == seqs


def test_target_grows_with_jitter_and_a_single_spike_does_not_stay() -> None:
    jb = JitterBuffer()
    now = 0.0
    # 10 s of +-15 ms jitter
    for k in range(500):
        jitter = 0.015 * ((k * 7919) % 13) / 12
        now = k * F + jitter
        jb.push(k, b"x", now)
        jb.pop(now)
    grown = jb.statistics().target_delay
    assert 0.010 <= grown <= 0.030
    # one 200 ms spike: ten packets stuck, then released together
    k0 = 500
    for k in range(k0, k0 + 10):
        jb.push(k, b"x", k0 * F + 0.2)
    for k in range(k0 + 10, k0 + 500):
        jb.push(k, b"x", k * F + 0.005)
        jb.pop(k * F + 0.005)
    s = jb.statistics()
    assert s.target_delay < 0.050
    assert s.spikes == 1  # the stall and its drain are one event


def test_resync_after_a_long_silence_accepts_a_restarted_sequence() -> None:
    jb = JitterBuffer()
    for k in range(1000, 1005):
        jb.push(k, b"x", (k - 1000) * F)
    now = 0.0
    for _ in range(40):
        jb.pop(now)
        now += F
    assert jb.push(3, b"y", now + 5.0) is PushResult.BUFFERED  # restarted at 3, 5 s later
    d, _ = run_until_play(jb, now + 5.0)
    assert isinstance(d, Play) and d.seq == 3 and jb.statistics().resyncs == 1


def test_hostile_payloads_are_dropped() -> None:
    jb = JitterBuffer()
    assert jb.push(1, b"", 0.0) is PushResult.DROPPED
    assert jb.push(1, b"x" * 100_000, 0.0) is PushResult.DROPPED
    assert jb.push(1, b"x", 0.0, redundant=(b"",) * 9) is PushResult.DROPPED
    assert jb.push(-5, b"x", 0.0) is PushResult.BUFFERED  # any integer is a sequence number
    assert jb.statistics().dropped == 3


def test_memory_is_bounded_under_a_flood() -> None:
    jb = JitterBuffer(capacity=16)
    for k in range(5000):
        jb.push((k * 7_777_777) % (1 << 32), b"x", k * 0.0001)
    s = jb.statistics()
    assert s.depth <= 16
    assert s.received == s.played + s.late + s.duplicates + s.dropped + s.depth


# -- properties ------------------------------------------------------------------------

arrivals = st.lists(
    st.tuples(
        st.integers(0, 60),  # frame index
        st.floats(0.0, 0.3),  # network delay
        st.booleans(),  # duplicate it
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(arrivals, st.integers(0, M16 - 1))
def test_any_arrival_pattern_plays_in_order_at_most_once(
    pattern: list[tuple[int, float, bool]], start: int
) -> None:
    jb = JitterBuffer(seq_bits=16, capacity=32)
    events = []
    for k, delay, dup in pattern:
        at = k * F + delay
        events.append((at, k))
        if dup:
            events.append((at + 0.001, k))
    events.sort()
    now, i, emitted = 0.0, 0, []
    while i < len(events) or now < 3.0:
        while i < len(events) and events[i][0] <= now:
            jb.push((start + events[i][1]) % M16, b"x", events[i][0])
            i += 1
        d = jb.pop(now)
        if isinstance(d, Play | Recover) or (isinstance(d, Conceal) and d.seq is not None):
            emitted.append((d.seq - start) % M16)
        now += 0.005
    assert emitted == sorted(set(emitted))  # increasing, so each at most once
    s = jb.statistics()
    assert s.depth == 0
    assert s.received == s.played + s.late + s.duplicates + s.dropped
    played_frames = {k for k, _, _ in pattern}
    assert s.played <= len(played_frames)


class JitterMachine(RuleBasedStateMachine):
    """Random interleavings of pushes (honest, reordered, duplicated, hostile) and pops."""

    @initialize(capacity=st.integers(2, 40), start=st.integers(0, M16 - 1))
    def setup(self, capacity: int, start: int) -> None:
        self.jb = JitterBuffer(seq_bits=16, capacity=capacity)
        self.capacity = capacity
        self.now = 0.0
        self.sender = start
        self.sent: list[int] = []
        self.last: int | None = None
        self.seen_resyncs = 0

    @rule(n=st.integers(1, 4), last_of_spurt=st.booleans())
    def send_in_order(self, n: int, last_of_spurt: bool) -> None:
        for i in range(n):
            eos = last_of_spurt and i == n - 1
            self.jb.push(self.sender, b"v", self.now, end_of_spurt=eos)
            self.sent.append(self.sender)
            self.sender = (self.sender + 1) % M16

    @rule(skip=st.integers(1, 30))
    def gap(self, skip: int) -> None:
        self.sender = (self.sender + skip) % M16

    @precondition(lambda self: self.sent)
    @rule(back=st.integers(0, 20))
    def replay_old(self, back: int) -> None:
        """A reordered or duplicated packet."""
        self.jb.push(self.sent[-1 - min(back, len(self.sent) - 1)], b"r", self.now)

    @rule(seq=st.integers(-(2**40), 2**40), size=st.integers(0, 5000))
    def hostile(self, seq: int, size: int) -> None:
        self.jb.push(seq, b"h" * size, self.now)

    @rule(dt=st.sampled_from([0.0, 0.005, 0.02, 0.1, 3.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        d = self.jb.pop(self.now)
        assert isinstance(d, Play | Recover | Conceal | Silence)
        seq = d.seq if isinstance(d, Play | Recover | Conceal) else None
        if seq is None:
            return
        resyncs = self.jb.statistics().resyncs
        if resyncs != self.seen_resyncs:
            self.seen_resyncs, self.last = resyncs, None
        if self.last is not None:
            # Strictly forward in the wrapped sequence space: in order, each at most once,
            # never older than a frame already played.
            forward = (seq - self.last) % M16
            assert 1 <= forward < M16 // 2, (self.last, seq)
        self.last = seq

    @invariant()
    def accounted_and_bounded(self) -> None:
        if not hasattr(self, "jb"):
            return
        s = self.jb.statistics()
        assert s.depth <= self.capacity
        assert s.received == s.played + s.late + s.duplicates + s.dropped + s.depth
        assert 0.0 <= s.target_delay <= 1.0
        assert len(self.jb._seen) <= HISTORY


TestJitterMachine = JitterMachine.TestCase
TestJitterMachine.settings = settings(
    max_examples=120,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_end_of_spurt_goes_idle_at_once_and_is_not_loss() -> None:
    jb = JitterBuffer()
    jb.push(0, b"a", 0.0)
    jb.push(1, b"b", 0.02, end_of_spurt=True)
    _, now = run_until_play(jb, 0.0)
    assert isinstance(jb.pop(now + F), Play)
    assert isinstance(jb.pop(now + 2 * F), Silence)  # no concealment after the last frame
    jb.push(4, b"c", now + 3 * F)  # resumes after a 2-frame pause
    assert jb.statistics().loss_estimate == 0.0
    assert jb.statistics().concealed == 0


def test_a_packet_overtaken_on_a_loss_free_path_is_waited_for() -> None:
    jb = JitterBuffer()
    jb.push(0, b"p00", 0.0)
    jb.push(2, b"p02", 0.04)  # 1 is late, not lost: nothing says the path is lossy
    _, now = run_until_play(jb, 0.0)
    waited = 0
    t = now + F
    d = jb.pop(t)
    while isinstance(d, Conceal) and d.seq is None and waited < 100:
        waited += 1
        t += 0.005
        if waited == 6:  # 30 ms past its due time, frame 1 arrives
            jb.push(1, b"p01", t)
        d = jb.pop(t)
    assert isinstance(d, Play) and d.seq == 1
    assert jb.statistics().late == 0 and jb.statistics().recovered == 0


def test_on_a_lossy_path_a_hole_is_rebuilt_at_once() -> None:
    jb = JitterBuffer()
    now = 0.0
    # 20 % loss for a while: the buffer knows the path is lossy (and looks one frame ahead).
    for k in range(200):
        if k % 5 != 4:
            jb.push(k, b"frame", k * F)
        jb.pop(k * F)
        now = k * F
    assert jb.statistics().fec_lookahead
    jb.push(201, b"frame", now + 2 * F)  # 200 lost, 201 there
    decisions = [jb.pop(now + 2 * F + i * 0.005) for i in range(12)]
    assert any(isinstance(d, Recover) and d.seq == 200 for d in decisions)


def test_a_stall_is_waited_out_and_its_delay_goes_at_the_next_pause() -> None:
    jb = JitterBuffer()
    # Spurt 1: frames 0-299; frames 200-214 are stuck in a 0.3 s stall and arrive together
    # at its end. Then a pause (frame 299 ends the spurt), and spurt 2 from frame 350.
    arrivals = [(k, k * F) for k in range(200)]
    arrivals += [(k, 200 * F + 0.3) for k in range(200, 215)]
    arrivals += [(k, k * F) for k in range(215, 300)]
    arrivals += [(k, k * F) for k in range(350, 400)]
    played: dict[int, float] = {}
    i, now = 0, 0.0
    while now < 400 * F + 0.5:
        while i < len(arrivals) and arrivals[i][1] <= now:
            k, at = arrivals[i]
            jb.push(k, b"frame", at, end_of_spurt=k in (299, 399))
            i += 1
        d = jb.pop(now)
        if isinstance(d, Play):
            played[d.seq] = now - d.seq * F
        # As a playout pulls: a frame lasts 20 ms, a wait or silence one 5 ms block.
        now += (
            F
            if isinstance(d, Play | Recover) or (isinstance(d, Conceal) and d.seq is not None)
            else 0.005
        )
    s = jb.statistics()
    assert (s.concealed, s.recovered, s.late, s.dropped) == (0, 0, 0, 0)
    assert sorted(played) == [k for k, _ in arrivals]
    before, after = played[150], played[250]
    assert 0.25 < after - before < CATCH_UP_BEHIND_S  # waited out, kept in the spurt
    assert played[380] - before < 0.05  # ... and gone after the pause
