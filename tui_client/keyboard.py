"""True hold-to-talk from the keyboard, in terminals that report key releases.

Textual (8.x) has no key-release events: its Linux driver asks the kitty keyboard protocol
for flags 1|8|16 but not 2, "report event types". This module's driver also asks for flag 2
and filters the input before Textual's parser sees it, because Textual cannot parse the
``CSI code;mods:type u`` form that flag 2 produces (``int("1:3")`` in its parser).

API for the app::

    from tui_client.keyboard import KeyboardCapabilities, TalkKey, release_aware_driver

    class EchoMeshApp(App):
        def on_keyboard_capabilities(self, message: KeyboardCapabilities) -> None:
            ...  # message.releases: True -> hold the talk key to talk; False -> toggle

        def on_talk_key(self, message: TalkKey) -> None:
            ...  # message.down: start (True) or stop (False) transmitting

    EchoMeshApp(driver_class=release_aware_driver(talk_key="f12")).run()

- ``release_aware_driver(talk_key=DEFAULT_TALK_KEY) -> type[Driver] | None``: a subclass of
  Textual's ``LinuxDriver`` (Linux and macOS); None on Windows; ValueError for an unknown
  key name. Key names are Textual's (``f12``, ``space``, ``right_control``, ``pause``,
  ``a``), optionally with required modifiers (``ctrl+space``); other modifiers held
  meanwhile do not matter. Pick a key nobody types into the chat input. Textual uses
  ``driver_class`` only for a full-screen run: ``run_test()`` (headless) and
  ``run(inline=True)`` use their own drivers, so Pilot tests see plain key presses.
- The app receives exactly one :class:`KeyboardCapabilities` after each start (and after
  resuming from Ctrl+Z): ``releases`` is True when the terminal confirmed flag 2
  (kitty, WezTerm with ``enable_kitty_keyboard = true``, Ghostty, foot, Alacritty), False
  otherwise (no kitty protocol: xterm, VTE terminals, tmux, screen; or
  ``TEXTUAL_DISABLE_KITTY_KEY=1``). ``flags`` is what the terminal reported, or None.
  The driver instance also has ``supports_release_events`` (None until known).
- Only when releases are confirmed are the talk key's events consumed: a press posts
  ``TalkKey(down=True)``, repeats are swallowed, the release posts ``TalkKey(down=False)``.
  Until then, and in every other terminal, the talk key reaches Textual as an ordinary key
  press, so binding the same key to the toggle action gives hold-to-talk where possible
  and toggle elsewhere, with no other code in the app.
- The mic is never left open by the keyboard: losing terminal focus, stopping or suspending
  the app while the key is held also posts ``TalkKey(down=False)``.
- Other keys behave as before: press and repeat events reach Textual with the ``:type``
  sub-field removed, release events of other keys are dropped.

The pure part, :class:`KittyInputFilter` (text in, text and events out, no I/O, no clock),
is what the tests exercise with hypothesis; :class:`KeyInputPipeline` adds Textual's parser.

The one piece of Textual reproduced is the driver's ``run_input_thread`` (its parser is a
local variable there, so the filter cannot be slotted in otherwise): the same selector,
read, decode and tick loop in 25 lines. It leans on private names (``_xterm_parser``,
``_keyboard_protocol``); check them on Textual upgrades (the tests will tell).
"""

from __future__ import annotations

import os
import selectors
import sys
from codecs import getincrementaldecoder
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from textual import constants
from textual._keyboard_protocol import FUNCTIONAL_KEYS
from textual._parser import ParseError
from textual._xterm_parser import XTermParser
from textual.message import Message

if TYPE_CHECKING:
    from textual.driver import Driver

__all__ = [
    "DEFAULT_TALK_KEY",
    "KITTY_FLAGS",
    "KeyInputPipeline",
    "KeyboardCapabilities",
    "KittyFlagsReport",
    "KittyInputFilter",
    "TalkEdge",
    "TalkKey",
    "TalkKeySpec",
    "parse_talk_key",
    "release_aware_driver",
]

# https://sw.kovidgoyal.net/kitty/keyboard-protocol/#progressive-enhancement
# Textual's own 1|8|16 (disambiguate, all keys as escape codes, associated text) plus 2
# (event types). Flag 8 matters: without it Enter, Tab and Backspace send no release.
KITTY_FLAGS: Final = 0b1 | 0b10 | 0b1000 | 0b10000
_EVENT_TYPES_FLAG: Final = 0b10
PRESS, REPEAT, RELEASE = 1, 2, 3

DEFAULT_TALK_KEY: Final = "f12"

