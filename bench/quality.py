"""Voice-quality benchmark: speech through Opus, a simulated network, the jitter buffer, decode.

    python -m bench.quality [--profiles clean,wifi] [--seed 1] [--seconds 90] [--wav f.wav]

For each seeded network profile (bench/netsim.py) the same packet trace feeds EchoMesh's
playout and a naive receiver like the original EchoMesh one. Both outputs are put back on the
sender's media timeline (frame n where frame n belongs) and compared with the input: wideband
PESQ, STOI, late loss, added delay (play time minus send time minus the fastest transit), and
the oracle: the smallest fixed playout delay that reaches the same late loss on the same trace.
Progress goes to stderr; the last stdout line is one JSON object keyed by profile.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.netsim import PROFILES, Profile, simulate
from bench.quality_set import Utterance, add_noise, room_noise, speech_set
from bench.quality_signal import pesq_wb, stoi
from echomesh_trio.audio.codec import OpusDecoder, OpusEncoder
from echomesh_trio.audio.frontend import FrontEnd
from echomesh_trio.audio.jitter import Conceal, Decision, Play, Recover
from echomesh_trio.audio.pcm import Pcm
from echomesh_trio.audio.playout import SpeakerPlayout
from echomesh_trio.audio.redundancy import MAX_DEPTH
from echomesh_trio.audio.sender import SEQ_MOD, GateMode, VoicePacket, VoiceSender
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE

BLOCK = SAMPLE_RATE // 200
"""The simulated output device pulls 5 ms blocks, a common low-latency PortAudio setting."""

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
SEQ_START = SEQ_MOD - 500
"""Sequence numbers start near the top so every run crosses the 32-bit wrap."""

NAIVE_CAPACITY = 10

WARMUP_S = 8.0
"""Speech sent before each utterance and not scored (see :func:`run_profile`)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class NaiveReceiver:
    """The original EchoMesh receiver: a priority queue by sequence number, no concealment.

    Plays the lowest sequence number on each 20 ms tick when it is the expected one, silence
    for a gap, waits when empty, drops the oldest packet when full. Jumps over gaps longer
    than 5 frames (a pause in speech) so that pauses do not add delay.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, bytes]] = []
        self._expected: int | None = None
        self._decoder = OpusDecoder()
        self.late = 0
        self.received = 0

    def push(self, k: int, payload: bytes) -> None:
        self.received += 1
        if self._expected is not None and k < self._expected:
            self.late += 1
            return
        if any(k == s for s, _ in self._heap):
            self.received -= 1  # duplicate: not a genuine packet
            return
        heapq.heappush(self._heap, (k, payload))
        if len(self._heap) > NAIVE_CAPACITY:
            heapq.heappop(self._heap)
            self.late += 1

    def tick(self) -> tuple[int, Pcm] | None:
        """Return (frame, pcm) to play, or None for silence."""
        if not self._heap:
            return None
        k, payload = self._heap[0]
        if self._expected is None or k - self._expected > 5:
            self._expected = k
        if k == self._expected:
            heapq.heappop(self._heap)
            self._expected += 1
            return k, self._decoder.decode(payload)
        self._expected += 1
        return None


@dataclass
class Outcome:
    """One receiver's result on one trace."""

    media: np.ndarray
    delays: list[float] = field(default_factory=list)
    late: int = 0
    useful: int = 0


