"""The Trio side of one connection: runs the client core and forwards its events to the app.

Events that must each be seen (chat, membership, connection state) go to ``deliver`` at
once, in order. State updates that may come fast (input level, link statistics, talk and
transmit state, typing: ``coalesce_key`` is not None) are kept newest-only per key and
handed over as one batch at most every ``STATE_EVERY_S``. The first change after a quiet
spell goes out at once (a talk indicator lights with no added delay); only a burst waits.

Commands from the app arrive through ``TrioHost.start_soon`` / ``call_soon`` as calls of
the methods here; a refused request comes back as an event (``ServerError``), not an
exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import trio

from echomesh_trio.client import events as ce
from echomesh_trio.client.control import RequestRefused
from echomesh_trio.client.core import Client, ClientConfig, NotConnected, open_client
from echomesh_trio.protocol import events as ev

CS = ce.ConnectionState

STATE_EVERY_S: Final = 0.05
"""At most 20 batches of state updates a second: faster than the eye, and a talk indicator
is never more than one interval late."""

Deliver = Callable[[ce.ClientEvent], object]
DeliverBatch = Callable[[list[ce.ClientEvent]], object]


class Coalescer:
    """Pure: the newest event per key, and when the next batch may go (time passed in)."""

    def __init__(self, every_s: float = STATE_EVERY_S) -> None:
        self.every_s = every_s
        self._pending: dict[object, ce.ClientEvent] = {}
        self._last = -math.inf
        self.batches = 0
        self.offered = 0

    def offer(self, key: object, event: ce.ClientEvent) -> None:
        self._pending[key] = event
        self.offered += 1

    def __bool__(self) -> bool:
        return bool(self._pending)

    def due(self) -> float:
        """When the pending batch may go (``-inf``: now)."""
        return self._last + self.every_s

    def take(self, now: float) -> list[ce.ClientEvent]:
        batch = list(self._pending.values())
        self._pending.clear()
        self._last = now
        self.batches += 1
        return batch


class Session:
    def __init__(self, config: ClientConfig, deliver: Deliver, deliver_batch: DeliverBatch):
        self.config = config
        self._deliver = deliver
        self._deliver_batch = deliver_batch
        self.client: Client | None = None
        self.coalescer = Coalescer()
        self._wake = trio.Event()
        self._scope: trio.CancelScope | None = None

    async def run(self) -> None:
        """Until ``close()`` or the client goes offline for good."""
        with trio.CancelScope() as self._scope:
            async with open_client(self.config) as client:
                self.client = client
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._flush_state)
                    await self._pump(client)
                    nursery.cancel_scope.cancel()

    def close(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def _pump(self, client: Client) -> None:
        async for event in client.events():
            key = ce.coalesce_key(event)
            if key is None:
                self._deliver(event)
                if isinstance(event, ce.ConnectionChanged) and event.state is CS.OFFLINE:
                    return  # given up for good: the session ends
            else:
                self.coalescer.offer(key, event)
                self._wake.set()

    async def _flush_state(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await trio.sleep_until(max(self.coalescer.due(), trio.current_time()))
            if self.coalescer:
                self._deliver_batch(self.coalescer.take(trio.current_time()))

    # ------------------------------------------------------------------ commands
    def _require(self) -> Client:
        if self.client is None:
            raise NotConnected("not connected yet")
        return self.client

    async def request(self, what: str, call: Callable[[Client], object]) -> None:
        """Run a request that waits for the server; a refusal becomes a ServerError."""
        try:
            result = call(self._require())
            if hasattr(result, "__await__"):
                result = await result
            if isinstance(result, tuple) and what == "rooms":
                self._deliver(ce.RoomList(result))
            elif isinstance(result, ev.ModerationDone | ev.CallRinging | ev.CallEnded):
                self._deliver(result)  # the answer, shown like the notices
        except RequestRefused as exc:
            self._deliver(ce.ServerError(exc.reply.code, exc.reply.message, what))
        except NotConnected as exc:
            self._deliver(ce.ServerError(ev.ErrorCode.UNKNOWN, str(exc) or "offline", what))

    async def join(self, room: str, create: bool = False) -> None:
        await self.request(f"join {room!r}", lambda c: c.join(room, create=create))

    async def create(self, room: str) -> None:
        await self.request(f"create {room!r}", lambda c: c.create_room(room))

    async def leave(self, room: str) -> None:
        await self.request(f"leave {room!r}", lambda c: c.leave(room))

    async def set_active_room(self, room: str) -> None:
        await self.request(f"voice room {room!r}", lambda c: c.set_active_room(room))

    async def list_rooms(self) -> None:
        await self.request("rooms", lambda c: c.list_rooms())

    async def call_command(self, name: str, user: str = "") -> None:
        """/call USER, /answer, /reject, /hangup."""
        if name == "call":
            await self.request(f"call {user}", lambda c: c.place_call(user))
        elif name == "answer":
            await self.request("answer", lambda c: c.accept_call())
        elif name == "reject":
            await self.request("reject", lambda c: c.reject_call())
        else:
            await self.request("hang up", lambda c: c.hang_up())

    async def answer_call(self, take: bool, call_id: int) -> None:
        if take:
            await self.request("answer", lambda c: c.accept_call(call_id))
        else:
            await self.request("reject", lambda c: c.reject_call(call_id))

    async def moderate(self, name: str, args: tuple[str, ...], current: str) -> None:
        """/kick /mute /unmute /ban /unban /op /deop (see commands.COMMANDS)."""
        user = args[0]
        here = current if current and not current.startswith("@") else ""
        room = args[1] if len(args) > 1 and name != "ban" else here
        if room == "-":  # the whole server (admins)
            room = here = ""
        here = room or here
        what = f"{name} {user}" + (f" in {room}" if room else "")
        if name == "kick":
            await self.request(what, lambda c: c.kick(user, room))
        elif name == "mute":
            await self.request(what, lambda c: c.mute(user, room))
        elif name == "unmute":
            await self.request(what, lambda c: c.unmute(user, room))
        elif name == "ban":
            seconds = 60 * float(args[1]) if len(args) > 1 else 0.0
            await self.request(f"ban {user}", lambda c: c.ban(user, duration_s=seconds))
        elif name == "unban":
            await self.request(f"unban {user}", lambda c: c.unban(user))
        elif name == "op":
            await self.request(what, lambda c: c.op(here, user))
        elif name == "deop":
            await self.request(what, lambda c: c.deop(here, user))

    async def set_typing(self, room: str, active: bool) -> None:
        client = self.client
        if client is not None and room in client.rooms:
            await client.set_typing(room, active)
