"""``echomesh-bot`` as a person runs it: real processes against a real server on 127.0.0.1,
recordings checked by their spectrum."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import trio

from echomesh_trio.server.app import EchoMeshServer, ServerInfo
from echomesh_trio.server.voice_control import RelayControl
from tests.client.test_client import read_wav, tone_seconds
from tests.server.helpers import make_settings


async def start(nursery: trio.Nursery, data_dir: Path, **changes: object) -> ServerInfo:
    server = EchoMeshServer(make_settings(data_dir, **changes), voice=RelayControl())
    info: ServerInfo = await nursery.start(server.serve)
    return info


async def bot(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    with trio.fail_after(30):
        return await trio.run_process(
            [sys.executable, "-m", "echomesh_trio.client.bot", *args],
            capture_stdout=True, capture_stderr=True, check=False, env=env,
        )  # fmt: skip


def common(info: ServerInfo, user: str, room: str) -> list[str]:
    return ["--server", f"127.0.0.1:{info.port}", "--plaintext", "--user", user,
            "--password", "pw", "--room", room]  # fmt: skip


def lines(data: bytes) -> list[str]:
    return data.decode().strip().splitlines()


async def test_two_bots_talk_and_a_third_in_another_room_hears_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await start(nursery, tmp_path / "data")
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def run(name: str, *args: str) -> None:
        results[name] = await bot(tmp_path, *args)

    async with trio.open_nursery() as bots:
        bots.start_soon(run, "ben", *common(info, "ben", "talk"),
                        "--record", str(tmp_path / "ben.wav"), "--seconds", "5")  # fmt: skip
        bots.start_soon(run, "cat", *common(info, "cat", "other"),
                        "--record", str(tmp_path / "cat.wav"), "--seconds", "5")  # fmt: skip
        await trio.sleep(2.0)  # ben is in the room before ann talks
        bots.start_soon(run, "ann", *common(info, "ann", "talk"), "--play", "tone:440",
                        "--seconds", "2")  # fmt: skip
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr.decode())
    ben_says = lines(results["ben"].stdout)
    assert "ann joined talk" in ben_says
    assert ben_says.index("ann started speaking") < ben_says.index("ann stopped speaking")
    assert any(line.startswith("joined talk") for line in lines(results["ann"].stdout))
    heard = read_wav(tmp_path / "ben.wav")
    assert 1.5 <= tone_seconds(heard, 440.0) <= 2.2  # the tone, for as long as it was sent
    assert np.max(np.abs(read_wav(tmp_path / "cat.wav"))) == 0


async def test_a_file_is_played_to_its_end_and_echoed_back(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await start(nursery, tmp_path / "data")
    t = np.arange(48_000) / 48_000  # one second of 880 Hz
    with wave.open(str(tmp_path / "say.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48_000)
        w.writeframes((np.sin(2 * np.pi * 880 * t) * 8_000).astype("<i2").tobytes())
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def run(name: str, *args: str) -> None:
        results[name] = await bot(tmp_path, *args)

    async with trio.open_nursery() as bots:
        bots.start_soon(run, "echo", *common(info, "echo", "e"), "--echo", "--seconds", "5")
        await trio.sleep(2.0)
        bots.start_soon(run, "ann", *common(info, "ann", "e"), "--play",
                        str(tmp_path / "say.wav"), "--record", str(tmp_path / "ann.wav"),
                        "--seconds", "3")  # fmt: skip
    assert results["ann"].returncode == 0, results["ann"].stderr.decode()
    assert "finished playing" in results["ann"].stdout.decode()
    assert "echo started speaking" in lines(results["ann"].stdout)
    # ann hears her own second of 880 Hz, echoed back by the other bot.
    assert 0.6 <= tone_seconds(read_wav(tmp_path / "ann.wav"), 880.0) <= 1.3

    # Without --seconds the bot leaves when the file ends.
    with trio.fail_after(20):
        alone = await bot(tmp_path, *common(info, "ann", "e"), "--play", str(tmp_path / "say.wav"))
    assert alone.returncode == 0, alone.stderr.decode()
    assert "finished playing" in alone.stdout.decode()


async def test_failures_exit_1_with_one_clear_line(nursery: trio.Nursery, tmp_path: Path) -> None:
    info = await start(nursery, tmp_path / "data")
    first = await bot(tmp_path, *common(info, "ann", "r"), "--seconds", "0.5")
    assert first.returncode == 0, first.stderr.decode()

    wrong = await bot(tmp_path, *common(info, "ann", "r")[:-4], "--password", "nope",
                      "--room", "r", "--seconds", "1")  # fmt: skip
    assert wrong.returncode == 1
    assert lines(wrong.stderr) == ["echomesh-bot: login refused: wrong username or password"]

    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        unused = s.getsockname()[1]
    nobody = await bot(tmp_path, "--server", f"127.0.0.1:{unused}", "--plaintext", "--user",
                       "ann", "--password", "pw", "--room", "r")  # fmt: skip
    assert nobody.returncode == 1
    [line] = lines(nobody.stderr)
    assert line.startswith(f"echomesh-bot: cannot reach 127.0.0.1:{unused}")

    bad = await bot(tmp_path, "--server", "nowhere", "--user", "a", "--password", "b",
                    "--room", "r")  # fmt: skip
    assert bad.returncode == 2 and b"HOST:PORT" in bad.stderr


async def test_tls_pins_on_first_contact_and_refuses_a_changed_certificate(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        info = await start(nursery, tmp_path / "one", plaintext=False)
        args = ["--server", f"127.0.0.1:{info.port}", "--user", "ann", "--password", "pw",
                "--room", "r", "--seconds", "0.5"]  # fmt: skip
        first = await bot(tmp_path, *args)
        assert first.returncode == 0, first.stderr.decode()
        [pinned] = [x for x in lines(first.stdout) if x.startswith("pinned")]
        assert info.fingerprint is not None
        fingerprint = pinned.rsplit(" ", 1)[1]
        again = await bot(tmp_path, *args)
        assert again.returncode == 0 and b"pinned" not in again.stdout  # no question twice
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        other = await start(nursery, tmp_path / "two", plaintext=False, port=info.port)
        refused = await bot(tmp_path, *args)
        assert refused.returncode == 1
        text = refused.stderr.decode()
        assert text.startswith("echomesh-bot: WARNING: THE CERTIFICATE OF 127.0.0.1:")
        assert fingerprint in text and "known_servers.toml" in text
        assert "Traceback" not in text
        # An explicit --fingerprint of the new certificate is the way to accept it.
        new = next(x for x in text.split() if x.startswith("SHA256:") and x != fingerprint)
        accepted = await bot(tmp_path, *args, "--fingerprint", new)
        assert accepted.returncode == 0, accepted.stderr.decode()
        assert other.port == info.port
        nursery.cancel_scope.cancel()


async def test_one_bot_calls_another_that_answers(nursery: trio.Nursery, tmp_path: Path) -> None:
    info = await start(nursery, tmp_path / "data")
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def run(name: str, *args: str) -> None:
        results[name] = await bot(tmp_path, *args)

    async with trio.open_nursery() as bots:
        bots.start_soon(run, "ben", *common(info, "ben", "ben-room"), "--answer",
                        "--record", str(tmp_path / "ben.wav"), "--seconds", "5")  # fmt: skip
        await trio.sleep(2.0)
        bots.start_soon(run, "ann", *common(info, "ann", "ann-room"), "--call", "ben",
                        "--play", "tone:440", "--seconds", "2.5")  # fmt: skip
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr.decode())
    ann_says, ben_says = lines(results["ann"].stdout), lines(results["ben"].stdout)
    assert "calling ben" in ann_says and "call with ben connected" in ann_says
    assert "ann is calling" in ben_says and "call with ann connected" in ben_says
    assert any(x.startswith("call with ann ended (hung up, ") for x in ben_says)
    assert tone_seconds(read_wav(tmp_path / "ben.wav"), 440.0) >= 1.0  # across rooms

    refused = await bot(tmp_path, *common(info, "ann", "ann-room"), "--call", "nobody",
                        "--seconds", "1")  # fmt: skip
    assert refused.returncode == 1
    assert lines(refused.stderr)[0].startswith("echomesh-bot: cannot call nobody:")
