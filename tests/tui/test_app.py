"""The real app, driven with Pilot, against a real server on 127.0.0.1 (a child process)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from echomesh_trio.client.events import ConnectionState as CS
from tests.tui.conftest import Server
from tests.tui.helpers import (
    AppThread,
    Bot,
    lit,
    log_text,
    members_shown,
    scripted,
    submit,
    until,
)
from tui_client.widgets.rooms import RoomList
from tui_client.widgets.status import Banner
from tui_client.widgets.talk import OnAir

SIZE = (120, 36)


def connected(app: object) -> bool:
    return app.model.state is CS.CONNECTED  # type: ignore[attr-defined]


def test_two_clients_chat_members_typing_and_direct_messages(
    server: Server, tmp_path: Path
) -> None:
    alice = scripted(server.port, "alice", tmp_path)
    bob = scripted(server.port, "bob", tmp_path)

    async def body() -> None:
        async with alice.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "lobby" in alice.model.conversations, "alice in lobby")
            assert members_shown(alice) == ["alice"]
            await submit(pilot, "before you came")
            await until(pilot, lambda: any(x.endswith("alice: before you came")
                                           for x in log_text(alice)), "said")  # fmt: skip
            with AppThread(bob) as other:
                # the history on join
                await other.until(
                    lambda: any(x.endswith("alice: before you came") for x in log_text(bob)),
                    "the history at bob",
                )
                # joining updates the member list of those already there
                await until(pilot, lambda: members_shown(alice) == ["alice", "bob"],
                            "bob listed in alice's lobby")  # fmt: skip
                await other.until(lambda: members_shown(bob) == ["alice", "bob"],
                                  "both listed in bob's lobby")  # fmt: skip
                # a message typed in one appears in the other's log
                await submit(pilot, "hello bob")
                await other.until(
                    lambda: any(x.endswith("alice: hello bob") for x in log_text(bob)),
                    "alice's line at bob",
                )
                assert any(line.endswith("alice: hello bob") for line in log_text(alice))
                # ... with a timestamp
                line = next(x for x in log_text(bob) if x.endswith("alice: hello bob"))
                assert line[2] == ":" and line[:2].isdigit()
                # typing shows at the other end
                other.call(lambda: setattr(bob.screen.query_one("#input"), "value", "typ"))
                await until(pilot, lambda: "bob is typing" in str(
                    alice.screen.query_one("#typing").render()), "bob is typing…")  # fmt: skip
                other.call(lambda: submit(other.pilot, "/me waves"))  # type: ignore[arg-type]
                await until(pilot, lambda: "* bob waves" in " ".join(log_text(alice)), "/me")
                await until(pilot, lambda: "bob is typing" not in str(
                    alice.screen.query_one("#typing").render()), "typing ends")  # fmt: skip
                # a direct message: its own conversation, with an unread marker
                other.call(lambda: submit(other.pilot, "/msg alice psst"))  # type: ignore[arg-type]
                await until(pilot, lambda: "@bob" in alice.model.conversations, "a DM")
                assert alice.model.conversations["@bob"].unread == 1
                rooms = alice.screen.query_one(RoomList)
                await until(
                    pilot,
                    lambda: any("@bob •1" in str(o.prompt) for o in rooms.options),
                    "unread marker",
                )
                await pilot.press("ctrl+n")  # to the next conversation: the DM
                assert alice.model.current == "@bob"
                assert alice.model.conversations["@bob"].unread == 0
                assert any(line.endswith("bob: psst") for line in log_text(alice))
                await submit(pilot, "/join lobby")  # already in: back to it
                assert alice.model.current == "lobby"
                # several rooms: bob joins another, leaves the lobby; alice sees him go
                other.call(lambda: submit(other.pilot, "/join side"))  # type: ignore[arg-type]
                await other.until(lambda: "side" in bob.model.conversations, "bob in side")
                other.call(lambda: submit(other.pilot, "/leave lobby"))  # type: ignore[arg-type]
                await until(pilot, lambda: members_shown(alice) == ["alice"], "bob left")
                assert other.call(lambda: list(bob.model.rooms)) == ["side"]

    asyncio.run(body())


def test_talk_indicator_lights_while_a_bot_talks(server: Server, tmp_path: Path) -> None:
    alice = scripted(server.port, "alice", tmp_path)

    async def body() -> None:
        async with alice.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: connected(alice) and "lobby" in alice.model.rooms,
                        "alice in lobby")  # fmt: skip
            bot = Bot(server.port, "talker", "lobby", "--play", "tone:440", "--seconds", "3")
            try:
                await until(pilot, lambda: "talker" in members_shown(alice), "the bot joined")
                await until(pilot, lambda: "talker" in lit(alice), "talker lights up")
                await until(pilot, lambda: "talker" not in lit(alice), "talker goes dark",
                            budget=30)  # fmt: skip
                assert bot.proc.wait(20) == 0
            finally:
                bot.stop()

    asyncio.run(body())


def test_ptt_switches_transmission(server: Server, tmp_path: Path) -> None:
    alice = scripted(server.port, "alice", tmp_path, audio_input="tone:440")

    async def body() -> None:
        bot = Bot(server.port, "ear", "lobby")  # listens, and says who speaks
        try:
            async with alice.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: connected(alice) and bot.said("joined lobby"),
                            "both in lobby")  # fmt: skip
                on_air = alice.screen.query_one(OnAir)
                assert not on_air.has_class("on-air") and not alice.model.transmitting
                await submit(pilot, "/ptt")
                await until(pilot, lambda: alice.model.transmitting, "transmitting")
                await until(pilot, lambda: on_air.has_class("on-air"), "ON AIR shows")
                assert "alice" in lit(alice)  # "you" light up too
                await until(pilot, lambda: bot.said("alice started speaking"), "heard")
                await pilot.press("f2")  # the same toggle, from the keyboard
                await until(pilot, lambda: not alice.model.transmitting, "off air")
                await until(pilot, lambda: not on_air.has_class("on-air"), "ON AIR gone")
                await until(pilot, lambda: bot.said("alice stopped speaking"), "silence heard")
        finally:
            bot.stop()

    asyncio.run(body())


def test_the_control_socket_holds_to_talk(server: Server, tmp_path: Path) -> None:
    sock = tmp_path / "ptt.sock"
    alice = scripted(server.port, "alice", tmp_path, audio_input="tone:440", ptt_socket=sock)

    async def body() -> None:
        async with alice.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: connected(alice) and sock.exists(), "socket served")
            _, writer = await asyncio.open_unix_connection(str(sock))
            writer.write(b"down\n")
            await writer.drain()
            await until(pilot, lambda: alice.model.transmitting, "held: transmitting")
            assert alice.screen.query_one(OnAir).has_class("on-air")
            writer.close()  # a hotkey helper that dies while holding releases the mic
            await until(pilot, lambda: not alice.model.transmitting, "released")
            _, writer = await asyncio.open_unix_connection(str(sock))
            writer.write(b"toggle\n")
            await writer.drain()
            writer.close()
            await until(pilot, lambda: alice.model.transmitting, "toggled on (latched)")
            await submit(pilot, "/ptt")  # the keyboard's toggle agrees with the socket's
            await until(pilot, lambda: not alice.model.transmitting, "toggled off")
        assert not sock.exists()  # removed when the app ends

    asyncio.run(body())


def test_reconnect_banner_appears_and_clears(server: Server, tmp_path: Path) -> None:
    alice = scripted(server.port, "alice", tmp_path)

    async def body() -> None:
        async with alice.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: connected(alice) and "lobby" in alice.model.rooms,
                        "alice in lobby")  # fmt: skip
            banner = alice.screen.query_one(Banner)
            assert not banner.display
            server.stop()
            await until(pilot, lambda: banner.display and "Reconnecting" in banner.text,
                        "the reconnect banner")  # fmt: skip
            assert "Connection lost" in banner.text
            server.start()
            await until(pilot, lambda: connected(alice) and not banner.display,
                        "banner cleared", budget=40)  # fmt: skip
            await submit(pilot, "back again")
            await until(
                pilot,
                lambda: any(x.endswith("alice: back again") for x in log_text(alice)),
                "chat after restart",
            )

    asyncio.run(body())
