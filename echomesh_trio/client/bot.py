"""``echomesh-bot``: a headless EchoMesh client that talks, listens, records and echoes.

    echomesh-bot --server HOST:PORT [--plaintext] [--fingerprint SHA256] --user NAME
                 --password PW --room ROOM [--play tone:FREQ | --play FILE.wav]
                 [--record OUT.wav] [--echo] [--seconds N]

It logs in (the first login registers the name where the server allows it), joins the
room (creating it when it does not exist), sends the tone or the file as its microphone
(continuous transmission), records everything it hears, mixed, to a 48 kHz mono 16-bit
WAV, can echo back what it hears, and prints one line per event worth knowing. It exits 0
after ``--seconds``, or at the end of the file when no ``--seconds`` is given; when the file
ends first it stops transmitting (the end of a talk spurt) and stays, listening. A refused
login, a refused certificate or an unreachable server exit 1 with one line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import trio

from echomesh_trio import __version__
from echomesh_trio.audio.pcm import Pcm
from echomesh_trio.audio.sender import GateMode
from echomesh_trio.client import events as ce
from echomesh_trio.client.control import RequestRefused
from echomesh_trio.client.core import Client, ClientConfig, NotConnected, open_client
from echomesh_trio.client.trust import InvalidFingerprint, parse_fingerprint
from echomesh_trio.devices.base import AudioDeviceError, AudioInput, AudioOutput
from echomesh_trio.devices.files import (
    NullInput,
    NullOutput,
    PacedInput,
    PacedOutput,
    ToneInput,
    WavFileInput,
    WavFileOutput,
)
from echomesh_trio.media import FRAME_SAMPLES, SAMPLE_RATE
from echomesh_trio.protocol import events as ev

PROG: Final = "echomesh-bot"
ECHO_BUFFER_S: Final = 1.0
"""Heard audio kept for echoing; a little more than any jitter-buffer delay."""
END_GRACE_S: Final = 0.2
"""After the end of the file: time for the end-of-spurt packet to leave before exiting."""


class Fatal(Exception):
    """One line for the user, exit 1."""


# ---------------------------------------------------------------------- echo devices
class EchoOutput(PacedOutput):
    """Plays into a buffer the EchoInput reads (and into a recording, if any)."""

    def __init__(self, record: WavFileOutput | None) -> None:
        super().__init__()
        self.record = record
        self.heard: deque[Pcm] = deque(maxlen=int(ECHO_BUFFER_S * SAMPLE_RATE / 240))

    def _write(self, block: Pcm) -> None:
        self.heard.append(block)
        if self.record is not None:
            self.record._write(block)  # paced by us, written by it

    def close(self) -> None:
        if self.record is not None:
            self.record.close()


class EchoInput(PacedInput):
    """A microphone that says what the EchoOutput heard."""

    def __init__(self, output: EchoOutput) -> None:
        super().__init__()
        self._output = output
        self._carry = np.zeros(0, dtype=np.int16)

    def _next_frame(self) -> Pcm:
        parts = [self._carry]
        have = len(self._carry)
        while have < FRAME_SAMPLES and self._output.heard:
            block = self._output.heard.popleft()
            parts.append(block)
            have += len(block)
        data = np.concatenate(parts) if len(parts) > 1 else self._carry
        if len(data) < FRAME_SAMPLES:
            self._carry = np.zeros(0, dtype=np.int16)
            return np.concatenate([data, np.zeros(FRAME_SAMPLES - len(data), np.int16)])
        self._carry = data[FRAME_SAMPLES:].copy()
        return data[:FRAME_SAMPLES].copy()


class FileMicrophone(WavFileInput):
    """A WAV file as the microphone, with an event for its end."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.ended = trio.Event()

    def _next_frame(self) -> Pcm:
        frame = super()._next_frame()
        if self.finished:
            self.ended.set()
        return frame


# ---------------------------------------------------------------------- arguments
def parse_server(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{port!r} in {text!r} is not a port number") from None
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"port {number} is not between 1 and 65535")
    return host, number


