# ruff: noqa: RUF001  (the Chinese sentences use full-width commas)
"""The speech set of the voice-quality benchmark: many voices, not one.

* espeak-ng (bench/espeak.py) in eleven languages, tonal ones included (Mandarin, Cantonese,
  Vietnamese), male and female variants, pitches 30-80 and rates 135-190 words per minute,
  a few sentences each with pauses of natural length between them (0.25-0.9 s);
* natural recordings that ship inside packages on the registries, fetched at run time with
  ``pip download --no-deps`` into a cache, never committed (``NATURAL``);
* any ``--wav`` files.

Also the background noise for the speech-in-noise condition: a recorded-style room
(ventilation rumble with a pink spectrum, keyboard clicks, a faint babble of other talkers),
mixed at a given SNR over active speech.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter, resample_poly

from bench.espeak import Voice, speak
from bench.quality_signal import ACTIVE_RMS, SENTENCES, normalise, read_wav
from echomesh_trio.media import SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class Utterance:
    """One item of the set: a name and int16 speech at 48 kHz."""

    name: str
    speech: np.ndarray


# (name, voice, sentences). Names say language, sex (m/f), pitch and rate.
ESPEAK_SET: list[tuple[str, Voice, list[str]]] = [
    ("en-m-p50-s160", Voice("en-us", 50, 160), SENTENCES[0:4]),
    ("en-f-p65-s175", Voice("en+f3", 65, 175), SENTENCES[4:8]),
    (
        "cmn-f-p70-s150",
        Voice("cmn+f3", 70, 150),
        ["今天早上我坐火车去北京。", "天气很冷，但是阳光很好。", "我们在饭馆吃了饺子和面条。"],
    ),
    (
        "cmn-m-p35-s140",
        Voice("cmn+m3", 35, 140),
        ["下午我去图书馆看书。", "晚上妈妈做了红烧鱼。", "明天我们一起去爬山吧。"],
    ),
    (
        "yue-f-p60-s150",
        Voice("yue+f2", 60, 150),
        ["我哋今日去咗海边行街。", "啲海鲜好新鲜，价钱都唔贵。", "夜晚我哋坐巴士返屋企。"],
    ),
    (
        "vi-m-p45-s150",
        Voice("vi+m3", 45, 150),
        [
            "Hôm nay trời đẹp, chúng tôi đi chợ mua rau.",
            "Mẹ tôi nấu phở rất ngon.",
            "Anh trai tôi làm việc ở Hà Nội, mỗi tuần về nhà một lần.",
        ],
    ),
    (
        "vi-f-p80-s165",
        Voice("vi+f4", 80, 165),
        [
            "Buổi tối cả nhà cùng xem phim.",
            "Ngày mai em sẽ đi học sớm.",
            "Con mèo ngủ trên ghế, còn con chó chạy ngoài sân.",
        ],
    ),
    (
        "es-f-p55-s170",
        Voice("es+f2", 55, 170),
        [
            "El perro corre por el parque cada mañana.",
            "Mi hermana trabaja en un hospital.",
            "Vamos a comer paella con mis abuelos el domingo.",
        ],
    ),
    (
        "de-m-p30-s145",
        Voice("de+m2", 30, 145),
        [
            "Der Zug nach Berlin hat heute zehn Minuten Verspätung.",
            "Wir trinken einen Kaffee am Bahnhof.",
            "Morgen fahren wir in die Berge.",
        ],
    ),
    (
        "fr-f-p60-s160",
        Voice("fr+f1", 60, 160),
        [
            "Le matin, je prends mon café sur la terrasse.",
            "Les enfants jouent au jardin.",
            "Nous partirons en vacances au mois d'août, au bord de la mer.",
        ],
    ),
    (
        "hi-m-p50-s135",
        Voice("hi+m1", 50, 135),
        ["आज मौसम बहुत अच्छा है।", "हम बाज़ार जाकर फल खरीदेंगे।", "शाम को हम दोस्तों से मिलेंगे।"],
    ),
    (
        "ru-f-p75-s190",
        Voice("ru+f5", 75, 190),
        [
            "Сегодня утром я гулял в парке.",
            "Вечером мы будем смотреть фильм.",
            "Завтра будет холодно, и пойдёт снег.",
            "Мой брат живёт в Москве.",
        ],
    ),
]

QUICK = ("en-f-p65-s175", "cmn-f-p70-s150", "yue-f-p60-s150", "vi-m-p45-s150")
"""The fast subset (``--quick``): the voices that were hardest in earlier runs."""


@dataclass(frozen=True, slots=True)
class Natural:
    """A recording inside a wheel: ``pip download --no-deps <requirement>``, then ``member``."""

    name: str
    requirement: str
    member: str
    licence: str


NATURAL = [
    Natural(
        "pyannote-sample-2spk",
        "pyannote.audio==4.0.7",
        "pyannote/audio/sample/sample.wav",
        # Checked: the wheel is MIT-licensed (CNRS) and ships the file as package data for
        # its tutorials; the file's own origin (a two-speaker telephone-style conversation,
        # 16 kHz, 30 s) is not stated. Used as test input only, never redistributed.
        "MIT (pyannote.audio wheel)",
    ),
]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("ECHOMESH_BENCH_CACHE", str(Path(base) / "echomesh-bench")))


def fetch_natural(item: Natural, log: object = None) -> Path | None:
    """The recording's path in the cache, downloading its wheel once; None if unreachable."""
    target = cache_dir() / f"{item.name}.wav"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
                "-d",
                tmp,
                item.requirement,
            ],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            print(f"cannot fetch {item.requirement}: {done.stderr.strip()[-300:]}", file=sys.stderr)
            return None
        with zipfile.ZipFile(wheels[0]) as z:
            data = z.read(item.member)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def synthesize_utterance(voice: Voice, sentences: list[str], seed: int) -> np.ndarray:
    """Sentences with 0.25-0.9 s pauses between them (and 0.3 s around), int16 at 48 kHz."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(0.3 * SAMPLE_RATE))]
    for i, text in enumerate(sentences):
        pcm, rate = speak(text, voice)
        g = np.gcd(rate, SAMPLE_RATE)
        parts.append(resample_poly(pcm.astype(np.float64), SAMPLE_RATE // g, rate // g))
        pause = 0.3 if i == len(sentences) - 1 else rng.uniform(0.25, 0.9)
        parts.append(np.zeros(int(pause * SAMPLE_RATE)))
    return normalise(np.concatenate(parts))


def _framed(recording: np.ndarray) -> np.ndarray:
    """A recording with 0.3 s of silence before and 0.5 s after (as the synthetic ones have),
    so its stream starts and ends as a talk spurt does: the encoder reaches DTX at the end
    instead of the stream stopping mid-sound."""
    pad = np.zeros(int(0.3 * SAMPLE_RATE))
    return normalise(np.concatenate([pad, recording, pad, pad[: len(pad) * 2 // 3]]))


def speech_set(
    *, quick: bool = False, natural: bool = True, wavs: list[Path] | None = None, seed: int = 1
) -> list[Utterance]:
    """The utterances to run (``wavs`` given: only those)."""
    if wavs:
        return [Utterance(p.stem, _framed(read_wav(p))) for p in wavs]
    items = [
        Utterance(name, synthesize_utterance(voice, sentences, seed * 100 + i))
        for i, (name, voice, sentences) in enumerate(ESPEAK_SET)
        if not quick or name in QUICK
    ]
    if natural and not quick:
        for item in NATURAL:
            path = fetch_natural(item)
            if path is not None:
                items.append(Utterance(item.name, _framed(read_wav(path))))
    return items


def room_noise(samples: int, seed: int, babble: list[np.ndarray]) -> np.ndarray:
    """Recorded-style room noise (float64, unit active level); see the module doc."""
    rng = np.random.default_rng(seed)
    # Ventilation: pink noise (Voss-McCartney approximation by a 3-pole filter) with extra
    # rumble below 200 Hz.
    white = rng.standard_normal(samples)
    pink = lfilter(
        [0.049922035, -0.095993537, 0.050612699, -0.004408786],
        [1, -2.494956002, 2.017265875, -0.522189400],
        white,
    )
    rumble = lfilter([0.02], [1, -0.98], rng.standard_normal(samples))
    noise = pink / pink.std() + 0.5 * rumble / rumble.std()
    # Keyboard: short decaying clicks, ~4 per second in bursts of typing.
    click = np.exp(-np.arange(240) / 30.0) * rng.standard_normal(240)
    t = 0
    while t < samples - 240:
        t += int(rng.exponential(0.25) * SAMPLE_RATE) + 1
        if t < samples - 240 and rng.random() < 0.7:
            noise[t : t + 240] += 6.0 * click * rng.uniform(0.5, 1.0)
    # Babble: other talkers far away, quieter than the room itself.
    if babble:
        mix = np.zeros(samples)
        for k, b in enumerate(babble):
            b = b.astype(np.float64)
            if not len(b):
                continue
            reps = np.tile(b, samples // len(b) + 2)
            start = int(rng.integers(0, len(b)))
            mix += reps[start : start + samples] * (0.6 if k % 2 else 1.0)
        if mix.std() > 0:
            noise += 0.5 * mix / mix.std()
    return noise / max(1e-9, float(noise.std()))


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Speech (int16) plus noise at ``snr_db`` against the active speech level, as int16."""
    noise = noise[: len(speech)]
    scaled = noise * ACTIVE_RMS / (10 ** (snr_db / 20.0))
    return np.clip(speech.astype(np.float64) + scaled, -32768, 32767).astype(np.int16)