ESC: Final = "\x1b"
# Final bytes of kitty key sequences. "R" is left out: it is also the cursor position
# report (CSI row;col R), and kitty sends F3 as CSI 13 ~.
_KEY_FINALS: Final = frozenset("u~ABCDEFHPQS")
_PARAM_CHARS: Final = frozenset("0123456789;:")
# No kitty key sequence is anywhere near this long; beyond it the bytes are not ours.
_MAX_SEQUENCE: Final = 64
# While the terminal's answer is awaited, how long an incomplete escape sequence may wait
# for its end before it is passed on (a lone ESC key in a legacy terminal; Textual's own
# ESCDELAY applies after this). Once releases are confirmed nothing is flushed early: a
# sequence split by a slow link (ssh) must not reach Textual half rewritten, and kitty-mode
# terminals send even Escape as CSI 27 u. A terminal without them gets no buffering at all.
PENDING_FLUSH_S: Final = 0.02

_MODIFIER_BITS: Final = {"shift": 1, "alt": 2, "ctrl": 4, "super": 8, "hyper": 16, "meta": 32}


# ------------------------------------------------------------------- talk key names


@dataclass(frozen=True)
class TalkKeySpec:
    """Which key sequences are the talk key: (key code, final char) pairs, and the
    modifier bits (kitty's: shift 1, alt 2, ctrl 4, ...) that must be held with it."""

    name: str
    keys: frozenset[tuple[int, str]]
    modifiers: int = 0


def parse_talk_key(name: str) -> TalkKeySpec:
    """A Textual key name (``f12``, ``space``, ``ctrl+space``, ``right_control``, ``a``)."""
    *mods, key = name.strip().lower().split("+")
    required = 0
    for mod in mods:
        if mod not in _MODIFIER_BITS:
            raise ValueError(f"unknown modifier {mod!r} in talk key {name!r}")
        required |= _MODIFIER_BITS[mod]
    keys: set[tuple[int, str]] = set()
    for code_final, key_name in FUNCTIONAL_KEYS.items():
        final = code_final[-1]
        if key_name == key and final in _KEY_FINALS:
            keys.add((int(code_final[:-1]), final))
    if key == "space":
        keys.add((32, "u"))
    elif len(key) == 1 and key.isprintable() and key != " ":
        keys.add((ord(key), "u"))
    if not keys:
        raise ValueError(f"unknown talk key {name!r}")
    return TalkKeySpec("+".join([*mods, key]), frozenset(keys), required)


# ------------------------------------------------------------------ filter output


@dataclass(frozen=True)
class TalkEdge:
    """The talk key went down or up (or is considered up: focus lost, input stopped)."""

    down: bool


@dataclass(frozen=True)
class KittyFlagsReport:
    """The answer to our query: the terminal's kitty keyboard flags, or None when it
    answered the device-attributes query instead (it does not speak the protocol)."""

    flags: int | None

    @property
    def releases(self) -> bool:
        return self.flags is not None and bool(self.flags & _EVENT_TYPES_FLAG)


FilterItem = str | TalkEdge | KittyFlagsReport


