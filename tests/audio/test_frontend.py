"""Capture front end: RNNoise noise suppression and gain control, on real librnnoise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from echomesh_trio.audio.frontend import (
    MAX_ATTENUATION_DB,
    MAX_GAIN_DB,
    MIN_GAIN_DB,
    PEAK_LIMIT,
    RNNOISE_FRAME,
    TARGET_DBFS,
    FrontEnd,
    GainControl,
    NoiseSuppressor,
)
from echomesh_trio.audio.sender import GateMode, VoiceSender
from echomesh_trio.audio.vad import level_dbfs
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE

LIMIT = int(PEAK_LIMIT * 32768) + 1
MODES = [(True, True), (True, False), (False, True), (False, False)]


def speechlike(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """Voiced sound (a 150 Hz harmonic series) in 4 Hz syllables with short pauses, at about
    ``dbfs`` active level, plus a faint noise floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voiced = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    envelope *= (t % 1.5) < 1.2  # a pause every 1.5 s
    x = voiced * envelope
    active = x[envelope > 0.1]
    x *= 10 ** (dbfs / 20) * 32768 / np.sqrt(np.mean(active**2))
    x += rng.normal(0, 10 ** ((dbfs - 40) / 20) * 32768, len(t))
    return np.clip(x, -32768, 32767).astype(np.int16)


def frames(signal: np.ndarray) -> list[np.ndarray]:
    n = len(signal) // FRAME_SAMPLES
    return [signal[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES] for k in range(n)]


def run(fe: FrontEnd, signal: np.ndarray) -> np.ndarray:
    return np.concatenate([fe.process(f) for f in frames(signal)])


@pytest.mark.parametrize(("ns", "agc"), MODES)
def test_output_is_one_int16_frame_per_frame(ns: bool, agc: bool) -> None:
    fe = FrontEnd(noise_suppression=ns, agc=agc)
    for f in frames(speechlike(0.5, -30)):
        out = fe.process(f)
        assert out.dtype == np.int16 and out.shape == (FRAME_SAMPLES,)
    assert fe.statistics().frames == 25
    assert FRAME_SAMPLES % RNNOISE_FRAME == 0


@pytest.mark.parametrize("bad", [np.zeros(480, np.int16), np.zeros(960, np.float32)])
def test_wrong_frames_are_refused(bad: np.ndarray) -> None:
    with pytest.raises((ValueError, TypeError)):
        FrontEnd().process(bad)


@pytest.mark.parametrize(("ns", "agc"), MODES)
def test_silence_in_gives_silence_out(ns: bool, agc: bool) -> None:
    fe = FrontEnd(noise_suppression=ns, agc=agc)
    zero = np.zeros(FRAME_SAMPLES, np.int16)
    assert all(not fe.process(zero).any() for _ in range(50))
    # ... also right after speech, once RNNoise's 20 ms delay has passed.
    run(fe, speechlike(1.0, -20))
    fe.process(zero)
    fe.process(zero)
    assert all(np.abs(fe.process(zero)).max() <= 1 for _ in range(20))


def test_noise_suppression_removes_stationary_noise() -> None:
    noise = np.random.default_rng(3).normal(0, 1000, SAMPLE_RATE * 2).astype(np.int16)
    out = run(FrontEnd(agc=False), noise)
    # As much as the attenuation floor allows (14 dB), and no more.
    reduction = level_dbfs(noise[SAMPLE_RATE:]) - level_dbfs(out[SAMPLE_RATE:])
    assert MAX_ATTENUATION_DB - 2 < reduction < MAX_ATTENUATION_DB + 1
    deeper = run(FrontEnd(agc=False, max_attenuation_db=40), noise)
    assert level_dbfs(deeper[SAMPLE_RATE:]) < level_dbfs(noise[SAMPLE_RATE:]) - 25