def run_profile(
    profile: Profile,
    speech: np.ndarray,
    seed: int,
    *,
    bitrate: int,
    redundancy: int,
    reference: np.ndarray | None = None,
    front_end: FrontEnd | None = None,
    warmup_s: float = WARMUP_S,
) -> dict[str, float | int | None]:
    """Simulate one profile end to end and score both receivers.

    ``reference``: what the output is compared with (default: ``speech`` itself; the clean
    speech when ``speech`` has noise added). ``front_end``: the sender's capture front end.
    The first ``warmup_s`` of the utterance is sent once before it and not scored: the
    utterance is spoken in a call that is already running, so the receiver's loss report,
    the sender's redundancy, the delay estimate and the front end have had time to settle.
    """
    clean = speech if reference is None else reference
    warm = min(len(speech), int(warmup_s * SAMPLE_RATE)) // FRAME_SAMPLES * FRAME_SAMPLES
    speech = np.concatenate([speech[:warm], speech])
    clean = np.concatenate([clean[:warm], clean])
    offset = warm // FRAME_SAMPLES
    frames = len(speech) // FRAME_SAMPLES
    send_times = (np.arange(frames) + 1) * FRAME_S  # a frame leaves when it is complete
    deliveries = simulate(profile, send_times, seed)
    by_index: dict[int, list[float]] = {}
    for d in deliveries:
        by_index.setdefault(d.index, []).append(d.arrival)
    # Continuous transmission: the speech has pauses, so DTX (not a gate) decides what is
    # sent; the sender's rules are echomesh_trio/audio/sender.py's.
    sender = VoiceSender(
        mode=GateMode.CONTINUOUS,
        bitrate=bitrate,
        max_redundancy=redundancy,
        first_sequence=SEQ_START,
        front_end=front_end,
    )
    ours = Outcome(np.zeros(frames * FRAME_SAMPLES, dtype=np.int16))
    naive = Outcome(np.zeros(frames * FRAME_SAMPLES, dtype=np.int16))

    def frame_of(seq: int) -> int:
        return (seq - SEQ_START) % SEQ_MOD

    def on_decision(decision: Decision, pcm: Pcm, at: float) -> None:
        if isinstance(decision, Play | Recover | Conceal) and decision.seq is not None:
            k = frame_of(decision.seq)
            if 0 <= k < frames and pcm.shape[0] == FRAME_SAMPLES:
                ours.media[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES] = pcm
            if isinstance(decision, Play) and k >= offset:
                ours.delays.append(at - send_times[k])

    playout = SpeakerPlayout(on_decision=on_decision)
    receiver = NaiveReceiver()
    arrivals: list[tuple[float, int, VoicePacket]] = []
    sent = np.zeros(frames, dtype=bool)
    next_frame = 0
    blocks = int((frames * FRAME_S + 1.0) * SAMPLE_RATE / BLOCK)
    sender_cpu = 0.0
    at_offset = playout.statistics().jitter
    naive_at_offset = (0, 0)
    bytes_at_offset = 0
    for b in range(blocks):
        now = b * BLOCK / SAMPLE_RATE
        while next_frame < frames and send_times[next_frame] <= now + 1e-9:
            k = next_frame
            if k == offset:  # the scored part starts: count from here
                at_offset = playout.statistics().jitter
                naive_at_offset = (receiver.late, receiver.received)
                bytes_at_offset = sender.statistics().payload_bytes
            pcm = speech[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]
            t0 = time.process_time()
            packet = sender.process(pcm)
            sender_cpu += time.process_time() - t0
            if packet is not None:
                sent[k] = True
                for at in by_index.get(k, ()):
                    heapq.heappush(arrivals, (at, k, packet))
            next_frame += 1
        while arrivals and arrivals[0][0] <= now:
            at, k, packet = heapq.heappop(arrivals)
            playout.push(
                packet.sequence,
                packet.frame,
                at,
                redundant=packet.redundant,
                end_of_spurt=packet.end_of_spurt,
            )
            receiver.push(k, packet.frame)
        playout.pull(BLOCK, now)
        if b % (FRAME_SAMPLES // BLOCK) == 0:
            played = receiver.tick()
            if played is not None:
                k, pcm = played
                naive.media[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES] = pcm
                if k >= offset:
                    naive.delays.append(now - send_times[k])
        if b % 200 == 0:
            # The receiver reports its loss once a second (RTCP-like); the sender sets its
            # redundancy and in-band FEC from it (VoiceSender.set_reported_loss).
            sender.set_reported_loss(playout.statistics().jitter.loss_estimate)

    end = playout.statistics().jitter

    def since(name: str) -> int:
        return int(getattr(end, name)) - int(getattr(at_offset, name))

    ours.late = since("late")
    ours.useful = since("received") - since("duplicates") - since("dropped")
    naive.late = receiver.late - naive_at_offset[0]
    naive.useful = receiver.received - naive_at_offset[1]

    # Fastest transit of the trace, and each delivered packet's delay above it.
    first = {i: min(v) for i, v in by_index.items() if sent[i] and i >= offset}
    transit = np.array([first[i] - send_times[i] for i in sorted(first)])
    fastest = float(transit.min()) if len(transit) else 0.0
    excess = np.sort(transit - fastest)

    def oracle(late_rate: float) -> float:
        """Smallest fixed delay above the fastest transit with at most this late loss."""
        if not len(excess):
            return 0.0
        allowed = int(np.floor(late_rate * len(excess) + 1e-9))
        return float(excess[max(0, len(excess) - 1 - allowed)])

    lookahead = sender.encoder.lookahead + (front_end.delay_samples if front_end else 0)
    ref = clean[warm : frames * FRAME_SAMPLES - lookahead]

    def score(o: Outcome, prefix: str) -> dict[str, float | int | None]:
        deg = o.media[warm + lookahead :]
        added = np.array(o.delays) - fastest
        late = o.late / o.useful if o.useful else 0.0
        return {
            f"{prefix}pesq": round(pesq_wb(ref, deg), 3),
            f"{prefix}stoi": round(stoi(ref, deg), 3),
            f"{prefix}late_loss": round(late, 4),
            f"{prefix}mean_delay_ms": round(float(added.mean()) * 1000, 1) if len(added) else 0.0,
            f"{prefix}p95_delay_ms": round(float(np.percentile(added, 95)) * 1000, 1)
            if len(added)
            else 0.0,
            f"{prefix}oracle_delay_ms": round(oracle(late) * 1000, 1),
        }

    result = score(ours, "") | score(naive, "naive_")
    oracle_ms = result["oracle_delay_ms"]
    result["delay_ratio"] = (
        round(float(result["mean_delay_ms"] or 0) / oracle_ms, 3)
        if isinstance(oracle_ms, float) and oracle_ms > 0
        else None
    )
    result |= {
        "network_loss": round(1.0 - len(first) / max(1, int(sent[offset:].sum())), 4),
        "packets": int(sent[offset:].sum()),
        "kbps": round(
            (sender.statistics().payload_bytes - bytes_at_offset)
            * 8
            / ((frames - offset) * FRAME_S)
            / 1000,
            1,
        ),
        "recovered": since("recovered"),
        "concealed": since("concealed"),
        "stretched": since("stretched"),
        "duplicates": since("duplicates"),
        "final_target_ms": round(end.target_delay * 1000, 1),
        "sender_us_per_frame": round(sender_cpu / frames * 1e6, 1),
    }
    return result


def codec_cost(speech: np.ndarray, bitrate: int, repeats: int = 5) -> float:
    """Median CPU microseconds to encode and decode one 20 ms frame of speech."""
    frames = min(500, len(speech) // FRAME_SAMPLES)
    runs = []
    for _ in range(repeats):
        enc, dec = OpusEncoder(bitrate), OpusDecoder()
        enc.set_reported_loss(0.05)  # FEC on: the costlier case
        t0 = time.process_time()
        for k in range(frames):
            dec.decode(enc.encode(speech[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]))
        runs.append((time.process_time() - t0) / frames * 1e6)
    return float(np.median(runs))


def front_end_cost(speech: np.ndarray, repeats: int = 5) -> float:
    """Median CPU microseconds of the front end (RNNoise + AGC) per 20 ms frame."""
    frames = min(500, len(speech) // FRAME_SAMPLES)
    runs = []
    for _ in range(repeats):
        fe = FrontEnd()
        t0 = time.process_time()
        for k in range(frames):
            fe.process(speech[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES])
        runs.append((time.process_time() - t0) / frames * 1e6)
    return float(np.median(runs))


Figures = dict[str, float | int | None]


def _num(v: float | int | None) -> float:
    return float(v) if v is not None else float("nan")


def worst_case(per: dict[str, Figures]) -> dict[str, object]:
    """A profile's figures across the set: each the worst utterance's (see the module doc)."""
    names = list(per)
    low = min(names, key=lambda n: _num(per[n]["pesq"]))
    late = max(names, key=lambda n: _num(per[n]["late_loss"]))
    ratios = [n for n in names if per[n]["delay_ratio"] is not None]
    slow = max(ratios, key=lambda n: _num(per[n]["delay_ratio"])) if ratios else None
    margin = min(names, key=lambda n: _num(per[n]["pesq"]) - _num(per[n]["naive_pesq"]))
    out: dict[str, object] = {
        "pesq": per[low]["pesq"],
        "naive_pesq": per[low]["naive_pesq"],
        "pesq_utterance": low,
        "pesq_minus_naive": round(_num(per[margin]["pesq"]) - _num(per[margin]["naive_pesq"]), 3),
        "pesq_minus_naive_utterance": margin,
        "stoi": min(_num(f["stoi"]) for f in per.values()),
        "late_loss": per[late]["late_loss"],
        "late_loss_utterance": late,
        "delay_ratio": per[slow]["delay_ratio"] if slow else None,
        "mean_delay_ms": per[slow or low]["mean_delay_ms"],
        "oracle_delay_ms": per[slow or low]["oracle_delay_ms"],
        "delay_utterance": slow or low,
        "max_mean_delay_ms": max(_num(f["mean_delay_ms"]) for f in per.values()),
        "max_delay_above_oracle_ms": round(
            max(_num(f["mean_delay_ms"]) - _num(f["oracle_delay_ms"]) for f in per.values()), 1
        ),
        "concealed": max(int(_num(f["concealed"])) for f in per.values()),
        "kbps": round(float(np.mean([_num(f["kbps"]) for f in per.values()])), 1),
        "max_kbps": max(_num(f["kbps"]) for f in per.values()),
    }
    out["utterances"] = per
    return out


def noise_condition(
    utterances: list[Utterance], snr_db: float | None, seed: int, *, bitrate: int
) -> dict[str, object]:
    """Speech in room noise over a clean network, scored against the clean speech, with and
    without the front end (``snr_db`` None: clean speech, to show what the front end costs)."""
    per: dict[str, Figures] = {}
    for i, u in enumerate(utterances):
        babble = [o.speech for o in utterances if o.name != u.name][:4]
        if snr_db is None:
            noisy = u.speech
        else:
            noisy = add_noise(u.speech, room_noise(len(u.speech), seed + i, babble), snr_db)
        row: Figures = {}
        for suffix, fe in (("", FrontEnd()), ("_off", None)):
            r = run_profile(
                PROFILES["clean"],
                noisy,
                seed + i,
                bitrate=bitrate,
                redundancy=0,
                reference=u.speech,
                front_end=fe,
            )
            row[f"pesq{suffix}"] = r["pesq"]
            row[f"stoi{suffix}"] = r["stoi"]
            row[f"kbps{suffix}"] = r["kbps"]
        per[u.name] = row
    low = min(per, key=lambda n: _num(per[n]["pesq"]))
    low_off = min(per, key=lambda n: _num(per[n]["pesq_off"]))
    return {
        "pesq": per[low]["pesq"],
        "pesq_off": per[low_off]["pesq_off"],
        "pesq_utterance": low,
        "pesq_off_utterance": low_off,
        "median_pesq": round(float(np.median([_num(f["pesq"]) for f in per.values()])), 3),
        "median_pesq_off": round(float(np.median([_num(f["pesq_off"]) for f in per.values()])), 3),
        "stoi": min(_num(f["stoi"]) for f in per.values()),
        "stoi_off": min(_num(f["stoi_off"]) for f in per.values()),
        "utterances": per,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--wav", type=Path, action="append", help="run this file instead of the set (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="four hard voices, no download")
    parser.add_argument("--no-natural", action="store_true", help="skip fetched recordings")
    parser.add_argument("--no-noise", action="store_true", help="skip the speech-in-noise runs")
    parser.add_argument("--bitrate", type=int, default=32_000)
    parser.add_argument(
        "--redundancy",
        type=int,
        default=MAX_DEPTH,
        help="most previous frames per packet the sender may attach (0: FEC only)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.profiles.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        parser.error(f"unknown profiles {unknown}; known: {', '.join(PROFILES)}")
    utterances = speech_set(
        quick=args.quick, natural=not args.no_natural, wavs=args.wav, seed=args.seed
    )
    total = sum(len(u.speech) for u in utterances) / SAMPLE_RATE
    log(f"{len(utterances)} utterances, {total:.0f} s of speech")
    joined = np.concatenate([u.speech for u in utterances])
    cost = codec_cost(joined, args.bitrate)
    fe_cost = front_end_cost(joined)
    log(f"codec cost: {cost:.0f} us per frame (encode + decode); front end {fe_cost:.0f} us")
    cpu = {
        "codec_us_per_frame": round(cost, 1),
        "front_end_us_per_frame": round(fe_cost, 1),
    }
    results: dict[str, object] = {}
    for name in names:
        t0 = time.monotonic()
        per: dict[str, Figures] = {}
        for i, u in enumerate(utterances):
            per[u.name] = run_profile(
                PROFILES[name],
                u.speech,
                args.seed * 1000 + list(PROFILES).index(name) + 10 * i,
                bitrate=args.bitrate,
                redundancy=args.redundancy,
            )
        w = worst_case(per)
        results[name] = w | cpu
        log(
            f"{name:8} min pesq {w['pesq']} (naive {w['naive_pesq']}, {w['pesq_utterance']}) "
            f"worst vs naive {w['pesq_minus_naive']:+} ({w['pesq_minus_naive_utterance']}) "
            f"late {_num(w['late_loss']):.2%} ratio {w['delay_ratio']} "  # type: ignore[arg-type]
            f"delay-oracle {w['max_delay_above_oracle_ms']} ms concealed {w['concealed']} "
            f"kbit/s {w['kbps']}  [{time.monotonic() - t0:.1f} s]"
        )
    if not args.no_noise:
        for label, snr in (("noise20", 20.0), ("noise10", 10.0), ("front_end_clean", None)):
            t0 = time.monotonic()
            r = noise_condition(utterances, snr, args.seed * 7919, bitrate=args.bitrate)
            results[label] = r | cpu
            log(
                f"{label:8} min pesq {r['pesq']} with front end, {r['pesq_off']} without; "
                f"median {r['median_pesq']} / {r['median_pesq_off']}; "
                f"min stoi {r['stoi']:.3f} / {r['stoi_off']:.3f}  [{time.monotonic() - t0:.1f} s]"
            )
    print(
        "legend: pesq = wideband PESQ (MOS-LQO, 1-4.5) of the worst utterance; naive = a"
        " receiver like the original EchoMesh one; late = frames that missed playout; ratio ="
        " mean added delay / the oracle's; delay-oracle in ms; kbit/s = what the sender sent"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