class KittyInputFilter:
    """Rewrites terminal input for Textual's parser and picks out the talk key.

    Feed it decoded text as it arrives; it returns, in order, text for Textual (every byte
    it does not consume, unchanged but for the ``:type`` and ``:alternate`` sub-fields of
    kitty key sequences) and events. An incomplete escape sequence at the end of a chunk
    is held back (``pending``) until the next chunk, or :meth:`flush` while ``flushable``.
    Once the terminal is known not to send event types the filter is transparent.
    """

    def __init__(self, talk_key: TalkKeySpec) -> None:
        self.talk_key = talk_key
        self.releases = False  # consume the talk key only once flag 2 is confirmed
        self.held = False
        self._awaiting_reply = False
        self._flags_seen = False
        self._transparent = False
        self._buf = ""  # an escape sequence in progress ("" when none)

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    @property
    def flushable(self) -> bool:
        """Something is held back that may be passed on if nothing follows soon."""
        return bool(self._buf) and not self.releases

    def set_transparent(self) -> None:
        """No query was sent (not a tty, kitty protocol disabled): touch nothing."""
        self._transparent = True

    def expect_query_reply(self) -> None:
        """We sent ``CSI ? u`` then ``CSI c``: consume both answers."""
        self._awaiting_reply = True
        self._flags_seen = False
        self._transparent = False
        self.releases = False

    def feed(self, text: str) -> list[FilterItem]:
        out: list[FilterItem] = []
        plain: list[str] = []

        def emit(item: FilterItem) -> None:
            if isinstance(item, str):
                plain.append(item)
                return
            if plain:
                out.append("".join(plain))
                plain.clear()
            out.append(item)

        for ch in text:
            self._step(ch, emit)
        if plain:
            out.append("".join(plain))
        return out

    def flush(self) -> list[FilterItem]:
        """Pass on an incomplete sequence (nothing followed it in time)."""
        buf, self._buf = self._buf, ""
        return [buf] if buf else []

    def release(self) -> list[FilterItem]:
        """Input stops or focus is gone: a held talk key counts as released."""
        if not self.held:
            return []
        self.held = False
        return [TalkEdge(False)]

    def _step(self, ch: str, emit: Any) -> None:
        buf = self._buf
        if not buf:
            if ch == ESC and not self._transparent:
                self._buf = ch
            else:
                emit(ch)
            return
        if buf == ESC:
            if ch == "[":
                self._buf = buf + ch
                return
            self._pass(emit, ch)
            return
        query = buf.startswith("\x1b[?")
        if ch in _PARAM_CHARS and not (query and ch == ":"):
            if len(buf) >= _MAX_SEQUENCE:
                self._pass(emit, ch)
            else:
                self._buf = buf + ch
            return
        if ch == "?" and buf == "\x1b[":
            self._buf = buf + ch
            return
        if query:
            self._finish_query(buf[3:], ch, emit)
        elif ch in _KEY_FINALS:
            self._buf = ""
            self._finish_key(buf[2:], ch, emit)
        else:
            if ch == "O" and buf == "\x1b[":  # focus out: a release may never come
                for item in self.release():
                    emit(item)
            self._pass(emit, ch)

    def _pass(self, emit: Any, ch: str) -> None:
        """Not ours: hand the held bytes on, then treat `ch` afresh."""
        emit(self._buf)
        self._buf = ""
        self._step(ch, emit)

    def _finish_query(self, params: str, final: str, emit: Any) -> None:
        if final == "u" and params.isdigit():
            self._buf = ""
            self._flags_seen = True
            report = KittyFlagsReport(int(params))
            self.releases = report.releases
            self._transparent = not report.releases and not self._awaiting_reply
            emit(report)
        elif final == "c" and self._awaiting_reply:
            self._buf = ""
            self._awaiting_reply = False
            self._transparent = not self.releases
            if not self._flags_seen:
                emit(KittyFlagsReport(None))
        else:
            self._pass(emit, final)

    def _finish_key(self, params: str, final: str, emit: Any) -> None:
        fields = params.split(";")
        code_field = fields[0].partition(":")[0]
        event_type = PRESS
        if len(fields) > 1:
            mods_field, _, type_field = fields[1].partition(":")
            fields[1] = mods_field
            if type_field.partition(":")[0].isdigit():
                event_type = int(type_field.partition(":")[0])
        else:
            mods_field = ""
        fields[0] = code_field
        code = int(code_field) if code_field.isdigit() else 1
        modifiers = int(mods_field) - 1 if mods_field.isdigit() and mods_field != "0" else 0
        if self.releases and (code, final) in self.talk_key.keys:
            required = self.talk_key.modifiers
            if event_type == RELEASE and self.held:
                self.held = False
                emit(TalkEdge(False))
                return
            if event_type == REPEAT and self.held:
                return
            if event_type == PRESS and (modifiers & required) == required:
                if not self.held:
                    self.held = True
                    emit(TalkEdge(True))
                return
        if event_type == RELEASE:
            return  # Textual knows no releases; passed on, it would see a second press
        emit("\x1b[" + ";".join(fields) + final)


# ------------------------------------------------------------------ Textual side


class TalkKey(Message):
    """The talk key went down (start transmitting) or up (stop)."""

    def __init__(self, down: bool) -> None:
        super().__init__()
        self.down = down

    def __repr__(self) -> str:
        return f"TalkKey(down={self.down})"


class KeyboardCapabilities(Message):
    """Whether holding the talk key works in this terminal (else offer the toggle)."""

    def __init__(self, releases: bool, flags: int | None = None) -> None:
        super().__init__()
        self.releases = releases
        self.flags = flags

    def __repr__(self) -> str:
        return f"KeyboardCapabilities(releases={self.releases}, flags={self.flags})"


def _to_message(item: TalkEdge | KittyFlagsReport) -> Message:
    if isinstance(item, TalkEdge):
        return TalkKey(item.down)
    return KeyboardCapabilities(item.releases, item.flags)


