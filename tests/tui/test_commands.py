"""Slash commands, talk modes and devices in the running app (one real server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from echomesh_trio.audio.sender import GateMode
from echomesh_trio.client.events import ConnectionState as CS
from tests.tui.conftest import Server
from tests.tui.helpers import log_text, scripted, submit, until
from tui_client.screens.devices import DevicesScreen
from tui_client.widgets.talk import LevelMeter, OnAir

SIZE = (120, 36)


def test_no_sound_card_runs_on_null_devices_and_says_so_once(
    server: Server, tmp_path: Path
) -> None:
    app = scripted(server.port, "nina", tmp_path, audio_input="default")
    app.launch = type(app.launch)(**{**app.launch.__dict__, "audio_output": "default"})

    async def body() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.model.state is CS.CONNECTED, "connected")
            await until(pilot, lambda: any("No sound card" in x for x in log_text(app)),
                        "the note")  # fmt: skip
            assert sum("No sound card" in x for x in log_text(app)) == 1

    asyncio.run(body())


def test_talk_modes_mute_deafen_volume_and_help(server: Server, tmp_path: Path) -> None:
    app = scripted(server.port, "olga", tmp_path, audio_input="tone:440")

    async def body() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.model.state is CS.CONNECTED, "connected")
            on_air = app.screen.query_one(OnAir)
            await submit(pilot, "/continuous")
            assert app.mode is GateMode.CONTINUOUS
            await until(pilot, lambda: app.model.transmitting, "continuous transmits")
            await submit(pilot, "/mute")
            await until(pilot, lambda: app.model.muted and not app.model.transmitting, "muted")
            await until(pilot, lambda: "muted" in str(on_air.render()), "muted shown")
            await submit(pilot, "/mute")
            await until(pilot, lambda: app.model.transmitting, "unmuted")
            await submit(pilot, "/deafen")
            await until(pilot, lambda: app.model.deafened and not app.model.transmitting,
                        "deafened (and so muted)")  # fmt: skip
            await submit(pilot, "/deafen")
            await until(pilot, lambda: app.model.transmitting, "undeafened")
            # voice activation: a threshold above the tone's level closes the gate
            await submit(pilot, "/vad -3")
            assert app.mode is GateMode.VOICE_ACTIVATION and app.vad_dbfs == -3
            await until(pilot, lambda: not app.model.transmitting, "below the threshold")
            meter = app.screen.query_one(LevelMeter)
            await until(pilot, lambda: "VAD threshold -3 dB" in str(meter.render()),
                        "the threshold on the meter")  # fmt: skip
            assert app.model.level_dbfs > -30  # the meter hears the tone
            await submit(pilot, "/vad -60")
            await until(pilot, lambda: app.model.transmitting, "above the threshold")
            await pilot.press("f6")  # threshold down a step, from the keyboard
            assert app.vad_dbfs == -63
            await submit(pilot, "/volume olga 0.5")
            await submit(pilot, "/volume olga loud")
            await submit(pilot, "/noise on")  # a tone is not a microphone
            await submit(pilot, "/noise loud")
            await submit(pilot, "/help")
            text = "\n".join(log_text(app))
            assert "olga plays at 0.5x" in text
            assert "noise suppression is for microphones" in text
            assert "usage: /noise on|off" in text
            assert "is not a gain" in text
            assert "/volume USER GAIN" in text and "F2 talk on/off" in text

    asyncio.run(body())


def test_device_picker_switches_the_microphone(server: Server, tmp_path: Path) -> None:
    app = scripted(server.port, "pia", tmp_path)

    async def body() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.model.state is CS.CONNECTED, "connected")
            await submit(pilot, "/devices")
            await until(pilot, lambda: isinstance(app.screen, DevicesScreen), "the picker")
            options = app.screen.query_one("#input-devices")
            ids = [o.id for o in options.options]  # type: ignore[attr-defined]
            assert "input|null" in ids and "input|tone:440" in ids
            options.highlighted = ids.index("input|tone:440")  # type: ignore[attr-defined]
            options.focus()
            await pilot.press("enter")
            await until(pilot, lambda: app.devices == ("tone:440", "null"), "chosen")
            await until(pilot, lambda: app.session is not None and app.session.client
                        is not None and app.model.state is CS.CONNECTED, "reconnected")  # fmt: skip
            await submit(pilot, "/continuous")
            await until(pilot, lambda: app.model.transmitting, "the tone goes out")

    asyncio.run(body())
