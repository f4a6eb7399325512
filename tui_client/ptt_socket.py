"""True hold-to-talk through a local control socket, for desktop hotkey tools.

Terminals deliver key presses, not releases, so a hotkey daemon (xbindkeys, sxhkd, sway)
that sees both drives the client over a Unix socket instead: each client sends lines
``down``, ``up`` or ``toggle`` (case-insensitive, surrounding whitespace ignored, empty
lines skipped). See docs/TUI-PTT.md for recipes.

Semantics (:class:`PttState`, pure):

- ``down`` holds the microphone open *for as long as that connection stays open*: a client
  that disconnects while holding releases, so a crashed helper never leaves the mic open.
- ``up`` stops talking, whoever started it: every hold and the toggle latch end. Other
  connections whose hold it ended get a ``released`` line and are closed (that is how the
  ``send down`` helper of a key press learns that the key's release has been handled).
- ``toggle`` flips talking on or off; switched on, it latches (it outlives its connection).

``on_talk(True)`` is called for every ``down``, ``on_talk(False)`` for every ``up`` (they
assert a state, so an app whose own toggle key changed it meanwhile still obeys), and
``toggle`` or a release by disconnection call it when the talking state changes.

Unknown lines get ``error: ...`` back and the connection stays. A line longer than
:data:`MAX_LINE_BYTES`, or :data:`MAX_BAD_LINES` unknown lines in a row, close that client.

Run ``python -m tui_client.ptt_socket send down|up|toggle [PATH]`` for a socat-free client.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import itertools
import os
import socket
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

__all__ = [
    "MAX_BAD_LINES",
    "MAX_LINE_BYTES",
    "BadLine",
    "Command",
    "LineTooLong",
    "PttLineParser",
    "PttSocketInUse",
    "PttState",
    "default_ptt_socket_path",
    "main",
    "send_command",
    "serve_ptt_socket",
]

# The longest command is "toggle"; 256 bytes leave room for whitespace and CRLF while a
# client that streams without newlines is cut off after one small buffer.
MAX_LINE_BYTES = 256
# A client that only sends garbage (and perhaps never reads our replies) is closed.
MAX_BAD_LINES = 32
# Linux sun_path is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
# How long a reply or the goodbye line may take to a client that does not read.
_SEND_BUDGET_S = 1.0


class Command(enum.Enum):
    """A valid line from a client."""

    DOWN = "down"
    UP = "up"
    TOGGLE = "toggle"


@dataclass(frozen=True)
class BadLine:
    """A line that is not a command (the client's fault; it gets an error line back)."""

    text: str

    def reply(self) -> bytes:
        shown = self.text if len(self.text) <= 40 else self.text[:40] + "..."
        return f"error: unknown command {shown!r} (expected down, up or toggle)\n".encode()


class LineTooLong(Exception):
    """The client sent more than MAX_LINE_BYTES without a newline (remote error)."""


class PttLineParser:
    """Splits a client's byte stream into commands; sans-IO, one per connection."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Command | BadLine]:
        """Parse what arrived; raises LineTooLong once a line exceeds the limit."""
        self._buffer += data
        *lines, rest = self._buffer.split(b"\n")
        if len(rest) > MAX_LINE_BYTES:
            raise LineTooLong(f"line longer than {MAX_LINE_BYTES} bytes")
        self._buffer = bytearray(rest)
        out: list[Command | BadLine] = []
        for raw in lines:
            if len(raw) > MAX_LINE_BYTES:
                raise LineTooLong(f"line longer than {MAX_LINE_BYTES} bytes")
            item = parse_line(raw)
            if item is not None:
                out.append(item)
        return out

    def end(self) -> list[Command | BadLine]:
        """The client closed: a last line without a newline still counts."""
        raw, self._buffer = bytes(self._buffer), bytearray()
        item = parse_line(raw)
        return [] if item is None else [item]


def parse_line(raw: bytes | bytearray) -> Command | BadLine | None:
    """One line (without its newline) to a command; None for a blank line."""
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        return Command(text.lower())
    except ValueError:
        return BadLine(text)


class PttState:
    """Who holds the microphone open: per-connection holds plus a toggle latch. No I/O."""

    def __init__(self) -> None:
        self._holders: set[int] = set()
        self._latched = False

    @property
    def talking(self) -> bool:
        return self._latched or bool(self._holders)

    def holding(self, conn: int) -> bool:
        return conn in self._holders

    def apply(self, conn: int, command: Command) -> tuple[bool | None, set[int]]:
        """Apply a command from connection `conn`.

        Returns what to tell `on_talk` (None: nothing) and the other connections whose hold
        this ended (to be told ``released`` and closed).
        """
        if command is Command.DOWN:
            self._holders.add(conn)
            return True, set()
        if command is Command.UP:
            ended = self._holders - {conn}
            self._holders.clear()
            self._latched = False
            return False, ended
        if self.talking:
            ended = self._holders - {conn}
            self._holders.clear()
            self._latched = False
            return False, ended
        self._latched = True
        return True, set()

    def disconnect(self, conn: int) -> bool | None:
        """Connection `conn` is gone; returns False if that ended the talking, else None."""
        if conn not in self._holders:
            return None
        self._holders.discard(conn)
        return None if self.talking else False


class PttSocketInUse(Exception):
    """Another live process already serves the socket path (or it is not a socket)."""


def default_ptt_socket_path() -> Path:
    """``$XDG_RUNTIME_DIR/echomesh-ptt.sock``, else a per-user name in the temp directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "echomesh-ptt.sock"
    return Path(tempfile.gettempdir()) / f"echomesh-ptt-{os.getuid()}.sock"


def _check_path(path: Path) -> None:
    """Refuse a live socket or a non-socket; remove a stale socket of a dead process."""
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise ValueError(f"socket path too long for a Unix socket (max {_MAX_SOCKET_PATH}): {path}")
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise PttSocketInUse(f"{path} exists and is not a socket; not touching it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # stale: nobody listens any more
        return
    except OSError as exc:
        raise PttSocketInUse(f"cannot tell whether {path} is in use: {exc}") from exc
    finally:
        probe.close()
    raise PttSocketInUse(
        f"{path} is in use by another running process (another echomesh-tui?); "
        "choose another --ptt-socket path or stop that process"
    )


def _bind(path: Path) -> tuple[trio.socket.SocketType, tuple[int, int]]:
    """Bind a listening socket at `path`, mode 0600 from the first moment it is reachable.

    The socket is bound under a temporary name, chmod'ed, then renamed into place, so the
    final path never exists with the umask's permissions.
    """
    _check_path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if len(os.fsencode(tmp)) > _MAX_SOCKET_PATH:
        tmp = path  # no room for the temporary name: bind in place, then chmod
    with contextlib.suppress(FileNotFoundError):
        if tmp != path:
            tmp.unlink()
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    placed = False
    try:
        try:
            raw.bind(os.fspath(tmp))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot create the socket {path}: {exc.strerror}") from exc
        os.chmod(tmp, 0o600)
        if tmp != path:
            os.rename(tmp, path)
        placed = True
        raw.listen(16)
        st = path.stat()
        return trio.socket.from_stdlib_socket(raw), (st.st_dev, st.st_ino)
    except BaseException:
        raw.close()
        with contextlib.suppress(OSError):
            (path if placed else tmp).unlink()
        raise


def _remove_if_ours(path: Path, identity: tuple[int, int]) -> None:
    """Unlink the socket file unless another process has replaced it meanwhile."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if (st.st_dev, st.st_ino) == identity:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class _Client:
    def __init__(self, conn: int, stream: trio.SocketStream) -> None:
        self.conn = conn
        self.stream = stream
        self.scope = trio.CancelScope()
        self.evicted = False


async def serve_ptt_socket(
    path: Path,
    on_talk: Callable[[bool], None],
    *,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve hold-to-talk commands on the Unix socket `path` until cancelled.

    Reports the bound path through `task_status`. Raises PttSocketInUse if another live
    process serves `path`. The socket file is removed on exit.
    """
    path = Path(path)
    listener, identity = _bind(path)
    state = PttState()
    clients: dict[int, _Client] = {}
    ids = itertools.count(1)

    def tell(value: bool | None) -> None:
        if value is not None:
            on_talk(value)

    async def serve_client(client: _Client) -> None:
        parser = PttLineParser()
        bad_lines = 0
        goodbye = b""
        try:
            with client.scope:
                while True:
                    try:
                        data = await client.stream.receive_some(4096)
                    except trio.BrokenResourceError:
                        data = b""
                    try:
                        items = parser.feed(data) if data else parser.end()
                    except LineTooLong as exc:
                        goodbye = f"error: {exc}; closing\n".encode()
                        return
                    for item in items:
                        if isinstance(item, BadLine):
                            bad_lines += 1
                            if bad_lines >= MAX_BAD_LINES:
                                goodbye = b"error: too many unknown commands; closing\n"
                                return
                            with trio.move_on_after(_SEND_BUDGET_S) as budget:
                                await client.stream.send_all(item.reply())
                            if budget.cancelled_caught:
                                return  # it does not read its replies
                            continue
                        bad_lines = 0
                        value, ended = state.apply(client.conn, item)
                        for other in ended:
                            clients[other].evicted = True
                            clients[other].scope.cancel()
                        tell(value)
                    if not data:
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            del clients[client.conn]
            tell(state.disconnect(client.conn))
            if client.evicted:
                goodbye = b"released\n"
            with trio.CancelScope(shield=True), trio.move_on_after(_SEND_BUDGET_S):
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    if goodbye:
                        await client.stream.send_all(goodbye)
                await client.stream.aclose()

    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            while True:
                sock, _ = await listener.accept()
                client = _Client(next(ids), trio.SocketStream(sock))
                clients[client.conn] = client
                nursery.start_soon(serve_client, client)
    finally:
        listener.close()
        _remove_if_ours(path, identity)


def send_command(command: str, path: Path) -> int:
    """Send one command (blocking, stdlib only); returns a process exit status.

    ``down`` stays connected, holding, until the server says ``released`` (some client sent
    ``up``) or closes, or this process is interrupted or killed; the server releases then.
    """
    try:
        cmd = Command(command.strip().lower())
    except ValueError:
        print(f"unknown command {command!r} (expected down, up or toggle)", file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(os.fspath(path))
        except OSError as exc:
            print(f"cannot connect to {path}: {exc.strerror or exc}", file=sys.stderr)
            print("is echomesh-tui running with --ptt-socket?", file=sys.stderr)
            return 1
        sock.sendall(f"{cmd.value}\n".encode())
        if cmd is not Command.DOWN:
            sock.shutdown(socket.SHUT_WR)
        status = 0
        with contextlib.suppress(KeyboardInterrupt), sock.makefile("rb") as replies:
            for line in replies:
                text = line.decode("utf-8", "replace").strip()
                if text.startswith("error"):
                    print(text, file=sys.stderr)
                    status = 1
                if text == "released":
                    break
        return status
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.ECONNRESET):
            return 0
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m tui_client.ptt_socket send down|up|toggle [PATH]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tui_client.ptt_socket",
        description="Drive echomesh-tui's hold-to-talk socket (see docs/TUI-PTT.md).",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    send = sub.add_parser("send", help="send down, up or toggle")
    send.add_argument("command", type=str.lower, choices=[c.value for c in Command])
    send.add_argument("path", nargs="?", type=Path, default=None, help="socket path")
    args = parser.parse_args(argv)
    if args.action == "send":
        return send_command(args.command, args.path or default_ptt_socket_path())
    return 2  # pragma: no cover (argparse requires an action)


if __name__ == "__main__":
    sys.exit(main())
