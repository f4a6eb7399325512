"""The client's pure state: the outbox (exactly-once chat), the event queue, talk state and
reconnect backoff."""

from __future__ import annotations

import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echomesh_trio.client import events as ce
from echomesh_trio.client.backoff import Backoff
from echomesh_trio.client.event_queue import EventQueue
from echomesh_trio.client.outbox import Outbox, OutboxFull
from echomesh_trio.client.talk import TalkTracker
from echomesh_trio.protocol import events as ev

OPS = ["add", "send", "deliver", "ack", "disconnect", "connect", "rate_limit", "wait"]


class Simulation:
    """An outbox, a lossy connection and a server that stores by (user, client_msg_id)."""

    def __init__(self) -> None:
        self.outbox = Outbox(capacity=20)
        self.now = 0.0
        self.to_server: deque[tuple[int, str]] = deque()  # (request id, client_msg_id)
        self.to_client: deque[tuple[str, str]] = deque()  # ("ack"|"limit", client_msg_id)
        self.stored: list[str] = []
        self.added: list[str] = []
        self.delivered: list[str] = []
        self.rid = 0

    def step(self, op: str) -> None:
        box = self.outbox
        if op == "add":
            if len(box) < box.capacity:
                self.added.append(box.add(ev.SendChat("r", f"m{len(self.added)}")).client_msg_id)
            else:
                with pytest.raises(OutboxFull):
                    box.add(ev.SendChat("r", "one too many"))
        elif op == "send":
            pending = box.next_to_send(self.now)
            if pending is not None:
                self.rid += 1
                box.sent(pending.client_msg_id, self.rid)
                self.to_server.append((self.rid, pending.client_msg_id))
        elif op in ("deliver", "rate_limit") and self.to_server:
            _rid, cid = self.to_server.popleft()
            if op == "rate_limit":
                self.to_client.append(("limit", cid))
            else:
                if cid not in self.stored:
                    self.stored.append(cid)
                self.to_client.append(("ack", cid))
        elif op == "ack" and self.to_client:
            kind, cid = self.to_client.popleft()
            if kind == "ack":
                if box.acknowledged(cid) is not None:
                    self.delivered.append(cid)
            else:
                box.rate_limited(cid, self.now + 1.0)
        elif op == "disconnect" and box.online:
            self.to_server.clear()
            self.to_client.clear()
            box.disconnected()
        elif op == "connect" and not box.online:
            box.connected()
        elif op == "wait":
            self.now += 0.6

    def drain(self) -> None:
        if not self.outbox.online:
            self.outbox.connected()
        for _ in range(10_000):
            if not len(self.outbox) and not self.to_server and not self.to_client:
                return
            for op in ("send", "deliver", "ack", "wait"):
                self.step(op)
        raise AssertionError("the outbox never emptied")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(OPS), max_size=120))
def test_the_outbox_never_loses_or_duplicates_a_message(ops: list[str]) -> None:
    sim = Simulation()
    for op in ops:
        sim.step(op)
        # A message is acknowledged to the application at most once, and only once stored.
        assert len(sim.delivered) == len(set(sim.delivered))
        assert set(sim.delivered) <= set(sim.stored)
    sim.drain()
    assert sim.stored == sim.added  # each once, in the order sent
    assert sim.delivered == sim.added


def test_a_message_sent_offline_waits_for_the_connection() -> None:
    box = Outbox()
    pending = box.add(ev.SendDirect("hi", to_username="ben"))
    assert pending.client_msg_id and box.next_to_send(0.0) is None  # offline
    box.connected()
    assert box.next_to_send(0.0) is pending
    box.sent(pending.client_msg_id, 7)
    assert box.next_to_send(0.0) is None  # one in flight at a time
    assert box.by_request(7) is pending
    box.disconnected()
    box.connected()
    again = box.next_to_send(0.0)
    assert again is pending and again.client_msg_id == pending.client_msg_id  # same id
    assert box.by_request(7) is None  # a request id of the old connection means nothing


# ------------------------------------------------------------------------------ events
def test_state_updates_coalesce_and_messages_are_all_kept() -> None:
    queue = EventQueue(capacity=3)
    chat = [ce.MessageDelivered(str(i), i) for i in range(3)]
    queue.put(ce.InputLevel(-40, False))
    queue.put(chat[0])
    for level in (-30, -20, -10):
        queue.put(ce.InputLevel(level, True))
    queue.put(ce.TalkChanged(5, 1, "ann", True))
    queue.put(chat[1])
    queue.put(ce.TalkChanged(6, 2, "ben", True))
    queue.put(ce.TalkChanged(5, 1, "ann", False))
    queue.put(chat[2])
    assert queue.full and queue.coalesced == 4
    queue.put(ce.MessageDelivered("past capacity", 9))  # still kept: nothing is dropped
    got = []
    while (event := queue.get()) is not None:
        got.append(event)
    assert got == [
        ce.InputLevel(-10, True),  # the newest, where the first unread one was
        chat[0],
        ce.TalkChanged(5, 1, "ann", False),
        chat[1],
        ce.TalkChanged(6, 2, "ben", True),
        chat[2],
        ce.MessageDelivered("past capacity", 9),
    ]
    assert not queue.full and len(queue) == 0


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3)), max_size=200))
def test_the_event_queue_keeps_order_and_every_message(items: list[tuple[bool, int]]) -> None:
    queue = EventQueue(capacity=1_000)
    messages = []
    for i, (is_state, key) in enumerate(items):
        if is_state:
            queue.put(ce.TalkChanged(key, key, "", bool(i % 2)))
        else:
            messages.append(ce.MessageDelivered(str(i), i))
            queue.put(messages[-1])
    out = []
    while (event := queue.get()) is not None:
        out.append(event)
    assert [e for e in out if isinstance(e, ce.MessageDelivered)] == messages
    talk = [e for e in out if isinstance(e, ce.TalkChanged)]
    assert len(talk) == len({e.source_id for e in talk})  # at most one per speaker unread
    for source in {e.source_id for e in talk}:  # and it is the newest state
        newest = [i for i, (s, k) in enumerate(items) if s and k == source][-1]
        assert next(e for e in talk if e.source_id == source).speaking == bool(newest % 2)


# ------------------------------------------------------------------------------ talk
def test_talk_state_follows_packets_markers_and_silence() -> None:
    talk = TalkTracker(silent_after_s=0.3)
    assert talk.packet(1, 0.0, end_of_spurt=False) is True  # the first packet lights it
    assert talk.packet(1, 0.02, end_of_spurt=False) is None
    assert talk.packet(2, 0.02, end_of_spurt=False) is True
    assert talk.speaking == {1, 2}
    assert talk.packet(1, 0.04, end_of_spurt=True) is False  # the marker darkens it
    assert talk.tick(0.2) == []
    assert talk.tick(0.33) == [2]  # 300 ms without packets
    assert talk.speaking == frozenset()
    assert talk.packet(1, 0.5, end_of_spurt=True) is None  # a marker alone changes nothing
    assert talk.packet(3, 0.5, end_of_spurt=False) is True
    assert talk.forget(3) is True and talk.forget(3) is False


# ------------------------------------------------------------------------------ backoff
def test_backoff_starts_within_a_second_and_never_exceeds_ten() -> None:
    backoff = Backoff(rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(50)]
    assert 0 < delays[0] <= 1.0
    assert max(delays) <= 10.0 and max(delays[6:]) > 5.0  # it does grow to the cap
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 1.0
