"""ControlConnection against the real server: concurrent senders, no notice lost, and a
typed end with the server's goodbye."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from echomesh_trio.client.control import ConnectionClosed, RequestRefused
from echomesh_trio.protocol import events as ev
from tests.server.helpers import join, login, make_settings, start_server


async def test_many_tasks_may_send_at_once(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    conn = await login(info, "alice")
    big = "x" * 4000  # frames large enough that a send_all can be split by the kernel

    async def sender(k: int) -> None:
        for i in range(20):
            await conn.send(ev.SetTyping(big, True) if i % 2 else ev.Ping(nonce=k * 100 + i))

    async with trio.open_nursery() as senders:
        for k in range(10):
            senders.start_soon(sender, k)
    # Every frame arrived whole: 100 pongs, 100 errors, and the connection is still open.
    pongs, errors = set(), 0
    with trio.fail_after(10):
        while len(pongs) < 100 or errors < 100:
            event = (await conn.receive()).event
            if isinstance(event, ev.Pong):
                pongs.add(event.nonce)
            elif isinstance(event, ev.ErrorReply):
                errors += 1
    assert pongs == {k * 100 + i for k in range(10) for i in range(0, 20, 2)}


async def test_notices_passed_over_are_kept_in_order(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    conn = await login(info, "alice")
    await join(conn, "r", create=True)
    for text in ("one", "two", "three"):
        await conn.send(ev.SendChat("r", text))
    rid = await conn.request(ev.Ping(nonce=7))
    pong = await conn.receive_matching(ev.Pong, request_id=rid)
    assert pong.nonce == 7
    # The chat echoes that arrived before the pong are all still there, in order.
    texts = []
    while len(texts) < 3:
        event = (await conn.receive()).event
        if isinstance(event, ev.ChatMessage):
            texts.append(event.content)
    assert texts == ["one", "two", "three"]


async def test_request_ids_are_fresh_and_never_zero(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    conn = await login(info, "alice")
    conn._last_request_id = 0xFFFF_FFFF - 1  # near the wrap
    ids = [conn.next_request_id() for _ in range(3)]
    assert ids == [0xFFFF_FFFF, 1, 2]


async def test_the_end_carries_the_servers_goodbye(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    first = await login(info, "alice")
    await login(info, "alice")  # the same user again: the first session is replaced
    with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
        while True:
            await first.receive()
    assert closed.value.goodbye is not None
    assert closed.value.goodbye.reason == ev.GoodbyeReason.REPLACED
    assert "REPLACED" in str(closed.value)
    await first.aclose()
    with pytest.raises(ConnectionClosed) as after:  # sending on a closed connection, too
        await first.send(ev.Ping())
    assert after.value.goodbye is not None  # still says why it ended


async def test_a_second_login_on_one_connection_is_refused_not_hung(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path))
    conn = await login(info, "alice")
    with trio.fail_after(5), pytest.raises(RequestRefused) as refused:
        await conn.login("alice", "secret")
    assert refused.value.reply.code == ev.ErrorCode.ALREADY_LOGGED_IN
