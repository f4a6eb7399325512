"""Reconnect: a real server process killed with SIGKILL and started again on the same data
directory and port. Clients reconnect, rejoin and carry on; what was sent during the outage
arrives exactly once; nobody sees members leave and join again."""

from __future__ import annotations

import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio

from bench.common import free_port
from echomesh_trio.client import events as ce
from echomesh_trio.client.core import ClientConfig
from echomesh_trio.protocol import events as ev
from tests.client.test_client import of, online, until, wait_for

CS = ce.ConnectionState


def connected_count(seen: list[ce.ClientEvent]) -> int:
    return len([e for e in of(seen, ce.ConnectionChanged) if e.state is CS.CONNECTED])


def spawn_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "echomesh_trio.cli", "--plaintext",
            "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir), "--password-cost", "10", "--admin-port", "0",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


class ServerProcess:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = spawn_server(self.data_dir, self.port)
        with trio.fail_after(20):
            while True:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                except OSError:
                    await trio.sleep(0.05)
                    continue
                await stream.aclose()
                return

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


async def test_clients_survive_a_server_killed_and_restarted(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", free_port(udp_too=True))
    await server.start()
    try:

        def cfg(user: str) -> ClientConfig:
            return ClientConfig(
                "127.0.0.1", server.port, user, "pw", plaintext=True,
                rooms=["lobby", "second"], first_retry_s=0.3, max_retry_s=1.0,
            )  # fmt: skip

        async with online(cfg("ann")) as (ann, ann_seen), online(cfg("ben")) as (ben, ben_seen):
            await wait_for(ann_seen, ev.MemberJoined, lambda e: e.member.username == "ben")
            await ann.set_active_room("lobby")
            ann.send_chat("lobby", "before")
            await wait_for(ben_seen, ce.ChatReceived, lambda e: e.message.content == "before")
            joins_before = len(of(ann_seen, ev.MemberJoined))

            server.kill()
            await wait_for(ann_seen, ce.ConnectionChanged, lambda e: e.state is CS.RECONNECTING)
            reconnecting = [e for e in of(ann_seen, ce.ConnectionChanged) if e.retry_in_s]
            assert 0 < reconnecting[0].retry_in_s <= 0.3
            during = [ann.send_chat("lobby", f"during {i}") for i in range(3)]
            direct = ann.send_direct("ben", "while you were away")
            assert len(ann.outbox) == 4
            await trio.sleep(1.0)
            await server.start()

            await wait_for(ann_seen, ce.LoggedIn, lambda e: e.resumed)
            await wait_for(ben_seen, ce.LoggedIn, lambda e: e.resumed)
            for seen in (ann_seen, ben_seen):
                await until(lambda seen=seen: connected_count(seen) == 2)
            for i in range(3):
                await wait_for(
                    ben_seen, ce.ChatReceived, lambda e, i=i: e.message.content == f"during {i}"
                )
            await wait_for(
                ben_seen, ce.DirectReceived, lambda e: e.message.content == "while you were away"
            )
            await wait_for(ann_seen, ce.MessageDelivered, lambda e: e.client_msg_id == direct)
            assert len(ann.outbox) == 0
            delivered = [e.client_msg_id for e in of(ann_seen, ce.MessageDelivered)]
            assert delivered.count(direct) == 1 and all(delivered.count(d) == 1 for d in during)

            # Everything back as it was: rooms, active room, members, chat.
            assert ann.rooms == ben.rooms == ("lobby", "second")
            assert ann.active_room == "lobby"
            assert {m.username for m in ben.members("lobby")} == {"ann", "ben"}
            ben.send_chat("second", "after")
            await wait_for(ann_seen, ce.ChatReceived, lambda e: e.message.content == "after")

            # Exactly once: each message once in the log, and once in the history a
            # newcomer gets from the server's database.
            texts = [e.message.content for e in of(ben_seen, ce.ChatReceived)]
            assert texts.count("before") == 1 and all(
                texts.count(f"during {i}") == 1 for i in range(3)
            )
            async with online(cfg("cat")) as (_, cat_seen):
                await wait_for(cat_seen, ce.ChatReceived, lambda e: e.message.content == "during 2")
                history = [e.message.content for e in of(cat_seen, ce.ChatReceived)
                           if e.message.room_id == "lobby"]  # fmt: skip
                assert history == ["before", "during 0", "during 1", "during 2"]
                await wait_for(ann_seen, ev.MemberJoined, lambda e: e.member.username == "cat")

            # No churn: ann saw nobody leave, and only cat join, since the restart.
            assert not [e for e in of(ann_seen, ev.MemberLeft) if e.member.username == "ben"]
            joined_since = of(ann_seen, ev.MemberJoined)[joins_before:]
            assert {e.member.username for e in joined_since} == {"cat"}
            assert [e.room_id for e in of(ann_seen, ce.RoomJoined) if e.rejoined] == [
                "lobby",
                "second",
            ]
    finally:
        server.stop()


async def test_an_unreachable_server_is_reported_and_given_up_at_first(tmp_path: Path) -> None:
    from echomesh_trio.client.core import NotConnected, open_client

    cfg = ClientConfig("127.0.0.1", free_port(), "ann", "pw", plaintext=True)
    async with open_client(cfg) as client:
        with trio.fail_after(5):
            try:
                await client.wait_connected()
            except NotConnected as exc:
                assert "cannot reach 127.0.0.1" in str(exc)
            else:
                raise AssertionError("nobody listens there")
        assert client.state is CS.OFFLINE


async def test_a_server_that_never_answers_the_login_is_given_up_on(
    nursery: trio.Nursery, autojump_clock: object
) -> None:
    from echomesh_trio.client.core import NotConnected, open_client

    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()  # accepts, reads nothing, answers nothing

    [listener] = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    cfg = ClientConfig("127.0.0.1", port, "ann", "pw", plaintext=True)
    async with open_client(cfg) as client:
        start = trio.current_time()
        try:
            await client.wait_connected()
        except NotConnected as exc:
            assert "did not answer the login within 15 s" in str(exc)
        else:
            raise AssertionError("the server never answered")
        assert 15 <= trio.current_time() - start < 16
