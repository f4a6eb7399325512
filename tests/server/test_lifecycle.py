"""TLS and plaintext, persistence across restarts, and shutdown on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from echomesh_trio.client.control import ConnectionClosed, ControlConnection
from echomesh_trio.protocol import events as ev
from echomesh_trio.server.tlscert import fingerprint
from tests.server.helpers import join, login, make_settings, start_server


async def test_tls_by_default_with_a_pinnable_self_signed_certificate(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path, plaintext=False))
    assert info.tls and info.cert_path is not None
    assert info.fingerprint == fingerprint(Path(info.cert_path))
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", info.fingerprint or "")
    alice = await login(info, "alice")  # connects with the pinned certificate
    await join(alice, "secure", create=True)
    await alice.send(ev.SendChat("secure", "over TLS"))
    assert (await alice.receive_matching(ev.ChatMessage)).content == "over TLS"
    # A plaintext client cannot talk to the TLS port; the server survives it.
    plain = await ControlConnection.connect("127.0.0.1", info.port)
    await plain.send(ev.Login("mallory", "pw"))
    with trio.fail_after(5), pytest.raises(ConnectionClosed):
        await plain.receive()
    bob = await login(info, "bob")  # login() asserts success
    await bob.send(ev.ListRooms())
    assert (await bob.receive_matching(ev.RoomListing)).rooms == (ev.RoomInfo("secure", 1),)


async def test_the_same_certificate_is_reused_after_a_restart(tmp_path: Path) -> None:
    fingerprints = []
    for _ in range(2):
        async with trio.open_nursery() as nursery:
            server, info = await start_server(nursery, make_settings(tmp_path, plaintext=False))
            fingerprints.append(info.fingerprint)
            server.request_shutdown()
    assert fingerprints[0] == fingerprints[1]
    key = tmp_path / "tls" / "server-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600


async def test_history_and_rooms_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with trio.open_nursery() as nursery:
        server, info = await start_server(nursery, settings)
        alice = await login(info, "alice")
        await join(alice, "keep", create=True)
        for text in ("first", "second"):
            await alice.send(ev.SendChat("keep", text))
            await alice.receive_matching(ev.ChatMessage)
        server.request_shutdown()
        goodbye = await alice.receive_matching(ev.Goodbye)
        assert goodbye.reason == ev.GoodbyeReason.SHUTDOWN
    async with trio.open_nursery() as nursery:
        server, info = await start_server(nursery, settings)
        bob = await login(info, "bob")
        await join(bob, "keep")  # the room still exists
        history = await bob.receive_matching(ev.HistoryBatch)
        assert [m.content for m in history.messages] == ["first", "second"]
        again = await (await ControlConnection.connect("127.0.0.1", info.port)).login("alice", "x")
        assert again.status_code == ev.LoginStatus.WRONG_PASSWORD  # alice is still registered
        server.request_shutdown()


def _start_process(data_dir: Path) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, ECHOMESH_PASSWORD_COST="10", ECHOMESH_PLAINTEXT="true")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "echomesh_trio.cli"),
            *("--port", "0", "--admin-port", "0", "--data-dir", str(data_dir)),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(plaintext\)", line)
        if match:
            return proc, int(match.group(1))
    raise AssertionError(f"server did not start (exit {proc.wait()})")


async def test_sigterm_says_goodbye_and_leaves_the_database_intact(tmp_path: Path) -> None:
    proc, port = _start_process(tmp_path)
    try:
        conn = await ControlConnection.connect("127.0.0.1", port)
        assert (await conn.login("alice", "pw")).ok
        await join(conn, "r", create=True)
        await conn.send(ev.SendChat("r", "written before shutdown", client_msg_id="w1"))
        await conn.receive_matching(ev.ChatMessage)
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            goodbye = await conn.receive_matching(ev.Goodbye)
        assert goodbye.reason == ev.GoodbyeReason.SHUTDOWN
        code = await trio.to_thread.run_sync(proc.wait, 10)
        assert code == 0
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert "received SIGTERM" in log and "database closed" in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    db = sqlite3.connect(tmp_path / "echomesh.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT content FROM chat").fetchall() == [("written before shutdown",)]
    db.close()


async def test_a_request_sent_with_the_end_of_the_tls_handshake_is_answered(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    import ssl

    from echomesh_trio.protocol.codec import decode_notice, request_frame
    from echomesh_trio.protocol.framing import FrameDecoder
    from echomesh_trio.server.tlscert import pinned_client_context

    _, info = await start_server(nursery, make_settings(tmp_path, plaintext=False))
    assert info.cert_path is not None
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", info.port))

    async def send_all(data: bytes) -> None:
        while data:
            data = data[await sock.send(data) :]

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = pinned_client_context(Path(info.cert_path)).wrap_bio(
        incoming, outgoing, server_hostname="127.0.0.1"
    )
    with trio.fail_after(5):
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await send_all(outgoing.read())
                incoming.write(await sock.recv(65536))
        # The client's last handshake flight and its login leave in one segment.
        tls.write(request_frame(ev.Login("tina", "pw")))
        await send_all(outgoing.read())
        decoder = FrameDecoder()
        while True:
            incoming.write(await sock.recv(65536))
            try:
                plain = tls.read(65536)
            except ssl.SSLWantReadError:
                continue
            notices = [decode_notice(body).event for body in decoder.feed(plain)]
            results = [n for n in notices if isinstance(n, ev.LoginResult)]
            if results:
                assert results[0].ok
                break
    sock.close()


async def test_own_certificate_and_key(nursery: trio.Nursery, tmp_path: Path) -> None:
    from echomesh_trio.server.tlscert import ensure_self_signed

    cert, key = ensure_self_signed(tmp_path / "mine", common_name="chat.example")
    settings = make_settings(tmp_path / "data", plaintext=False, cert=cert, key=key)
    _, info = await start_server(nursery, settings)
    assert info.fingerprint == fingerprint(cert) and info.cert_path == str(cert)
    assert not (tmp_path / "data" / "tls").exists()  # nothing generated
    assert (await login(info, "alice")).stream is not None


async def test_connect_login_and_disconnect_are_logged_with_reasons(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="echomesh.server")
    server, info = await start_server(nursery, make_settings(tmp_path))
    alice = await login(info, "alice")
    await alice.aclose()
    with trio.fail_after(5):
        await server.wait_connections(0)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("connect from 127.0.0.1") for line in lines)
    assert any(line.startswith("login alice (id ") for line in lines)
    assert any(
        line.startswith("disconnect 127.0.0.1 (alice): closed by client") for line in lines
    ), lines