class KeyInputPipeline:
    """Terminal text to Textual messages: the filter, then Textual's own parser."""

    def __init__(self, talk_key: TalkKeySpec, *, debug: bool = False) -> None:
        self.filter = KittyInputFilter(talk_key)
        self.parser = XTermParser(debug)

    def feed(self, text: str) -> list[Message]:
        return self._messages(self.filter.feed(text))

    def tick(self, *, idle: bool) -> list[Message]:
        """Call regularly; `idle` when nothing was read since the last call."""
        out = self._messages(self.filter.flush()) if idle and self.filter.flushable else []
        return out + list(self.parser.tick())

    def release(self) -> list[Message]:
        return self._messages(self.filter.release())

    def close(self) -> None:
        try:
            for _ in self.parser.feed(""):
                pass
        except (EOFError, ParseError):
            pass

    def _messages(self, items: list[FilterItem]) -> list[Message]:
        out: list[Message] = []
        for item in items:
            if isinstance(item, str):
                out.extend(self.parser.feed(item))
            else:
                out.append(_to_message(item))
        return out


def _make_driver_class(spec: TalkKeySpec) -> type[Driver]:
    """Define the driver; Textual's Linux driver imports termios, so only where asked."""
    from textual.drivers.linux_driver import LinuxDriver

    class ReleaseAwareDriver(LinuxDriver):
        """Textual's Linux driver, plus kitty flag 2 and the talk key's release."""

        talk_key: ClassVar[TalkKeySpec] = spec

        def __init__(self, app: Any, **kwargs: Any) -> None:
            super().__init__(app, **kwargs)
            self.supports_release_events: bool | None = None
            self._pipeline: KeyInputPipeline | None = None  # one per application mode
            self._pushed = False

        def start_application_mode(self) -> None:
            self.supports_release_events = None
            pipeline = self._pipeline = KeyInputPipeline(self.talk_key, debug=self._debug)
            asking = self.input_tty and not constants.DISABLE_KITTY_KEY
            if asking:
                pipeline.filter.expect_query_reply()
            super().start_application_mode()
            if self._writer_thread is None:
                return  # Textual gave up (we were put in the background)
            if not asking:
                pipeline.filter.set_transparent()
                self._deliver([KeyboardCapabilities(False)])
                return
            # Our own stack entry on top of Textual's (both on the alternate screen's
            # stack), then the flags query and primary device attributes: every terminal
            # answers the latter, so an answer to it alone means "no kitty protocol".
            self.write(f"\x1b[>{KITTY_FLAGS}u\x1b[?u\x1b[c")
            self._pushed = True
            self.flush()

        def stop_application_mode(self) -> None:
            if self._pushed:
                self.write("\x1b[<u")  # pop ours; Textual then pops its own
                self._pushed = False
            super().stop_application_mode()
            if self._pipeline is not None:  # the input thread has stopped
                self._deliver(self._pipeline.release())

        def run_input_thread(self) -> None:
            """Textual's input loop, with the filter in front of Textual's parser."""
            selector = selectors.SelectSelector()
            selector.register(self.fileno, selectors.EVENT_READ)
            # "replace": a stray invalid byte must not kill the input thread.
            decode = getincrementaldecoder("utf-8")("replace").decode
            pipeline = self._pipeline
            assert pipeline is not None, "start_application_mode creates it"
            try:
                while not self.exit_event.is_set():
                    timeout = PENDING_FLUSH_S if pipeline.filter.flushable else 0.1
                    ready = selector.select(timeout)
                    data = os.read(self.fileno, 1024 * 4) if ready else b""
                    if ready and not data:  # stdin is a pipe at its end: wait for exit
                        selector.unregister(self.fileno)
                        self._deliver(pipeline.tick(idle=True))
                        self.exit_event.wait()
                        return
                    if data:
                        self._deliver(pipeline.feed(decode(data)))
                    self._deliver(pipeline.tick(idle=not data))
                selector.unregister(self.fileno)
            finally:
                selector.close()
                self._deliver(pipeline.tick(idle=True))
                pipeline.close()

        def _deliver(self, messages: list[Message]) -> None:
            for message in messages:
                if isinstance(message, KeyboardCapabilities):
                    self.supports_release_events = message.releases
                self.process_message(message)

    return ReleaseAwareDriver


_drivers: dict[str, type[Driver]] = {}


def release_aware_driver(talk_key: str = DEFAULT_TALK_KEY) -> type[Driver] | None:
    """A Textual driver class that reports the talk key's press and release, or None on
    platforms without Textual's Linux driver. Raises ValueError for an unknown key name."""
    if sys.platform == "win32":
        return None
    spec = parse_talk_key(talk_key)
    if spec.name not in _drivers:
        _drivers[spec.name] = _make_driver_class(spec)
    return _drivers[spec.name]
