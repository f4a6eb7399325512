"""The pure parts: slash commands and completion, the model, the coalescer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echomesh_trio.client import events as ce
from echomesh_trio.protocol import events as ev
from tui_client import commands as cmd
from tui_client.model import Model
from tui_client.session import STATE_EVERY_S, Coalescer


def test_commands_parse() -> None:
    assert cmd.parse("hello") == cmd.Say("hello")
    assert cmd.parse("//not a command") == cmd.Say("/not a command")
    assert cmd.parse("/me waves at bob") == cmd.Say("waves at bob", action=True)
    assert cmd.parse("/msg bob hi there") == cmd.Command("msg", ("bob", "hi there"))
    assert cmd.parse("/JOIN lobby") == cmd.Command("join", ("lobby",))
    assert cmd.parse("/leave") == cmd.Command("leave")
    assert cmd.parse("/volume bob 0.5") == cmd.Command("volume", ("bob", "0.5"))
    assert cmd.parse("/vad -35") == cmd.Command("vad", ("-35",))
    for bad in ("/join", "/join a b", "/msg bob", "/volume bob loud", "/volume bob 9",
                "/vad loud", "/nope", "/me"):  # fmt: skip
        with pytest.raises(cmd.CommandError):
            cmd.parse(bad)


@given(st.text())
def test_any_line_parses_or_says_why(line: str) -> None:
    try:
        cmd.parse(line)
    except cmd.CommandError as exc:
        assert str(exc)


def test_only_sound_cards_are_microphones() -> None:
    from tui_client.audio import is_microphone, spec_of

    assert spec_of("speech.WAV") == "file:speech.WAV"
    for spec in ("null", "tone", "tone:440", "file:a.wav", "a.wav"):
        assert not is_microphone(spec), spec
    for spec in ("default", "3", "USB Headset"):
        assert is_microphone(spec), spec


def test_completion() -> None:
    rooms, users = ["lobby", "library", "ops"], ["bob", "bea", "carol"]
    assert cmd.complete("/jo", rooms, users) == ["/join "]
    assert cmd.complete("/join li", rooms, users) == ["/join library "]
    assert cmd.complete("/join l", rooms, users) == ["/join lobby ", "/join library "]
    assert cmd.complete("/msg b", rooms, users) == ["/msg bob ", "/msg bea "]
    assert cmd.complete("/volume c", rooms, users) == ["/volume carol "]
    assert cmd.complete("hi @ca", rooms, users) == ["hi @carol "]
    assert cmd.complete("/msg bob hel", rooms, users) == []
    assert cmd.complete("plain", rooms, users) == []


def member(name: str, uid: int) -> ev.Member:
    return ev.Member(uid, name, uid)


def chat(room: str, who: str, text: str, mid: int, **kw: bool) -> ce.ChatReceived:
    return ce.ChatReceived(ev.ChatMessage(mid, room, 1, who, text, 1_000 * mid), **kw)


def test_model_rooms_unread_typing_and_talk() -> None:
    m = Model("alice")
    m.apply(ce.RoomJoined("lobby", (member("alice", 1), member("bob", 2))))
    m.apply(ce.RoomJoined("side", (member("alice", 1),)))
    assert m.current == "lobby" and m.rooms == ["lobby", "side"]
    m.apply(chat("side", "carol", "hi", 1))
    m.apply(chat("side", "carol", "old", 2, history=True))
    m.apply(chat("lobby", "bob", "here", 3))
    assert m.conversations["side"].unread == 1  # history does not count
    assert m.conversations["lobby"].unread == 0  # it is on screen
    m.select("side")
    assert m.conversations["side"].unread == 0
    m.apply(ev.TypingNotice("lobby", 2, "bob", True), now=10.0)
    assert m.typing_in("lobby", now=11.0) == ["bob"]
    assert m.typing_in("lobby", now=30.0) == []  # a notice that is never renewed expires
    m.apply(ce.TalkChanged(2, 2, "bob", True))
    assert m.speaking == {"bob"}
    m.apply(ce.TalkChanged(2, 2, "bob", False))
    assert m.speaking == set()
    m.apply(ev.MemberLeft("lobby", member("bob", 2)))
    assert list(m.conversations["lobby"].members) == ["alice"]
    m.apply(ce.RoomLeft("side"))
    assert m.current == "lobby"
    m.apply(ce.DirectReceived(ev.DirectMessage(9, 3, "carol", 1, "psst", 9_000)))
    assert m.directs == ["@carol"] and m.conversations["@carol"].unread == 1
    assert m.known_users() == ["carol"]


def test_coalescer_keeps_the_newest_and_paces_batches() -> None:
    c = Coalescer()
    assert c.due() < 0  # the first batch goes at once
    c.offer("level", ce.InputLevel(-50, False))
    c.offer("level", ce.InputLevel(-20, True))
    c.offer("talk", ce.TalkChanged(1, 1, "bob", True))
    assert c.take(now=5.0) == [ce.InputLevel(-20, True), ce.TalkChanged(1, 1, "bob", True)]
    assert not c
    assert c.due() == pytest.approx(5.0 + STATE_EVERY_S)
