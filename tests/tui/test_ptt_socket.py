"""The hold-to-talk control socket: the line parser and talk state (pure, hypothesis) and
the Trio adapter over real Unix sockets (each test is one ``trio.run``: tests/tui is an
asyncio directory)."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import outcome
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from tui_client.ptt_socket import (
    MAX_BAD_LINES,
    MAX_LINE_BYTES,
    BadLine,
    Command,
    LineTooLong,
    PttLineParser,
    PttSocketInUse,
    PttState,
    serve_ptt_socket,
)

# ---------------------------------------------------------------------------- parser


def _feed_chunks(chunks: list[bytes]) -> list[Command | BadLine]:
    parser = PttLineParser()
    out: list[Command | BadLine] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out + parser.end()


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


spacing = st.text(alphabet=" \t\r", max_size=4)


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[bytes, Command]:
    cmd = draw(st.sampled_from(list(Command)))
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in cmd.value)
    return f"{draw(spacing)}{cased}{draw(spacing)}\n".encode(), cmd


@given(st.lists(command_lines(), max_size=20), st.lists(st.integers(0, 10_000), max_size=8))
def test_commands_parse_in_any_case_spacing_and_chunking(
    lines: list[tuple[bytes, Command]], cuts: list[int]
) -> None:
    data = b"".join(raw for raw, _ in lines)
    assert _feed_chunks(_split(data, cuts)) == [cmd for _, cmd in lines]


@given(st.binary(max_size=2000), st.lists(st.integers(0, 10_000), max_size=8))
def test_any_bytes_parse_or_raise_line_too_long_whatever_the_chunking(
    data: bytes, cuts: list[int]
) -> None:
    try:
        whole = _feed_chunks([data])
    except LineTooLong:
        with pytest.raises(LineTooLong):
            _feed_chunks(_split(data, cuts))
        return
    assert _feed_chunks(_split(data, cuts)) == whole
    assert all(isinstance(item, Command | BadLine) for item in whole)


def test_unknown_blank_and_unterminated_lines() -> None:
    parser = PttLineParser()
    assert parser.feed(b"\n  \r\nDOWN\r\nshout\nu") == [Command.DOWN, BadLine("shout")]
    assert parser.end() == [BadLine("u")]
    assert b"error: unknown command 'shout'" in BadLine("shout").reply()


def test_a_line_over_the_limit_is_refused_before_its_newline() -> None:
    parser = PttLineParser()
    parser.feed(b"x" * MAX_LINE_BYTES)
    with pytest.raises(LineTooLong):
        parser.feed(b"x")
    with pytest.raises(LineTooLong):
        PttLineParser().feed(b"y" * (MAX_LINE_BYTES + 1) + b"\ndown\n")


# ----------------------------------------------------------------------------- state


def test_state_holds_per_connection_and_up_ends_everything() -> None:
    s = PttState()
    assert s.apply(1, Command.DOWN) == (True, set())
    assert s.apply(2, Command.DOWN) == (True, set())
    assert s.disconnect(2) is None  # 1 still holds
    assert s.talking
    assert s.apply(3, Command.UP) == (False, {1})
    assert not s.talking
    assert s.disconnect(1) is None


def test_toggle_latches_beyond_its_connection_and_stops_holds() -> None:
    s = PttState()
    assert s.apply(1, Command.TOGGLE) == (True, set())
    assert s.disconnect(1) is None
    assert s.talking
    assert s.apply(2, Command.TOGGLE) == (False, set())
    s.apply(3, Command.DOWN)
    assert s.apply(4, Command.TOGGLE) == (False, {3})


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([*Command, None])), max_size=40))
def test_state_tells_on_talk_what_it_becomes(ops: list[tuple[int, Command | None]]) -> None:
    """Whatever happens, the last value told agrees with `talking`, and once every
    connection is gone only a toggle latch can keep the mic open."""
    s = PttState()
    told: list[bool] = []
    for conn, cmd in ops:
        value = s.disconnect(conn) if cmd is None else s.apply(conn, cmd)[0]
        if value is not None:
            told.append(value)
        if told:
            assert told[-1] == s.talking
        elif s.talking:
            pytest.fail("talking without having said so")
    for conn in range(4):
        value = s.disconnect(conn)
        if value is not None:
            told.append(value)
    assert s.talking == (bool(told) and told[-1])
    assert not any(s.holding(c) for c in range(4))


# ------------------------------------------------------------------- trio adapter


class Calls(list[bool]):
    """What on_talk was told, with a way to wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = trio.Event()

    def __call__(self, value: bool) -> None:
        self.append(value)
        self._changed.set()
        self._changed = trio.Event()

    async def wait(self, n: int) -> None:
        while len(self) < n:
            await self._changed.wait()


