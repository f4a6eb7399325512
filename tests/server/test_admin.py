"""The HTTP side door through a real HTTP client (httpx) against a running server."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.server.admin import AdminApp
from echomesh_trio.server.app import EchoMeshServer, ServerInfo
from echomesh_trio.server.config import ConfigError, Settings
from echomesh_trio.server.voice_control import RelayControl
from tests.server.helpers import connect, join, login, make_settings
from tests.server.test_voice import _talker


async def _admin_server(
    nursery: trio.Nursery, tmp_path: Path, voice: bool = False, **changes: object
) -> tuple[EchoMeshServer, ServerInfo, str]:
    settings = make_settings(tmp_path, admin=True, admin_port=0, **changes)
    server = EchoMeshServer(settings, voice=RelayControl() if voice else None)
    info: ServerInfo = await nursery.start(server.serve)
    assert info.admin_port
    return server, info, f"http://127.0.0.1:{info.admin_port}"


def _metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample of the Prometheus text ``text``."""
    pattern = "^" + re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in the exposition"
    return float(match.group(1))


async def test_health_rooms_and_online_users(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info, base = await _admin_server(nursery, tmp_path)
    alice = await login(info, "alice")
    await join(alice, "lobby", create=True)
    bob = await login(info, "bob")
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/health")
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {
            "status",
            "timestamp",
            "uptime",
            "connections",
            "rooms",
            "activeCalls",
            "userSessions",
        }
        assert body["status"] == "ok" and body["connections"] == 2
        assert body["rooms"] == 1 and body["userSessions"] == 2
        assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
        assert body["uptime"] >= 0

        rooms = (await http.get("/api/rooms")).json()
        assert rooms == {"success": True, "data": [{"name": "lobby", "members": 1}], "total": 1}
        users = (await http.get("/api/online-users", params={"limit": "1"})).json()
        assert users["success"] is True and users["total"] == 2
        assert [u["username"] for u in users["data"]] == ["alice"]  # sorted, limited
        assert users["data"][0]["rooms"] == ["lobby"]
        second = (await http.get("/api/online-users?limit=1&offset=1")).json()
        assert [u["username"] for u in second["data"]] == ["bob"]

        for query in ("limit=abc", "limit=0", "limit=-1", "offset=1e3", "limit=1&limit=2", "x=1"):
            bad = await http.get(f"/api/rooms?{query}")
            assert bad.status_code == 400, query
            assert bad.json()["success"] is False and bad.json()["error"]
        missing = await http.get("/api/nothing")
        assert missing.status_code == 404 and missing.json()["success"] is False
        post = await http.post("/health")
        assert post.status_code == 405
    await bob.aclose()


async def test_metrics_move_with_chat_and_voice(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info, base = await _admin_server(nursery, tmp_path, voice=True)
    async with httpx.AsyncClient(base_url=base) as http:
        before = (await http.get("/metrics")).text
        assert (await http.get("/metrics")).headers["content-type"].startswith("text/plain")
        a = await _talker(info, "ann")
        b = await _talker(info, "ben")
        await join(a.conn, "v", create=True)
        await join(b.conn, "v")
        await a.conn.send(ev.SendChat("v", "hello"))
        await b.conn.receive_matching(ev.ChatMessage)
        await a.say_udp(b"voice from ann")
        await b.hear_udp()
        intruder = await connect(info)
        assert (await intruder.login("ann", "wrong")).status_code == ev.LoginStatus.WRONG_PASSWORD
        after = (await http.get("/metrics")).text

    assert _metric(before, "echomesh_chat_messages_total") == 0
    assert _metric(after, "echomesh_chat_messages_total") == 1
    assert _metric(after, "echomesh_logins_total", 'result="ok"') == 2
    assert _metric(after, "echomesh_logins_total", 'result="wrong_password"') == 1
    assert _metric(after, "echomesh_registrations_total") == 2
    assert _metric(after, "echomesh_connections") == 3
    assert _metric(after, "echomesh_connections_accepted_total") == 3
    assert _metric(after, "echomesh_user_sessions") == 2
    # The voice datagram: hellos, then one voice packet in and one copy out.
    assert _metric(after, "echomesh_voice_packets_received_total") >= 3
    assert _metric(after, "echomesh_voice_packets_forwarded_total") >= 3
    assert _metric(before, "echomesh_voice_packets_received_total") == 0
    assert _metric(after, "echomesh_voice_relay_latency_seconds_count") >= 3
    assert _metric(after, "echomesh_received_bytes_total", 'plane="voice"') > 0
    assert _metric(after, "echomesh_sent_bytes_total", 'plane="voice"') > 0
    assert _metric(after, "echomesh_received_bytes_total", 'plane="control"') > _metric(
        before, "echomesh_received_bytes_total", 'plane="control"'
    )
    assert _metric(after, "echomesh_voice_packets_dropped_total", 'reason="replayed"') == 0
    assert _metric(after, "echomesh_database_seconds_count", 'operation="add_chat"') == 1
    assert "process_cpu_seconds_total" in after


async def test_two_servers_in_one_process_count_separately(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info_a, base_a = await _admin_server(nursery, tmp_path / "a")
    _, _, base_b = await _admin_server(nursery, tmp_path / "b")
    await login(info_a, "alice")
    async with httpx.AsyncClient() as http:
        a = (await http.get(base_a + "/metrics")).text
        b = (await http.get(base_b + "/metrics")).text
    assert _metric(a, "echomesh_logins_total", 'result="ok"') == 1
    assert _metric(b, "echomesh_logins_total", 'result="ok"') == 0


async def test_the_token_guards_everything_but_health(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, _, base = await _admin_server(nursery, tmp_path, admin_token="s3cret-token")
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/health")).status_code == 200
        for path in (
            "/metrics",
            "/api/rooms",
            "/api/online-users",
            "/api/active-calls",
            "/api/call-stats",
        ):
            none = await http.get(path)
            assert none.status_code == 401, path
            assert none.headers["www-authenticate"].startswith("Bearer")
            wrong = await http.get(path, headers={"Authorization": "Bearer s3cret-tokem"})
            assert wrong.status_code == 401
            right = await http.get(path, headers={"Authorization": "Bearer s3cret-token"})
            assert right.status_code == 200


def test_beyond_loopback_needs_a_token() -> None:
    for host in ("0.0.0.0", "192.0.2.10", "::", "echomesh.example"):
        with pytest.raises(ConfigError, match="admin token"):
            Settings(admin_host=host)
        assert Settings(admin_host=host, admin_token="t").admin_host == host
        assert Settings(admin_host=host, admin=False).admin is False
    for host in ("127.0.0.1", "127.8.0.1", "::1", "localhost"):
        assert Settings(admin_host=host).admin_token is None


async def test_health_says_shutting_down_with_503(tmp_path: Path) -> None:
    """The handler in-process (httpx's ASGI transport): a real shutdown is over too soon to
    probe over the network without a timed test. The subprocess tests in test_lifecycle and
    test_operations shut down real servers with the side door on."""
    server = EchoMeshServer(make_settings(tmp_path, admin=True))
    transport = httpx.ASGITransport(app=AdminApp(server, None))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
        assert (await http.get("/health")).json()["status"] == "ok"
        server.request_shutdown()
        r = await http.get("/health")
    assert r.status_code == 503 and r.json()["status"] == "shutting_down"


def test_exposition_parses_and_follows_the_naming_rules() -> None:
    from prometheus_client.openmetrics.exposition import generate_latest
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    from echomesh_trio.server.metrics import ServerMetrics
    from echomesh_trio.voice.relay import VoiceRelay

    metrics = ServerMetrics()
    metrics.relay = VoiceRelay()
    metrics.relay_latency.observe(70_000)
    metrics.observe_database("add_chat", 0.002)
    # OpenMetrics is the stricter parser: it refuses two families of one name.
    families = list(text_string_to_metric_families(generate_latest(metrics.registry).decode()))
    names = {f.name for f in families}
    assert all(n.startswith(("echomesh_", "process_")) for n in names), names
    for family in families:
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        assert not family.name.endswith(("_ms", "_milliseconds", "_kb"))  # base units
    latency = next(f for f in families if f.name == "echomesh_voice_relay_latency_seconds")
    buckets = {s.labels["le"]: s.value for s in latency.samples if s.name.endswith("_bucket")}
    assert buckets["5e-05"] == 0 and buckets["0.0001"] == 1 and buckets["+Inf"] == 1
