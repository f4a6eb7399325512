"""The voice-bot example against a real ``echomesh-serve --plaintext``: two copies hear
each other's tones."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

from tests.examples.test_chat_client import ROOT, server_port

__all__ = ["server_port"]

SCRIPT = ROOT / "examples" / "voice_bot.py"


def test_two_example_bots_hear_each_other(server_port: int, tmp_path: Path) -> None:
    def start(user: str, tone: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, str(SCRIPT), "--port", str(server_port), "--user", user,
               "--password", "pw", "--room", "duet", "--tone", tone, "--seconds", "4",
               "--record", str(tmp_path / f"{user}.wav")]  # fmt: skip
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip

    ann, ben = start("ann", "440"), start("ben", "660")
    ann_out, ann_err = ann.communicate(timeout=60)
    ben_out, ben_err = ben.communicate(timeout=60)
    assert ann.returncode == 0 and ben.returncode == 0, ann_err + ben_err
    assert "ben speaks" in ann_out and "ann speaks" in ben_out
    for user, other_tone in (("ann", 660), ("ben", 440)):
        with wave.open(str(tmp_path / f"{user}.wav")) as w:
            heard = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float)
        loud = heard[np.abs(heard) > 0]
        assert len(loud) > 48_000  # more than a second of the other's voice
        spectrum = np.abs(np.fft.rfft(heard))
        assert abs(np.argmax(spectrum) * 48_000 / len(heard) - other_tone) < 5
