"""``EchoMeshApp``: turns what the person does into client commands, and client events into
what the widgets show.

Trio runs in guest mode on Textual's loop (``trio_host.TrioHost``), from mount to unmount.
The Trio side (``session.Session``) posts ``ClientUpdate`` and ``StateBatch`` messages; the
handlers here apply them to the ``Model`` and hand the screen its new state. Commands go
the other way through the host (``start_soon`` for requests that wait for the server,
``call_soon`` for the ones that apply at once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import trio
from textual import on
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.driver import Driver
from textual.screen import Screen

from echomesh_trio.audio.sender import GateMode
from echomesh_trio.client import events as ce
from echomesh_trio.client.core import Client, ClientConfig
from echomesh_trio.devices.base import AudioDeviceError, AudioInput, AudioOutput
from echomesh_trio.protocol import events as ev
from tui_client import commands as cmd
from tui_client import settings
from tui_client.audio import is_microphone, open_devices
from tui_client.keyboard import DEFAULT_TALK_KEY, KeyboardCapabilities, TalkKey
from tui_client.messages import (
    ClientUpdate,
    ConnectRequested,
    ConversationSelected,
    DeviceChosen,
    LineEntered,
    SessionEnded,
    StateBatch,
    TalkRequested,
    TypingChanged,
)
from tui_client.model import Model
from tui_client.ptt_socket import PttSocketInUse, serve_ptt_socket
from tui_client.screens.call import CallScreen
from tui_client.screens.connect import ConnectScreen
from tui_client.screens.devices import DevicesScreen
from tui_client.screens.fingerprint import FingerprintScreen
from tui_client.screens.main import MainScreen
from tui_client.session import Session
from tui_client.trio_host import TrioHost, describe

log = logging.getLogger("echomesh.tui")

MODE_NAMES = {
    GateMode.PUSH_TO_TALK: "push-to-talk",
    GateMode.VOICE_ACTIVATION: "voice activation",
    GateMode.CONTINUOUS: "continuous",
}
VAD_STEP_DB = 3.0
DEFAULT_VAD_DBFS = -40.0


@dataclass(frozen=True)
class Launch:
    """What the command line asked for. With server, user, password and room the app
    connects at once (a scripted start); otherwise it shows the connect screen."""

    host: str = ""
    port: int = 0
    user: str = ""
    password: str | None = None
    room: str | None = None
    plaintext: bool = False
    fingerprint: str | None = None
    known_servers: Path | None = None
    servers_file: Path | None = None
    audio_input: str = "default"
    audio_output: str = "default"
    ptt_socket: Path | None = None
    mode: GateMode = GateMode.PUSH_TO_TALK
    talk_key: str = DEFAULT_TALK_KEY

    @property
    def scripted(self) -> bool:
        return bool(self.host and self.user and self.password is not None and self.room)


class EchoMeshApp(App[None]):
    TITLE = "EchoMesh"
    CSS_PATH = Path(__file__).with_name("echomesh.tcss")  # absolute: subclasses live elsewhere
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(self, launch: Launch | None = None, driver_class: type[Driver] | None = None):
        super().__init__(driver_class=driver_class)
        self.launch = launch or Launch()
        self.host = TrioHost(on_error=self.show_error)
        self.model = Model(self.launch.user)
        self.session: Session | None = None
        self.mode = self.launch.mode
        self.talking = False
        """The push-to-talk toggle (F2, /ptt)."""
        self.muted = False
        self.deafened = False
        self.vad_dbfs: float | None = None
        self.devices = (self.launch.audio_input, self.launch.audio_output)
        self._restart = False
        self.errors: list[BaseException] = []
        """Errors from Trio tasks, as shown (for tests and the log)."""
        self.server = ""
        self._want_room = ""
        """A room asked for with /join or /create: shown when joined."""
        self._said: set[str] = set()
        self.noise_suppression = True
        """Asked for (/noise); applies to microphones only."""

    # ------------------------------------------------------------------ life
    def on_mount(self) -> None:
        self.host.start()
        launch = self.launch
        if launch.ptt_socket is not None:
            self.host.start_soon(self._serve_ptt_socket, launch.ptt_socket)
        self.set_interval(1.0, self._tick)
        if launch.scripted:
            assert launch.password is not None and launch.room is not None
            self.connect(launch.host, launch.port, launch.user, launch.password,
                         rooms=(launch.room,), plaintext=launch.plaintext)  # fmt: skip
        else:
            path = launch.servers_file or settings.default_path()
            self.push_screen(ConnectScreen(settings.load(path)))

    async def on_unmount(self) -> None:
        await self.host.stop()

    def show_error(self, exc: BaseException) -> None:
        """An error in a Trio task (or the end of the Trio run): shown, never swallowed."""
        self.errors.append(exc)
        text = describe(exc)
        self.model.say(f"internal error: {text}", "error")
        self.notify(text, title="Error", severity="error", timeout=30, markup=False)
        if not self.host.running and self.is_running:
            self.exit(return_code=1, message=f"echomesh-tui: the Trio run ended: {text}")
        self.refresh_view()

    # ------------------------------------------------------------------ talking from outside
    async def _serve_ptt_socket(self, path: Path) -> None:
        """The hold-to-talk control socket (Trio); what it hears comes up as messages."""

        def talk(down: bool) -> None:
            self.post_message(TalkRequested(down))

        try:
            await serve_ptt_socket(path, talk)
        except (PttSocketInUse, ValueError, OSError) as exc:
            self.call_later(self._say_once, f"no push-to-talk socket at {path}: {exc}")

    @on(TalkRequested)
    def _talk_requested(self, message: TalkRequested) -> None:
        self.set_talking(message.down)

    def on_keyboard_capabilities(self, message: KeyboardCapabilities) -> None:
        key = self.launch.talk_key.upper()
        if message.releases:  # good news, worth a notification
            self._say_once(f"Hold {key} to talk (this terminal reports key releases); "
                           "F2 toggles.")  # fmt: skip
        else:  # the usual case: a line in the log is enough
            self._say_once(f"{key} or F2: talk on/off (this terminal does not report key "
                           "releases; --ptt-socket gives hold-to-talk)", toast=False)  # fmt: skip

    def on_talk_key(self, message: TalkKey) -> None:
        self.set_talking(message.down)

    # ------------------------------------------------------------------ connecting
    @on(ConnectRequested)
    def _connect_requested(self, message: ConnectRequested) -> None:
        path = self.launch.servers_file or settings.default_path()
        entry = settings.ServerEntry(
            message.host, message.port, message.user, message.plaintext,
            message.password if message.remember_password else None,
        )  # fmt: skip
        try:
            settings.remember(path, entry)
        except OSError as exc:
            self.notify(f"could not remember the server in {path}: {exc}", severity="warning")
        self.connect(message.host, message.port, message.user, message.password,
                     rooms=("lobby",), plaintext=message.plaintext)  # fmt: skip

    def connect(
        self, host: str, port: int, user: str, password: str, *, rooms: tuple[str, ...],
        plaintext: bool,
    ) -> None:  # fmt: skip
        self.model = Model(user)
        self.server = f"{host}:{port}"
        config = ClientConfig(
            host, port, user, password, plaintext=plaintext,
            fingerprint=self.launch.fingerprint, known_servers=self.launch.known_servers,
            rooms=rooms, confirm_fingerprint=self._confirm_fingerprint,
            transmit_mode=self.mode, client_name="echomesh-tui",
            retry_first_connect=True,
        )  # fmt: skip
        if self._on_connect_screen():
            self.switch_screen(MainScreen())
        else:
            self.push_screen(MainScreen())
        self.host.start_soon(self._run_sessions, config)

    def _on_connect_screen(self) -> bool:
        return isinstance(self.screen, ConnectScreen)

    async def _run_sessions(self, config: ClientConfig) -> None:
        """The session, again with new devices when the picker asks (Trio)."""
        while True:
            audio_in, audio_out, note = open_devices(*self.devices)
            if note:
                self.call_later(self._say_once, note)
            mic = is_microphone(self.devices[0]) and self.noise_suppression
            session = Session(
                replace(
                    config,
                    audio_input=audio_in,
                    audio_output=audio_out,
                    noise_suppression=mic,
                    gain_control=is_microphone(self.devices[0]),
                ),
                lambda event: self.post_message(ClientUpdate(event)),
                lambda events: self.post_message(StateBatch(events)),
            )
            self.session = session
            try:
                await session.run()
            finally:
                _close(audio_in, audio_out)
                self.session = None
            # The client's own word: the app may not have handled its last events yet.
            reason = session.client.reason if session.client is not None else ""
            if not self._restart:
                break
            self._restart = False
            config = replace(config, rooms=tuple(self.model.rooms) or config.rooms)
        self.post_message(SessionEnded(reason))

    def _say_once(self, note: str, *, toast: bool = True) -> None:
        """A note in the log (and a notification): once per app."""
        if note not in self._said:
            self._said.add(note)
            self.model.say(note)
            if toast:
                self.notify(note, severity="warning", timeout=10, markup=False)
            self.refresh_view()

    async def _confirm_fingerprint(self, host: str, port: int, fingerprint: str) -> bool:
        """Asked by the client core (in Trio) on first contact: the modal's answer."""
        answered = trio.Event()
        answer = [False]

        def done(trust: bool | None) -> None:
            answer[0] = bool(trust)
            self.host.call_soon(answered.set)

        self.call_later(self.push_screen, FingerprintScreen(host, port, fingerprint), done)
        await answered.wait()
        return answer[0]

    # ------------------------------------------------------------------ client events
    @on(ClientUpdate)
    def _client_update(self, message: ClientUpdate) -> None:
        event = message.event
        self.model.apply(event)
        match event:
            case ce.CertificatePinned():
                self.model.say(f"trusted {event.host}:{event.port}: {event.fingerprint}")
            case ce.ConnectionChanged(state=ce.ConnectionState.RECONNECTING) if (
                "BrokenResourceError" in event.reason and self.session is not None
                and not self.session.config.plaintext
            ):  # fmt: skip
                self.model.reason += " - is it a plain-TCP server (--plaintext)?"
            case ce.ConnectionChanged(state=ce.ConnectionState.OFFLINE):
                self.model.say(f"offline: {event.reason}", "error")
            case ev.CallRinging() if event.callee.username == self.model.username:
                self._ring(event)
            case ev.CallEnded() if isinstance(self.screen, CallScreen):
                self.screen.dismiss(None)
            case ce.RoomJoined(rejoined=False):
                self.model.say(f"joined #{event.room_id} ({len(event.members)} here)",
                               key=event.room_id)  # fmt: skip
                if event.room_id == self._want_room:
                    self.model.select(event.room_id)
        self.refresh_view()

    def _tick(self) -> None:
        """Once a second: the call's duration, typing notices running out."""
        conv = self.model.conversations.get(self.model.current)
        if (self.model.call is not None and self.model.call.connected) or (
            conv is not None and conv.typing
        ):
            self.refresh_view()

    def _ring(self, event: ev.CallRinging) -> None:
        def answered(take: bool | None) -> None:
            session = self.session
            if session is not None:
                self.host.start_soon(session.answer_call, bool(take), event.call_id)

        self.push_screen(CallScreen(event.caller.username), answered)

    @on(StateBatch)
    def _state_batch(self, message: StateBatch) -> None:
        changed = False
        for event in message.events:
            if isinstance(event, ce.InputLevel) and (round(event.dbfs), event.voice) == (
                round(self.model.level_dbfs), self.model.voice,
            ):  # fmt: skip
                continue  # the meter would show the same: no redraw (10 of these a second)
            self.model.apply(event)
            changed = True
        if changed:
            self.refresh_view()

    @on(SessionEnded)
    def _session_ended(self, message: SessionEnded) -> None:
        """Offline for good. Started from the connect screen: back to it, saying why (a
        refused login, a declined or changed certificate); a scripted start stays, with
        the banner."""
        self.refresh_view()
        if not self.launch.scripted and self.is_running and isinstance(self.screen, MainScreen):
            path = self.launch.servers_file or settings.default_path()
            self.switch_screen(ConnectScreen(settings.load(path), error=message.reason))

    def refresh_view(self) -> None:
        try:
            screen = self.screen
        except ScreenStackError:  # closing
            return
        if isinstance(screen, MainScreen) and screen.is_mounted:
            try:
                screen.show(self.model, server=self.server, mode=MODE_NAMES[self.mode],
                            threshold=self._threshold())  # fmt: skip
            except NoMatches:  # composing, or closing: the next refresh shows it
                pass

    def _threshold(self) -> float | None:
        if self.mode is not GateMode.VOICE_ACTIVATION:
            return None
        return self.vad_dbfs if self.vad_dbfs is not None else DEFAULT_VAD_DBFS

    # ------------------------------------------------------------------ from widgets
    @on(ConversationSelected)
    def _selected(self, message: ConversationSelected) -> None:
        self.model.select(message.key)
        self.refresh_view()

    @on(TypingChanged)
    def _typing(self, message: TypingChanged) -> None:
        room = self.model.current
        if self.session is not None and room and not room.startswith("@"):
            self.host.start_soon(self.session.set_typing, room, message.active)

    @on(LineEntered)
    def _line(self, message: LineEntered) -> None:
        try:
            parsed = cmd.parse(message.text)
        except cmd.CommandError as exc:
            self.model.say(str(exc), "error")
        else:
            if isinstance(parsed, cmd.Say):
                self.say(parsed.text, parsed.action)
            else:
                self.run_command(parsed)
        self.refresh_view()

    @on(DeviceChosen)
    def _device(self, message: DeviceChosen) -> None:
        audio_in, audio_out = self.devices
        self.devices = (message.spec, audio_out) if message.kind == "input" else (
            audio_in, message.spec)  # fmt: skip
        self.model.say(f"audio: input {self.devices[0]}, output {self.devices[1]}; reconnecting")
        self._restart = True
        if self.session is not None:
            self.host.call_soon(self.session.close)
        self.refresh_view()

    # ------------------------------------------------------------------ commands
    def _with_client(self, fn: Any, *args: Any) -> None:
        """Call ``fn(client, *args)`` in Trio if there is a client."""
        session = self.session

        def call() -> None:
            if session is not None and session.client is not None:
                fn(session.client, *args)

        self.host.call_soon(call)

    def say(self, text: str, action: bool = False) -> None:
        key = self.model.current
        content = f"/me {text}" if action else text
        if not key:
            self.model.say("you are in no room: /join ROOM", "error")
        elif key.startswith("@"):
            self._with_client(Client.send_direct, key[1:], content)
        else:
            self._with_client(Client.send_chat, key, content)

    def run_command(self, command: cmd.Command) -> None:
        name, args = command.name, command.args
        session = self.session
        current = self.model.current
        if name == "help":
            for line in [*cmd.help_lines(), self.keys_help()]:
                self.model.say(line)
        elif name == "quit":
            self.exit()
        elif name == "mute" and not args:
            self.action_mute()
        elif name == "deafen":
            self.action_deafen()
        elif name == "ptt":
            self.action_talk()
        elif name == "continuous":
            self.set_mode(GateMode.CONTINUOUS)
        elif name == "vad":
            if args:
                self.vad_dbfs = cmd.vad_threshold(args[0])
                self._with_client(Client.set_vad_threshold, self.vad_dbfs)
            self.set_mode(GateMode.VOICE_ACTIVATION)
        elif name == "volume":
            self._with_client(Client.set_volume, args[0], cmd.volume_gain(args[1]))
            self.model.say(f"{args[0]} plays at {cmd.volume_gain(args[1]):g}x")
        elif name == "devices":
            self.action_devices()
        elif name == "noise":
            self.set_noise_suppression(args[0].lower() == "on")
        elif name == "msg":
            self.model.select("@" + args[0])
            self._with_client(Client.send_direct, args[0], args[1])
        elif session is None:
            self.model.say("not connected", "error")
        elif name in ("join", "create") and args[0] in self.model.rooms:
            self.model.select(args[0])
        elif name == "join":
            self._want_room = args[0]
            self.host.start_soon(session.join, args[0], True)
        elif name == "create":
            self._want_room = args[0]
            self.host.start_soon(session.create, args[0])
        elif name == "leave":
            room = args[0] if args else current
            if not room or room.startswith("@"):
                self.model.conversations.pop(room, None)
                self.model.current = next(iter(self.model.conversations), "")
            else:
                self.host.start_soon(session.leave, room)
        elif name == "voice":
            self.host.start_soon(session.set_active_room, args[0] if args else current)
        elif name == "rooms":
            self.host.start_soon(self._list_rooms, session)
        elif name in ("call", "answer", "reject", "hangup"):
            self.host.start_soon(session.call_command, name, args[0] if args else "")
        elif name in ("kick", "mute", "unmute", "ban", "unban", "op", "deop"):
            self.host.start_soon(session.moderate, name, args, current)

    async def _list_rooms(self, session: Session) -> None:
        await session.list_rooms()
        self.call_later(self._show_rooms)

    def _show_rooms(self) -> None:
        counts = ", ".join(f"#{r} ({n})" for r, n in sorted(self.model.room_counts.items()))
        self.model.say(f"rooms: {counts or 'none'}")
        self.refresh_view()

    def keys_help(self) -> str:
        return (
            "keys: F2 talk on/off, F3 mute, F4 deafen, F5 mode, F6/F7 VAD threshold, "
            "Ctrl+N next conversation, Ctrl+O devices, Ctrl+P commands, Ctrl+Q quit"
        )

    def set_noise_suppression(self, on: bool) -> None:
        self.noise_suppression = on
        if on and not is_microphone(self.devices[0]):
            self.model.say(f"noise suppression is for microphones; the input is {self.devices[0]}")
            return

        def apply(client: Client) -> None:
            done = client.set_noise_suppression(on)
            problem = getattr(client.audio, "front_end_problem", "") if on and not done else ""
            self.call_later(self._noise_result, on, problem)

        self._with_client(apply)

    def _noise_result(self, on: bool, problem: str) -> None:
        if problem:
            self.model.say(f"no noise suppression: {problem}", "error")
        else:
            self.model.say(f"noise suppression {'on' if on else 'off'}")
        self.refresh_view()

    # ------------------------------------------------------------------ actions
    def set_mode(self, mode: GateMode) -> None:
        self.mode = mode
        self._with_client(Client.set_transmit_mode, mode)
        if mode is GateMode.PUSH_TO_TALK and self.talking:
            self._with_client(Client.ptt, True)
        self.refresh_view()

    def set_talking(self, down: bool) -> None:
        """Push-to-talk down or up (F2, /ptt, the control socket, a key release)."""
        if self.mode is not GateMode.PUSH_TO_TALK:
            self.set_mode(GateMode.PUSH_TO_TALK)
        self.talking = down
        self._with_client(Client.ptt, down)
        self.refresh_view()

    def action_talk(self) -> None:
        self.set_talking(not self.talking)

    def action_mute(self) -> None:
        self.muted = not self.muted
        self._with_client(Client.set_muted, self.muted)

    def action_deafen(self) -> None:
        self.deafened = not self.deafened
        self._with_client(Client.set_deafened, self.deafened)

    def action_cycle_mode(self) -> None:
        order = list(MODE_NAMES)
        self.set_mode(order[(order.index(self.mode) + 1) % len(order)])

    def action_vad_step(self, direction: int) -> None:
        base = self.vad_dbfs if self.vad_dbfs is not None else DEFAULT_VAD_DBFS
        self.vad_dbfs = max(-90.0, min(-6.0, base + direction * VAD_STEP_DB))
        self._with_client(Client.set_vad_threshold, self.vad_dbfs)
        if self.mode is not GateMode.VOICE_ACTIVATION:
            self.set_mode(GateMode.VOICE_ACTIVATION)
        self.refresh_view()

    def action_next_conversation(self) -> None:
        keys = [k for k in self.model.conversations if k]
        if keys:
            at = keys.index(self.model.current) if self.model.current in keys else -1
            self.model.select(keys[(at + 1) % len(keys)])
            self.refresh_view()

    def action_devices(self) -> None:
        from tui_client.audio import list_sound_devices

        devices, note = list_sound_devices()
        self.push_screen(DevicesScreen(devices, self.devices, note))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not isinstance(screen, MainScreen):
            return
        yield SystemCommand("Talk: push-to-talk on/off", "F2, /ptt", self.action_talk)
        yield SystemCommand("Talk: mute", "F3, /mute", self.action_mute)
        yield SystemCommand("Talk: deafen", "F4, /deafen", self.action_deafen)
        for mode, title in MODE_NAMES.items():
            yield SystemCommand(f"Talk: mode {title}", "F5 cycles",
                                lambda m=mode: self.set_mode(m))  # fmt: skip
        yield SystemCommand("Audio: devices", "Ctrl+O, /devices", self.action_devices)
        yield SystemCommand("Rooms: list the server's rooms", "/rooms",
                            lambda: self.run_command(cmd.Command("rooms")))  # fmt: skip
        for room in self.model.rooms:
            leave = cmd.Command("leave", (room,))
            voice = cmd.Command("voice", (room,))
            yield SystemCommand(f"Rooms: leave #{room}", "/leave",
                                lambda c=leave: self.run_command(c))  # fmt: skip
            yield SystemCommand(f"Rooms: talk in #{room}", "/voice",
                                lambda c=voice: self.run_command(c))  # fmt: skip
        yield SystemCommand("Help: commands and keys", "/help",
                            lambda: self.run_command(cmd.Command("help")))  # fmt: skip


def _close(audio_in: AudioInput | None, audio_out: AudioOutput | None) -> None:
    for device in (audio_in, audio_out):
        if device is not None:
            try:
                device.close()
            except (AudioDeviceError, OSError):
                log.exception("closing %r", device)