def _run(test: Callable[[Path, Calls], Awaitable[None]], tmp_path: Path) -> list[bool]:
    """Serve on a socket in tmp_path, run `test`, stop the server; returns on_talk calls."""
    calls = Calls()
    path = tmp_path / "ptt.sock"

    async def main() -> None:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                bound = await nursery.start(serve_ptt_socket, path, calls)
                assert bound == path
                await test(path, calls)
                nursery.cancel_scope.cancel()

    trio.run(main)
    return calls


async def _connect(path: Path) -> trio.SocketStream:
    return await trio.open_unix_socket(os.fspath(path))


async def _read_line(stream: trio.SocketStream) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    return data


def _listing(path: Path) -> tuple[int, list[str]]:
    return path.lstat().st_mode, [p.name for p in path.parent.iterdir()]


def test_socket_is_0600_and_removed_on_exit(tmp_path: Path) -> None:
    async def test(path: Path, calls: Calls) -> None:
        mode, names = _listing(path)
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        assert names == ["ptt.sock"]

    _run(test, tmp_path)
    assert not (tmp_path / "ptt.sock").exists()


def test_down_up_toggle_from_several_clients(tmp_path: Path) -> None:
    async def test(path: Path, calls: Calls) -> None:
        a = await _connect(path)
        b = await _connect(path)
        await a.send_all(b"  Down \r\n")
        await calls.wait(1)
        await b.send_all(b"TOGGLE\n")  # talking: toggle stops it and ends a's hold
        assert await _read_line(a) == b"released\n"
        assert await a.receive_some(10) == b""  # and a is closed
        await b.send_all(b"toggle\n")
        await calls.wait(3)
        await b.send_all(b"up\n")
        await calls.wait(4)
        await b.aclose()

    assert _run(test, tmp_path) == [True, False, True, False]


def test_unknown_lines_get_an_error_and_the_connection_stays(tmp_path: Path) -> None:
    async def test(path: Path, calls: Calls) -> None:
        s = await _connect(path)
        await s.send_all(b"talk please\n")
        assert (await _read_line(s)).startswith(b"error: unknown command 'talk please'")
        await s.send_all(b"down\n")
        await calls.wait(1)
        await s.aclose()
        await calls.wait(2)

    assert _run(test, tmp_path) == [True, False]


def test_a_client_that_disconnects_while_holding_releases(tmp_path: Path) -> None:
    async def test(path: Path, calls: Calls) -> None:
        holder = await _connect(path)
        other = await _connect(path)
        await holder.send_all(b"down\n")
        await other.send_all(b"down\n")
        await calls.wait(2)
        await other.aclose()  # holder still holds: nothing told
        await holder.send_all(b"down\n")
        await calls.wait(3)
        holder.socket.close()  # abrupt, as when the process dies
        await calls.wait(4)

    assert _run(test, tmp_path) == [True, True, True, False]


def test_a_flooding_client_is_closed_and_releases(tmp_path: Path) -> None:
    async def test(path: Path, calls: Calls) -> None:
        s = await _connect(path)
        await s.send_all(b"down\n")
        await calls.wait(1)
        with pytest.raises(trio.BrokenResourceError):
            for _ in range(1000):
                await s.send_all(b"a" * 4096)  # no newline, ever
        await calls.wait(2)
        g = await _connect(path)
        await g.send_all(b"?\n" * (MAX_BAD_LINES + 5))
        replies = b""
        while chunk := await g.receive_some(65536):
            replies += chunk
        assert replies.count(b"\n") == MAX_BAD_LINES
        assert replies.endswith(b"too many unknown commands; closing\n")

    assert _run(test, tmp_path) == [True, False]