def test_delay_samples_is_the_measured_lag() -> None:
    x = np.concatenate([speechlike(1.0, -26), np.zeros(SAMPLE_RATE // 2, np.int16)])
    x[SAMPLE_RATE // 2 : SAMPLE_RATE // 2 + 20] = 20000  # a click to find again
    fe = FrontEnd(agc=False)
    out = run(fe, x).astype(np.float64)
    lags = [
        float(np.dot(x[:-2000].astype(np.float64), out[k : len(x) - 2000 + k])) for k in range(1500)
    ]
    assert abs(int(np.argmax(lags)) - fe.delay_samples) <= 24
    assert FrontEnd(noise_suppression=False).delay_samples == 0


# (Without noise suppression: RNNoise treats this synthetic vowel partly as noise.)
@pytest.mark.parametrize(("level", "ns"), [(-50, False), (-36, False), (-8, False)])
def test_gain_control_brings_quiet_and_loud_speech_towards_the_target(
    level: float, ns: bool
) -> None:
    raw = speechlike(8.0, level)
    out = run(FrontEnd(noise_suppression=ns), raw)
    later = out[SAMPLE_RATE * 5 :]
    active = later[np.abs(later) > 0.01 * np.abs(later).max()]
    got = level_dbfs(active)
    wanted = level + min(MAX_GAIN_DB, max(MIN_GAIN_DB, TARGET_DBFS - level))
    assert abs(got - wanted) < 4, (got, wanted)
    assert np.abs(out).max() <= LIMIT


def test_gain_control_does_not_raise_pauses() -> None:
    agc = GainControl()
    quiet = speechlike(3.0, -45).astype(np.float32)
    for f in frames(quiet):
        agc.process(f, speech=True)
    raised = agc.gain_db
    for _ in range(100):  # 2 s of room tone, not speech: the gain holds
        agc.process(np.full(FRAME_SAMPLES, 3.0, np.float32), speech=False)
    assert agc.gain_db == raised > 10


def test_a_sudden_loud_peak_is_limited_not_clipped() -> None:
    fe = FrontEnd(noise_suppression=False)
    run(fe, speechlike(4.0, -50))  # the AGC has raised its gain
    burst = np.full(FRAME_SAMPLES, 30000, np.int16)
    out = fe.process(burst)
    assert np.abs(out).max() <= LIMIT and np.abs(out).max() > LIMIT // 4


def test_switching_at_run_time() -> None:
    fe = FrontEnd()
    run(fe, speechlike(0.5, -30))
    fe.noise_suppression = False
    fe.agc = False
    x = speechlike(0.2, -30)
    assert np.array_equal(run(fe, x), x)  # both off: the frame passes unchanged
    fe.noise_suppression = True
    assert fe.statistics().noise_suppression and fe.delay_samples == 2 * RNNOISE_FRAME


def test_a_non_finite_network_state_is_rebuilt() -> None:
    ns = NoiseSuppressor()
    out, p = ns.process(np.full(FRAME_SAMPLES, np.inf, np.float32))
    assert np.isfinite(out).all() and not out.any() and p == 0.0 and ns.resets >= 1
    out, _ = ns.process(np.zeros(FRAME_SAMPLES, np.float32))
    assert np.isfinite(out).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            arrays(np.int16, FRAME_SAMPLES),
            st.sampled_from([-32768, 32767, 0]).map(lambda v: np.full(FRAME_SAMPLES, v, np.int16)),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(MODES),
)
def test_any_input_gives_bounded_finite_output(
    chunks: list[np.ndarray], mode: tuple[bool, bool]
) -> None:
    fe = FrontEnd(noise_suppression=mode[0], agc=mode[1])
    for f in chunks:
        out = fe.process(f)
        assert out.dtype == np.int16 and out.shape == (FRAME_SAMPLES,)
        if mode[1]:
            assert np.abs(out.astype(np.int32)).max() <= LIMIT
    assert np.isfinite(fe.statistics().gain_db)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float32, FRAME_SAMPLES, elements=st.floats(-1e6, 1e6, width=32)),
    st.booleans() | st.none(),
)
def test_gain_control_bounds_any_samples(samples: np.ndarray, speech: bool | None) -> None:
    out = GainControl().process(samples, speech)
    assert np.isfinite(out).all() and np.abs(out).max() <= PEAK_LIMIT * 32768 + 1e-3


def test_sender_vad_decides_on_the_cleaned_signal() -> None:
    noise = np.random.default_rng(5).normal(0, 2000, SAMPLE_RATE * 2).astype(np.int16)
    sender = VoiceSender(mode=GateMode.VOICE_ACTIVATION, front_end=FrontEnd())
    twin = FrontEnd()  # deterministic: gives the frames the sender's VAD must have seen
    for f in frames(noise):
        sender.process(f)
        assert sender.vad_state is not None
        assert sender.vad_state.level_dbfs == level_dbfs(twin.process(f))
    assert sender.vad_state.level_dbfs < level_dbfs(noise) - 10
    sender.front_end = None  # off: the VAD sees the raw frame again
    sender.process(frames(noise)[0])
    assert sender.vad_state is not None
    assert sender.vad_state.level_dbfs == level_dbfs(frames(noise)[0])