def _fingerprint(text: str) -> str:
    try:
        parse_fingerprint(text)
    except InvalidFingerprint as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("--seconds must be a positive number")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="A headless EchoMesh client: joins a room, talks, listens, records.",
    )
    p.add_argument("--server", required=True, type=parse_server, metavar="HOST:PORT")
    p.add_argument("--plaintext", action="store_true", help="no TLS (only when asked)")
    p.add_argument(
        "--fingerprint", type=_fingerprint, metavar="SHA256",
        help="accept exactly this server certificate (and pin it)",
    )  # fmt: skip
    p.add_argument(
        "--known-servers", type=Path, metavar="PATH",
        help="the pin file (default: known_servers.toml in the user's config directory)",
    )  # fmt: skip
    p.add_argument("--user", required=True)
    p.add_argument(
        "--password", help="the password (default: $ECHOMESH_PASSWORD)",
        default=os.environ.get("ECHOMESH_PASSWORD"),
    )  # fmt: skip
    p.add_argument("--room", required=True, help="joined, and created when it does not exist")
    p.add_argument("--play", metavar="tone:FREQ|FILE.wav", help="what to send as the microphone")
    p.add_argument("--record", type=Path, metavar="OUT.wav", help="record what is heard")
    p.add_argument("--echo", action="store_true", help="send back what is heard")
    p.add_argument(
        "--front-end", action="store_true",
        help="noise suppression and gain control on what it sends (a client's default for "
        "microphones; off here, since a tone or a file is not a noisy room)",
    )  # fmt: skip
    p.add_argument("--seconds", type=_seconds, help="exit 0 after this long")
    p.add_argument("--call", metavar="USER", help="call USER (a private two-person voice room)")
    p.add_argument("--answer", action="store_true", help="accept incoming calls")
    p.add_argument("--verbose", action="store_true", help="log what the client does")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return p


# ---------------------------------------------------------------------- running
def open_input(play: str | None) -> AudioInput:
    if play is None:
        return NullInput()
    if play == "tone" or play.startswith("tone:"):
        _, _, hz = play.partition(":")
        try:
            frequency = float(hz) if hz else 440.0
        except ValueError:
            raise Fatal(f"--play {play}: {hz!r} is not a frequency in Hz") from None
        if not (math.isfinite(frequency) and 0 < frequency < SAMPLE_RATE / 2):
            raise Fatal(f"--play {play}: the frequency must be between 0 and 24000 Hz")
        return ToneInput(frequency)
    return FileMicrophone(play)


class Bot:
    def __init__(self, args: argparse.Namespace, out: object = None) -> None:
        self.args = args
        self._out = out if out is not None else sys.stdout

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)  # type: ignore[arg-type]

    async def run(self) -> None:
        args = self.args
        if args.password is None:
            raise Fatal("no password: give --password or set ECHOMESH_PASSWORD")
        if args.echo and args.play:
            raise Fatal("--echo and --play both choose the microphone; give one")
        record = WavFileOutput(args.record) if args.record else None
        output: AudioOutput
        audio_input: AudioInput
        if args.echo:
            output = echo = EchoOutput(record)
            audio_input = EchoInput(echo)
        else:
            output = record if record is not None else NullOutput()
            audio_input = open_input(args.play)
        host, port = args.server
        talking = args.play is not None or args.echo
        config = ClientConfig(
            host, port, args.user, args.password,
            plaintext=args.plaintext, fingerprint=args.fingerprint,
            known_servers=args.known_servers, rooms=(args.room,),
            audio_input=audio_input, audio_output=output,
            transmit_mode=GateMode.CONTINUOUS if talking else GateMode.PUSH_TO_TALK,
            # Its "microphone" is a tone or a file, not a room: clean it only when asked.
            noise_suppression=args.front_end, gain_control=args.front_end,
            client_name=f"{PROG} {__version__}",
        )  # fmt: skip
        try:
            async with open_client(config) as client:
                await self._serve(client, audio_input)
        finally:
            output.close()
            audio_input.close()

    async def _serve(self, client: Client, audio_input: AudioInput) -> None:
        args = self.args
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._report, client)
            try:
                await client.wait_connected()
            except NotConnected as exc:
                raise Fatal(str(exc)) from None
            if args.room not in client.rooms:
                raise Fatal(f"could not join room {args.room!r}")
            if args.call:
                try:
                    await client.place_call(args.call)
                except RequestRefused as exc:
                    raise Fatal(f"cannot call {args.call}: {exc.reply.message}") from None
            file_input = audio_input if isinstance(audio_input, FileMicrophone) else None
            with trio.move_on_after(args.seconds if args.seconds else math.inf):
                if file_input is not None:
                    await file_input.ended.wait()
                    client.set_transmit_mode(GateMode.PUSH_TO_TALK)  # the end of the spurt
                    self.say(f"finished playing {args.play}")
                    await trio.sleep(END_GRACE_S)
                    if args.seconds is None:
                        nursery.cancel_scope.cancel()
                        return
                await trio.sleep_forever()
            client.set_transmit_mode(GateMode.PUSH_TO_TALK)  # end the spurt before leaving
            await trio.sleep(END_GRACE_S)
            if client.call is not None:
                with contextlib.suppress(RequestRefused, NotConnected):
                    await client.hang_up()
            nursery.cancel_scope.cancel()

    async def _report(self, client: Client) -> None:
        async for event in client.events():
            line = describe(event, client)
            if line:
                self.say(line)
            if (
                self.args.answer
                and isinstance(event, ev.CallRinging)
                and event.callee.user_id == client.user_id
            ):
                try:
                    await client.accept_call(event.call_id)
                except RequestRefused as exc:  # the caller gave up meanwhile
                    self.say(f"could not answer: {exc.reply.message}")
            if (
                isinstance(event, ce.ConnectionChanged)
                and event.state is ce.ConnectionState.OFFLINE
            ):
                raise Fatal(event.reason)