def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "ptt.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.fspath(path))
    stale.close()  # the file stays, nobody listens: a dead process's socket
    assert path.exists()

    async def test(path: Path, calls: Calls) -> None:
        with pytest.raises(PttSocketInUse, match="in use by another running process"):
            await serve_ptt_socket(path, calls)
        assert _listing(path)[1] == ["ptt.sock"]  # the refusal left the live socket alone

    _run(test, tmp_path)

    path.write_text("not a socket")
    with pytest.raises(PttSocketInUse, match="not a socket"):
        trio.run(serve_ptt_socket, path, print)
    assert path.read_text() == "not a socket"


def test_an_impossible_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "ptt.sock"
    with pytest.raises(OSError, match=r"cannot create the socket .*no-such-dir"):
        trio.run(serve_ptt_socket, missing, print)
    with pytest.raises(ValueError, match="too long"):
        trio.run(serve_ptt_socket, tmp_path / ("x" * 120), print)


def test_the_send_helper_holds_until_released(tmp_path: Path) -> None:
    """`send down` stays connected until `send up`, as a key press / release pair runs."""
    cli = [sys.executable, "-m", "tui_client.ptt_socket", "send"]

    async def test(path: Path, calls: Calls) -> None:
        async with trio.open_nursery() as nursery:
            down = await nursery.start(
                functools.partial(
                    trio.run_process,
                    [*cli, "down", os.fspath(path)],
                    check=False,
                    capture_stderr=True,
                )
            )
            await calls.wait(1)
            up = await trio.run_process([*cli, "UP", os.fspath(path)], capture_stderr=True)
            assert up.returncode == 0, up.stderr
            assert await down.wait() == 0
        bad = await trio.run_process(
            [*cli, "toggle", os.fspath(path / "nope")], check=False, capture_stderr=True
        )
        assert bad.returncode == 1
        assert b"cannot connect" in bad.stderr

    assert _run(test, tmp_path) == [True, False]


def test_killing_the_send_down_helper_releases(tmp_path: Path) -> None:
    async def test(path: Path, calls: Calls) -> None:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tui_client.ptt_socket", "send", "down", os.fspath(path)]
        )
        await calls.wait(1)
        proc.kill()
        await proc.wait()
        await calls.wait(2)

    assert _run(test, tmp_path) == [True, False]


def test_send_helper_reports_server_errors() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tui_client.ptt_socket", "send", "shout", "/nonexistent"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


def test_it_serves_from_a_trio_guest_run_on_asyncio(tmp_path: Path) -> None:
    """As in the app: Trio in guest mode on an asyncio loop, a client on the asyncio side."""

    path = tmp_path / "ptt.sock"
    told: list[bool] = []

    async def host() -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[None]] = loop.create_future()
        listening = asyncio.Event()
        talked = asyncio.Event()
        scope = trio.CancelScope()

        def on_talk(value: bool) -> None:
            told.append(value)
            if len(told) == 2:
                talked.set()

        async def guest() -> None:
            with scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(serve_ptt_socket, path, on_talk)
                    listening.set()

        trio.lowlevel.start_guest_run(
            guest,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=done.set_result,
            host_uses_signal_set_wakeup_fd=False,
        )
        async with asyncio.timeout(30):
            await listening.wait()
            _, writer = await asyncio.open_unix_connection(os.fspath(path))
            writer.write(b"down\n")
            await writer.drain()
            writer.close()  # disconnecting while holding releases
            await talked.wait()
            scope.cancel()
            (await done).unwrap()  # the guest run ended cleanly

    asyncio.run(host())
    assert told == [True, False]
    assert not path.exists()
