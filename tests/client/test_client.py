"""The client library against a real server on 127.0.0.1: chat, history, direct messages,
voice both ways over UDP and the TCP tunnel, with real libopus and file devices."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import trio

from echomesh_trio.audio.sender import GateMode
from echomesh_trio.client import events as ce
from echomesh_trio.client.core import Client, ClientConfig, open_client
from echomesh_trio.devices import NullInput, NullOutput, ToneInput, WavFileOutput
from echomesh_trio.protocol import events as ev
from echomesh_trio.server.app import EchoMeshServer, ServerInfo
from echomesh_trio.server.voice_control import RelayControl
from tests.server.helpers import make_settings

T = TypeVar("T")


async def start(nursery: trio.Nursery, data_dir: Path) -> ServerInfo:
    server = EchoMeshServer(make_settings(data_dir), voice=RelayControl())
    info: ServerInfo = await nursery.start(server.serve)
    return info


def config(info: ServerInfo, user: str, **kw: Any) -> ClientConfig:
    kw.setdefault("audio_input", NullInput())
    kw.setdefault("audio_output", NullOutput())
    kw.setdefault("noise_suppression", False)  # tones are not noisy rooms
    kw.setdefault("gain_control", False)
    return ClientConfig("127.0.0.1", info.port, user, "pw", plaintext=True, **kw)


@asynccontextmanager
async def online(cfg: ClientConfig) -> AsyncIterator[tuple[Client, list[ce.ClientEvent]]]:
    """A connected client and the list its events are collected into."""
    seen: list[ce.ClientEvent] = []
    async with open_client(cfg) as client, trio.open_nursery() as nursery:

        async def collect() -> None:
            async for event in client.events():
                seen.append(event)

        nursery.start_soon(collect)
        with trio.fail_after(10):
            await client.wait_connected()
        yield client, seen
        nursery.cancel_scope.cancel()


async def wait_for(
    seen: list[ce.ClientEvent], kind: type[T], where: Callable[[T], bool] = lambda e: True
) -> T:
    with trio.fail_after(10):
        while True:
            for event in seen:
                if isinstance(event, kind) and where(event):
                    return event
            await trio.sleep(0.01)


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while True:
            if condition():
                return
            await trio.sleep(0.01)


def of(seen: list[ce.ClientEvent], kind: type[T]) -> list[T]:
    return [e for e in seen if isinstance(e, kind)]


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48_000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)


def tone_seconds(samples: np.ndarray, frequency: float) -> float:
    """Seconds of the recording (in 100 ms windows) whose spectrum peaks at ``frequency``
    with a clearly audible level."""
    window = 4_800
    found = 0
    for start in range(0, len(samples) - window + 1, window):
        segment = samples[start : start + window]
        if np.sqrt(np.mean(segment**2)) < 500:
            continue
        spectrum = np.abs(np.fft.rfft(segment * np.hanning(window)))
        peak = np.argmax(spectrum) * 48_000 / window
        if abs(peak - frequency) <= 20:
            found += 1
    return found * window / 48_000


# ------------------------------------------------------------------------------ chat
async def test_chat_history_and_direct_messages_in_order(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await start(nursery, tmp_path)
    async with (
        online(config(info, "ann", rooms=["lobby"])) as (ann, ann_seen),
        online(config(info, "ben", rooms=["lobby"])) as (ben, ben_seen),
    ):
        assert ann.rooms == ben.rooms == ("lobby",)
        ids = [ann.send_chat("lobby", f"message {i}") for i in range(5)]
        await wait_for(ann_seen, ce.MessageDelivered, lambda e: e.client_msg_id == ids[-1])
        delivered = [e.client_msg_id for e in of(ann_seen, ce.MessageDelivered)]
        assert delivered == ids  # each acknowledged once, in order
        await wait_for(ben_seen, ce.ChatReceived, lambda e: e.message.content == "message 4")
        got = [e.message.content for e in of(ben_seen, ce.ChatReceived)]
        assert got == [f"message {i}" for i in range(5)]
        assert {m.username for m in ann.members("lobby")} == {"ann", "ben"}

        ben.send_direct("ann", "psst")
        direct = await wait_for(ann_seen, ce.DirectReceived)
        assert (direct.message.from_username, direct.message.content) == ("ben", "psst")
        assert not direct.own
        await wait_for(ben_seen, ce.DirectReceived, lambda e: e.own)

        # A newcomer gets the history, marked as such, oldest first, before live chat.
        async with online(config(info, "cat", rooms=["lobby"])) as (_, cat_seen):
            joined = await wait_for(cat_seen, ce.RoomJoined)
            assert {m.username for m in joined.members} == {"ann", "ben", "cat"}
            await wait_for(ann_seen, ev.MemberJoined, lambda e: e.member.username == "cat")
            ann.send_chat("lobby", "welcome")
            await wait_for(cat_seen, ce.ChatReceived, lambda e: e.message.content == "welcome")
            chats = of(cat_seen, ce.ChatReceived)
            assert [(c.message.content, c.history) for c in chats] == [
                *((f"message {i}", True) for i in range(5)),
                ("welcome", False),
            ]
            assert cat_seen.index(joined) < cat_seen.index(chats[0])
        left = await wait_for(ann_seen, ev.MemberLeft)
        assert left.member.username == "cat"


async def test_requests_answer_and_errors_are_raised(nursery: trio.Nursery, tmp_path: Path) -> None:
    info = await start(nursery, tmp_path)
    async with online(config(info, "ann")) as (ann, seen):
        await ann.join("one", create=True)
        await ann.create_room("two")
        assert ann.rooms == ("one", "two") and ann.active_room == "two"
        await ann.set_active_room("one")
        assert ann.active_room == "one"
        listing = await ann.list_rooms()
        assert {(r.room_id, r.member_count) for r in listing} == {("one", 1), ("two", 1)}
        assert [m.username for m in await ann.request_presence()] == ["ann"]
        try:
            await ann.join("nowhere")
        except Exception as exc:
            assert "nowhere" in str(exc)
        else:
            raise AssertionError("joining a missing room must fail")
        await ann.leave("two")
        assert ann.rooms == ("one",)
        await wait_for(seen, ce.RoomLeft, lambda e: e.room_id == "two")
        failed = ann.send_chat("two", "not a member any more")
        refused = await wait_for(seen, ce.MessageFailed)
        assert refused.client_msg_id == failed and refused.code == ev.ErrorCode.NOT_IN_ROOM


# ------------------------------------------------------------------------------ voice
async def test_a_tone_reaches_the_room_and_nobody_else(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await start(nursery, tmp_path)
    ben_wav, cat_wav = tmp_path / "ben.wav", tmp_path / "cat.wav"
    ben_out, cat_out = WavFileOutput(ben_wav), WavFileOutput(cat_wav)
    ann_cfg = config(
        info, "ann", rooms=["talk"], audio_input=ToneInput(440.0),
        transmit_mode=GateMode.PUSH_TO_TALK,
    )  # fmt: skip
    async with (
        online(config(info, "ben", rooms=["talk"], audio_output=ben_out)) as (ben, ben_seen),
        online(config(info, "cat", rooms=["elsewhere"], audio_output=cat_out)) as (_, _),
        online(ann_cfg) as (ann, ann_seen),
    ):
        await wait_for(ben_seen, ev.MemberJoined, lambda e: e.member.username == "ann")
        await trio.sleep(0.3)
        ann.ptt(True)
        start_talk = await wait_for(ben_seen, ce.TalkChanged, lambda e: e.speaking)
        assert start_talk.username == "ann" and ben.speaking == {"ann"}
        await wait_for(ann_seen, ce.TransmitChanged, lambda e: e.transmitting)
        await trio.sleep(1.5)
        ann.ptt(False)
        await wait_for(ben_seen, ce.TalkChanged, lambda e: not e.speaking)
        await wait_for(ann_seen, ce.TransmitChanged, lambda e: not e.transmitting)
        stats = await wait_for(ben_seen, ce.LinkStatistics, lambda e: bool(e.speakers))
        assert stats.transport is ev.VoiceTransport.UDP and stats.udp_rtt_ms is not None
        speaker = next(iter(stats.speakers.values()))
        assert speaker.username == "ann"
        await trio.sleep(0.3)
        assert ben.audio is not None
        jitter = next(iter(ben.audio.receiver.statistics().speakers.values())).jitter
        assert jitter.concealed <= 3, jitter
    ben_out.close()
    cat_out.close()
    heard = read_wav(ben_wav)
    assert 1.3 <= tone_seconds(heard, 440.0) <= 1.9  # as long as the key was held
    assert np.max(np.abs(read_wav(cat_wav))) == 0  # the other room heard nothing


async def test_voice_falls_back_to_the_tcp_tunnel(nursery: trio.Nursery, tmp_path: Path) -> None:
    info = await start(nursery, tmp_path)
    blocked = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await blocked.bind(("127.0.0.1", 0))  # a port where nobody answers: UDP "blocked"
    dead_port = blocked.getsockname()[1]
    ben_wav = tmp_path / "ben.wav"
    ben_out = WavFileOutput(ben_wav)
    ann_cfg = config(
        info, "ann", rooms=["t"], audio_input=ToneInput(660.0),
        transmit_mode=GateMode.CONTINUOUS, udp_port=dead_port,
    )  # fmt: skip
    ben_cfg = config(info, "ben", rooms=["t"], audio_output=ben_out, udp_port=dead_port)
    async with online(ben_cfg) as (_, ben_seen), online(ann_cfg) as (ann, _):
        stats = await wait_for(
            ben_seen,
            ce.LinkStatistics,
            lambda e: e.transport is ev.VoiceTransport.TCP_TUNNEL and bool(e.speakers),
        )
        assert stats.receive_kbps > 5
        assert ann.link is not None and ann.link.transport is ev.VoiceTransport.TCP_TUNNEL
        await trio.sleep(1.0)
    blocked.close()
    ben_out.close()
    assert tone_seconds(read_wav(ben_wav), 660.0) >= 0.8


# ------------------------------------------------------------------------------ sessions
async def test_closing_logs_out_and_a_second_login_takes_the_session_over(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = EchoMeshServer(make_settings(tmp_path, resume_grace=10.0), voice=RelayControl())
    info: ServerInfo = await nursery.start(server.serve)
    async with online(config(info, "ben", rooms=["lobby"])) as (_, ben_seen):
        async with online(config(info, "ann", rooms=["lobby", "quiet"])):
            await wait_for(ben_seen, ev.MemberJoined, lambda e: e.member.username == "ann")
        # Leaving the block logs out: ben sees ann leave now, not after the 10 s grace.
        with trio.fail_after(2):
            await wait_for(ben_seen, ev.MemberLeft, lambda e: e.member.username == "ann")

        async with online(config(info, "ann", rooms=["lobby", "quiet"])) as (first, first_seen):
            await first.set_active_room("lobby")
            joins = len(of(ben_seen, ev.MemberJoined))
            # The same user from another program, which names no rooms: it takes the
            # session over, with its rooms and active room, and ben sees nothing.
            async with online(config(info, "ann")) as (second, second_seen):
                gone = await wait_for(
                    first_seen,
                    ce.ConnectionChanged,
                    lambda e: e.state is ce.ConnectionState.OFFLINE,
                )
                assert "logged in elsewhere" in gone.reason
                await until(lambda: second.rooms == ("lobby", "quiet"))
                assert second.active_room == "lobby"
                second.send_chat("lobby", "still here")
                await wait_for(
                    ben_seen, ce.ChatReceived, lambda e: e.message.content == "still here"
                )
                assert len(of(ben_seen, ev.MemberJoined)) == joins
                assert not [e for e in of(ben_seen, ev.MemberLeft)[1:]]
                assert of(second_seen, ce.RoomJoined)[0].members


async def test_the_sender_follows_the_loss_its_listener_reports(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await start(nursery, tmp_path)
    ann_cfg = config(info, "ann", rooms=["l"], audio_input=ToneInput(440.0),
                     transmit_mode=GateMode.CONTINUOUS)  # fmt: skip
    async with online(config(info, "ben", rooms=["l"])) as (ben, _):
        assert ben.audio is not None
        heard = ben.audio.frame_received
        count = 0

        def lossy(frame: Any) -> None:  # ben's network loses every fifth packet
            nonlocal count
            count += 1
            if count % 5:
                heard(frame)

        ben.audio.frame_received = lossy  # type: ignore[method-assign]
        if ben.link is not None:
            ben.link._on_frame = lossy
        async with online(ann_cfg) as (ann, ann_seen):
            assert ann.audio is not None
            assert ann.audio.sender.statistics().copies == 0  # a clean start
            stats = await wait_for(ann_seen, ce.LinkStatistics, lambda e: e.reported_loss > 0.1)
            assert stats.reported_loss < 0.35
            sent = ann.audio.sender.statistics()
            assert sent.copies >= 1  # redundancy follows the reported loss


# ------------------------------------------------------------------------------ calls
async def test_a_call_carries_voice_between_its_two_parties_only(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await start(nursery, tmp_path)
    ben_wav, cat_wav = tmp_path / "ben.wav", tmp_path / "cat.wav"
    ben_out, cat_out = WavFileOutput(ben_wav), WavFileOutput(cat_wav)
    ann_cfg = config(info, "ann", rooms=["a"], audio_input=ToneInput(520.0),
                     transmit_mode=GateMode.PUSH_TO_TALK)  # fmt: skip
    async with (
        online(config(info, "ben", rooms=["b"], audio_output=ben_out)) as (ben, ben_seen),
        online(config(info, "cat", rooms=["a"], audio_output=cat_out)) as (_, _),
        online(ann_cfg) as (ann, ann_seen),
    ):
        rejected = await ann.place_call("ben")
        assert isinstance(rejected, ev.CallRinging) and ann.call == rejected
        await wait_for(ben_seen, ev.CallRinging)
        ended = await ben.reject_call()
        assert ended.reason is ev.CallEndReason.REJECTED
        await wait_for(ann_seen, ev.CallEnded)
        assert ann.call is None and ben.call is None

        ringing = await ann.place_call("ben")
        incoming = await wait_for(ben_seen, ev.CallRinging, lambda e: e.call_id == ringing.call_id)
        assert incoming.caller.username == "ann" and ben.call == incoming
        connected = await ben.accept_call()
        assert connected.call_id == ringing.call_id
        await wait_for(ann_seen, ev.CallConnected)
        ann.ptt(True)
        talk = await wait_for(ben_seen, ce.TalkChanged, lambda e: e.speaking)
        assert talk.username == "ann"  # known from the call, though in no room with ben
        await trio.sleep(1.0)
        ann.ptt(False)
        await wait_for(ben_seen, ce.TalkChanged, lambda e: not e.speaking)
        over = await ann.hang_up()
        assert over.reason is ev.CallEndReason.HUNG_UP and over.duration_ms >= 1000
        theirs = await wait_for(ben_seen, ev.CallEnded, lambda e: e.call_id == ringing.call_id)
        assert theirs.reason is ev.CallEndReason.HUNG_UP and ben.call is None
        try:
            await ben.hang_up()
        except Exception as exc:
            assert "call" in str(exc).lower()
        else:
            raise AssertionError("there is no call to hang up")
    ben_out.close()
    cat_out.close()
    assert 0.8 <= tone_seconds(read_wav(ben_wav), 520.0) <= 1.3
    assert np.max(np.abs(read_wav(cat_wav))) == 0  # ann's room did not hear the call


async def test_moderation_through_the_library(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = EchoMeshServer(make_settings(tmp_path, admins=("ann",)), voice=RelayControl())
    info: ServerInfo = await nursery.start(server.serve)
    async with (
        online(config(info, "ann", rooms=["mod"])) as (ann, _),
        online(config(info, "ben", rooms=["mod"])) as (ben, ben_seen),
    ):
        done = await ann.kick("ben", "mod", "too loud")
        assert done.kind is ev.ModerationKind.KICK and "ben" in done.message
        told = await wait_for(ben_seen, ev.Moderated)
        assert (told.kind, told.room_id, told.by.username, told.reason) == (
            ev.ModerationKind.KICK, "mod", "ann", "too loud",
        )  # fmt: skip
        await wait_for(ben_seen, ce.RoomLeft, lambda e: e.room_id == "mod")
        assert ben.rooms == ()
        await ann.ban("ben", reason="spam")
        gone = await wait_for(
            ben_seen, ce.ConnectionChanged, lambda e: e.state is ce.ConnectionState.OFFLINE
        )
        assert gone.reason.startswith("banned") and ben.state is ce.ConnectionState.OFFLINE


async def test_the_capture_front_end_is_on_by_default_and_switchable(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await start(nursery, tmp_path)
    cfg = ClientConfig("127.0.0.1", info.port, "ann", "pw", plaintext=True,
                       audio_input=NullInput(), audio_output=NullOutput())  # fmt: skip
    async with online(cfg) as (ann, _):
        assert ann.audio is not None
        front_end = ann.audio.sender.front_end
        assert front_end is not None and front_end.agc
        assert front_end.noise_suppression and ann.audio.front_end_problem == ""
        assert ann.set_noise_suppression(False) is False and not front_end.noise_suppression
        ann.set_gain_control(False)
        assert not front_end.agc
        assert ann.set_noise_suppression(True) is True