def describe(event: ce.ClientEvent, client: Client) -> str | None:
    """One line for an event worth knowing, or None."""
    match event:
        case ev.CallRinging():
            if event.caller.user_id == client.user_id:
                return f"calling {event.callee.username}"
            return f"{event.caller.username} is calling"
        case ev.CallConnected():
            return f"call with {_other(event, client)} connected"
        case ev.CallEnded():
            how = event.reason.name.lower().replace("_", " ")
            length = f", {event.duration_ms / 1000:.1f} s" if event.duration_ms else ""
            return f"call with {_other(event, client)} ended ({how}{length})"
        case ev.Moderated():
            what = {
                ev.ModerationKind.KICK: "kicked from",
                ev.ModerationKind.MUTE: "muted in",
                ev.ModerationKind.UNMUTE: "unmuted in",
                ev.ModerationKind.OP: "made owner of",
                ev.ModerationKind.DEOP: "no longer owner of",
            }.get(event.kind, event.kind.name)
            where = event.room_id or "the server"
            because = f": {event.reason}" if event.reason else ""
            return f"{what} {where} by {event.by.username}{because}"
        case ce.ConnectionChanged(state=ce.ConnectionState.RECONNECTING):
            return f"connection lost ({event.reason}); reconnecting in {event.retry_in_s:.1f} s"
        case ce.ConnectionChanged(state=ce.ConnectionState.CONNECTED):
            return f"connected to {client.config.host}:{client.config.port}"
        case ce.CertificatePinned():
            return f"pinned the certificate of {event.host}:{event.port}: {event.fingerprint}"
        case ce.LoggedIn():
            return f"logged in as {event.username}" + (" (resumed)" if event.resumed else "")
        case ce.RoomJoined():
            names = ", ".join(m.username for m in event.members)
            again = "rejoined" if event.rejoined else "joined"
            return f"{again} {event.room_id} ({len(event.members)} in the room: {names})"
        case ce.RoomLeft():
            return f"left {event.room_id}" + (f": {event.reason}" if event.reason else "")
        case ev.MemberJoined():
            return f"{event.member.username} joined {event.room_id}"
        case ev.MemberLeft():
            return f"{event.member.username} left {event.room_id}"
        case ce.TalkChanged():
            who = event.username or f"source {event.source_id}"
            return f"{who} {'started' if event.speaking else 'stopped'} speaking"
        case ce.ChatReceived(history=False):
            return f"[{event.message.room_id}] {event.message.username}: {event.message.content}"
        case ce.DirectReceived(own=False):
            return f"[direct] {event.message.from_username}: {event.message.content}"
        case ce.ServerError():
            return f"server error: {event.code.name}: {event.message}"
        case ce.MessageFailed():
            return f"message not sent: {event.code.name}: {event.reason}"
    return None


def _other(event: ev.CallConnected | ev.CallEnded, client: Client) -> str:
    mine = event.caller.user_id == client.user_id
    return event.callee.username if mine else event.caller.username


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        trio.run(Bot(args).run)
    except BaseException as exc:
        fatal = find_exception(exc, (Fatal, AudioDeviceError))
        if fatal is not None:
            print(f"{PROG}: {fatal}", file=sys.stderr)
            return 1
        if find_exception(exc, (KeyboardInterrupt,)) is not None:
            return 130
        raise
    return 0


def find_exception(
    exc: BaseException, kinds: tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc`` or the groups it holds (nurseries wrap
    what their tasks raise)."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_exception(inner, kinds)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
