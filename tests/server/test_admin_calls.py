"""Calls and moderation on the HTTP side door (httpx against a running server):
``activeCalls`` in /health, /api/active-calls, /api/call-stats, and their metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from echomesh_trio.protocol import events as ev
from tests.server.helpers import connect, login
from tests.server.test_admin import _admin_server, _metric
from tests.server.test_calls import _connect, _records, _ring
from tests.server.test_voice import _talker


async def test_calls_in_health_api_and_metrics(nursery: trio.Nursery, tmp_path: Path) -> None:
    server, info, base = await _admin_server(nursery, tmp_path, voice=True, admins=("root",))
    ann, ben, cat = [await _talker(info, n) for n in ("ann", "ben", "cat")]
    async with httpx.AsyncClient(base_url=base) as http:
        before = (await http.get("/metrics")).text
        assert (await http.get("/health")).json()["activeCalls"] == 0
        assert (await http.get("/api/active-calls")).json() == {
            "success": True,
            "data": [],
            "total": 0,
        }
        call_id = await _connect(ann, ben)
        dan = await _talker(info, "dan")
        await _ring(cat, dan)  # a second call, still ringing
        assert (await http.get("/health")).json()["activeCalls"] == 2
        active = (await http.get("/api/active-calls")).json()
        assert active["success"] is True and active["total"] == 2
        first = active["data"][0]
        assert (first["callId"], first["caller"], first["callee"]) == (call_id, "ann", "ben")
        assert first["state"] == "connected" and first["answeredMs"] >= first["requestedMs"]
        assert active["data"][1]["state"] == "ringing" and active["data"][1]["answeredMs"] is None
        page = (await http.get("/api/active-calls?limit=1&offset=1")).json()
        assert [c["caller"] for c in page["data"]] == ["cat"] and page["total"] == 2
        during = (await http.get("/metrics")).text

        await ann.conn.send(ev.HangUp())
        await ben.conn.receive_matching(ev.CallEnded)
        await cat.conn.send(ev.HangUp())
        await cat.conn.receive_matching(ev.CallEnded)
        await _records(server)
        stats = (await http.get("/api/call-stats", params={"limit": "1"})).json()
        assert stats["success"] is True and stats["total"] == 2
        [newest] = stats["data"]
        assert (newest["caller"], newest["callee"], newest["endReason"]) == (
            "cat",
            "dan",
            "hung_up",
        )
        assert newest["answeredMs"] is None and newest["durationMs"] == 0
        both = (await http.get("/api/call-stats")).json()["data"]
        assert [r["caller"] for r in both] == ["cat", "ann"]
        assert both[1]["durationMs"] >= 0 and both[1]["answeredMs"] is not None
        for query in ("limit=0", "limit=1001", "limit=x", "offset=1", "limit=1&limit=2"):
            bad = await http.get(f"/api/call-stats?{query}")
            assert bad.status_code == 400, query
            assert bad.json()["success"] is False
        assert (await http.get("/api/active-calls?limit=0")).status_code == 400

        root = await login(info, "root")
        await root.send(ev.Ban("cat", reason="x"), 9)
        await root.receive_matching(ev.ModerationDone, request_id=9)
        banned = await (await connect(info)).login("cat", "pw")
        assert banned.status_code == ev.LoginStatus.FORBIDDEN
        after = (await http.get("/metrics")).text

    assert _metric(before, "echomesh_active_calls") == 0
    assert _metric(during, "echomesh_active_calls") == 2
    assert _metric(after, "echomesh_active_calls") == 0
    assert _metric(before, "echomesh_calls_total", 'reason="hung_up"') == 0
    assert _metric(after, "echomesh_calls_total", 'reason="hung_up"') == 2
    assert _metric(after, "echomesh_calls_total", 'reason="busy"') == 0
    assert _metric(after, "echomesh_moderation_actions_total", 'kind="ban"') == 1
    assert _metric(after, "echomesh_logins_total", 'result="banned"') == 1
    assert _metric(after, "echomesh_database_seconds_count", 'operation="add_call"') == 2
