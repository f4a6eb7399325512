"""The EchoMesh client: one object a program holds, for as long as it wants to be online.

    async with open_client(ClientConfig("chat.example.org", 7777, "alice", "pw")) as client:
        await client.wait_connected()
        await client.join("lobby", create=True)
        await client.send_chat("lobby", "hello")
        async for event in client.events():
            ...

**Tasks.** ``open_client`` opens one nursery that owns everything:

    open_client nursery
    |- supervisor: connect (TLS + trust on first use) -> log in -> restore -> serve;
    |    on a lost connection: back off (with jitter) and go round again
    |    '- connection nursery (one per connection, cancelled when it ends)
    |         |- reader: every notice -> state, replies, events
    |         |- pinger: a Ping every 5 s (TCP RTT; a silent server for 15 s is dead)
    |         |- outbox: unacknowledged chat and direct messages, one at a time, in order
    |         |- statistics: LinkStatistics every second, a loss report every 2 s
    |         '- voice link: UDP hello/ping/receive, the TCP tunnel (voice_link.py)
    '- audio engine (audio_engine.py): capture -> sender -> link; receiver -> output;
         talk-state timer. It runs across reconnects.

**Commands** are plain methods. Requests that have an answer (``join``, ``leave``,
``create_room``, ``list_rooms``, ``request_presence``, ``set_active_room``) wait for it and
raise ``RequestRefused`` with the server's error, or ``NotConnected`` while offline.
``send_chat`` and ``send_direct`` never wait: the message is queued (offline too, up to
``outbox_capacity``) and sent, and re-sent after a reconnect with the same
``client_msg_id`` until the server acknowledges it (``MessageDelivered``; the server keeps
exactly one copy). Audio settings (``ptt``, ``set_muted``, ...) apply at once, online or not.

**State** is readable at any time: ``client.state``, ``client.rooms``,
``client.members(room)``, ``client.active_room``, ``client.speaking``.

**Events** come from one bounded stream, ``client.events()`` (one reader). When the
application reads too slowly: state updates (input level, link statistics, talk and
transmit state, typing) are coalesced, the newest replacing an unread older one; every
other event (chat, direct messages, membership, errors, connection state) is kept, in
order, and never dropped: past ``event_capacity`` of them the client stops reading the
connection until the application catches up (the server may then close a connection that
does not read; the client reconnects and the history fills in what it missed).

**Reconnect.** After a dropped connection or a server restart the client retries after
``Backoff`` delays (the first within 1 s, at most 10 s), logs in again, rejoins every room
it was in and its active voice room, and re-sends unacknowledged messages. Each step is an
event (``ConnectionChanged``, ``LoggedIn(resumed=True)``, ``RoomJoined(rejoined=True)``).
It gives up (``OFFLINE``) on a refused login, a refused certificate, or when the same user
logs in elsewhere (replaced), and, unless ``retry_first_connect``, when the very first
connection cannot be made.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from echomesh_trio import __version__
from echomesh_trio.audio.sender import GateMode
from echomesh_trio.client import events as ce
from echomesh_trio.client.audio_engine import AudioEngine
from echomesh_trio.client.backoff import Backoff
from echomesh_trio.client.control import ConnectionClosed, ControlConnection, RequestRefused
from echomesh_trio.client.event_queue import DEFAULT_CAPACITY as DEFAULT_EVENT_CAPACITY
from echomesh_trio.client.event_queue import EventQueue
from echomesh_trio.client.outbox import DEFAULT_CAPACITY as DEFAULT_OUTBOX_CAPACITY
from echomesh_trio.client.outbox import Outbox
from echomesh_trio.client.trust import (
    Confirm,
    KnownServers,
    TrustError,
    TrustPolicy,
    Verified,
    default_path,
    tls_connect,
)
from echomesh_trio.client.voice_link import VoiceLink
from echomesh_trio.devices.base import AudioInput, AudioOutput
from echomesh_trio.protocol import events as ev

log = logging.getLogger("echomesh.client")

CS = ce.ConnectionState
E = ev.ErrorCode

CONNECT_TIMEOUT_S: Final = 10.0
"""TCP connect and TLS handshake (a host that drops packets would otherwise hang us)."""
LOGIN_TIMEOUT_S: Final = 15.0
"""From the login request to its answer (the server's scrypt check takes ~0.1 s)."""
PING_EVERY_S: Final = 5.0
DEAD_AFTER_S: Final = 15.0
"""Nothing from the server this long (three pings unanswered): the connection is dead."""
STATS_EVERY_S: Final = 1.0
LOGOUT_WAIT_S: Final = 1.0
"""On close, how long the Logout may take to leave before the connection is cut."""
LOSS_REPORT_EVERY: Final = 2
"""Statistics ticks between loss reports (PROTOCOL.md asks for 2 to 5 s)."""
REJOIN_GRACE_S: Final = 15.0
"""After we rejoin a room, how long members we knew there may take to come back before
they count as gone (after a server restart every client reconnects within its backoff,
at most 10 s)."""
SEEN_PER_ROOM: Final = 2_000
"""Message ids remembered per room, so that history after a rejoin shows only what was
missed (the server sends the last 50 on join)."""


class NotConnected(Exception):
    """The request needs the server, and the client is not connected right now."""


class NoCall(Exception):
    """Answering or rejecting when no call rings."""


@dataclass(frozen=True)
class ClientConfig:
    host: str
    port: int
    username: str
    password: str
    plaintext: bool = False
    """Only when asked: logins and voice keys then travel in clear."""
    fingerprint: str | None = None
    """Pin exactly this certificate fingerprint (``--fingerprint``)."""
    confirm_fingerprint: Confirm | None = None
    """Asked on first contact before pinning (the TUI); None pins automatically (a bot)."""
    known_servers: Path | None = None
    """The pin file; default ``known_servers.toml`` in the user's config directory."""
    rooms: Sequence[str] = ()
    """Joined (and created when missing, if ``create_rooms``) on the first login."""
    create_rooms: bool = True
    audio_input: AudioInput | None = None
    """The microphone; None: no voice at all (chat only)."""
    audio_output: AudioOutput | None = None
    transmit_mode: GateMode = GateMode.VOICE_ACTIVATION
    noise_suppression: bool = True
    """RNNoise on the microphone (switch with ``set_noise_suppression``): clearer speech in a
    noisy room, at 20 ms more delay and ~1 ms of CPU per frame, and slightly duller clean
    speech (docs/AUDIO.md). Off for inputs that are not microphones (tones, files)."""
    gain_control: bool = True
    """Automatic gain control: quiet and loud speakers arrive at similar levels."""
    client_name: str = f"echomesh-trio {__version__}"
    reconnect: bool = True
    retry_first_connect: bool = False
    first_retry_s: float = 1.0
    max_retry_s: float = 10.0
    event_capacity: int = DEFAULT_EVENT_CAPACITY
    outbox_capacity: int = DEFAULT_OUTBOX_CAPACITY
    udp_port: int | None = None
    """Send voice to this UDP port instead of the one the server names (a test hook: a
    port nobody listens on makes UDP fail, so voice falls back to the TCP tunnel)."""


@dataclass(slots=True)
class _Call:
    """A request waiting for its answer."""

    kind: type | tuple[type, ...]
    done: trio.Event = field(default_factory=trio.Event)
    parts: list[object] = field(default_factory=list)
    result: object = None
    error: BaseException | None = None
    rejoin: bool = False


class _Seen:
    """A bounded set of message ids (oldest forgotten first)."""

    def __init__(self, size: int = SEEN_PER_ROOM) -> None:
        self._ids: OrderedDict[int, None] = OrderedDict()
        self._size = size

    def add(self, message_id: int) -> bool:
        """True the first time."""
        if message_id in self._ids:
            return False
        self._ids[message_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


class Client:
    """See the module docstring. Made by ``open_client``."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.state = CS.CONNECTING
        self.reason = ""
        self.user_id = 0
        self.username = config.username
        self.server_version = ""
        self._rooms: dict[str, dict[int, ev.Member]] = {}
        self.active_room = ""
        self._queue = EventQueue(config.event_capacity)
        self._readable = trio.Event()
        self._writable = trio.Event()
        self.outbox = Outbox(config.outbox_capacity)
        self._outbox_wake = trio.Event()
        self._conn: ControlConnection | None = None
        self._conn_scope: trio.CancelScope | None = None
        self._conn_nursery: trio.Nursery | None = None
        self._last_heard = 0.0
        self._calls: dict[int, _Call] = {}
        self._seen_chat: dict[str, _Seen] = {}
        self._seen_direct = _Seen()
        self._sources: dict[int, ev.Member] = {}
        self._snapshot_parts: dict[str, dict[int, ev.Member]] = {}
        self._absent: dict[tuple[str, int], float] = {}
        """(room, user id) of members not back after our rejoin, and until when we wait."""
        self._gains: dict[str, float] = {}
        self._logged_in_once = False
        self._closing = False
        self._was_connected = False
        self._state_changed = trio.Event()
        self._stopped = trio.Event()
        self.link: VoiceLink | None = None
        self.tcp_rtt_ms: float | None = None
        self._ping_nonce = itertools.count(1)
        self._ping_sent: dict[int, float] = {}
        """Our outstanding pings by nonce: RTT at the clock's resolution, not the wire's ms."""
        self._reported_loss = 0.0
        self.call: ev.CallRinging | ev.CallConnected | None = None
        """The call we are in, ringing (either way) or connected."""
        self.audio: AudioEngine | None = None
        if config.audio_input is not None and config.audio_output is not None:
            self.audio = AudioEngine(
                config.audio_input,
                config.audio_output,
                mode=config.transmit_mode,
                noise_suppression=config.noise_suppression,
                gain_control=config.gain_control,
                on_talk=self._talk_changed,
                on_transmit=self._transmit_changed,
                on_level=self._level,
            )

    # ================================================================ state
    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms we are in, in the order we joined them."""
        return tuple(self._rooms)

    def members(self, room: str) -> tuple[ev.Member, ...]:
        return tuple(self._rooms.get(room, {}).values())

    @property
    def speaking(self) -> frozenset[str]:
        """Usernames of the speakers heard right now (by packet arrival)."""
        if self.audio is None:
            return frozenset()
        return frozenset(
            self._sources[s].username for s in self.audio.talk.speaking if s in self._sources
        )

    @property
    def transmitting(self) -> bool:
        return self.audio is not None and self.audio.transmitting

    async def wait_connected(self) -> None:
        """Until logged in (returns at once if already); raises NotConnected with the reason
        if the client gave up first."""
        while self.state is not CS.CONNECTED:
            if self.state is CS.OFFLINE:
                raise NotConnected(self.reason)
            await self._state_changed.wait()

    # ================================================================ events
    async def events(self) -> AsyncIterator[ce.ClientEvent]:
        """Every event, in order, until the client closes (see the module docstring)."""
        while True:
            event = self._queue.get()
            if event is not None:
                if not self._queue.full:
                    self._writable.set()
                yield event
                continue
            if self._stopped.is_set():
                return
            self._readable = trio.Event()
            await self._readable.wait()

    def _emit(self, event: ce.ClientEvent) -> None:
        self._queue.put(event)
        self._readable.set()

    async def _wait_writable(self) -> None:
        while self._queue.full:
            self._writable = trio.Event()
            await self._writable.wait()

    def _set_state(self, state: ce.ConnectionState, reason: str = "", **kw: float) -> None:
        self.state, self.reason = state, reason
        self._state_changed.set()  # wakes wait_connected; the next change gets a new one
        self._state_changed = trio.Event()
        self._emit(ce.ConnectionChanged(state, reason, **kw))  # type: ignore[arg-type]

    # ================================================================ supervisor
    async def _supervise(self) -> None:
        config = self.config
        backoff = Backoff(config.first_retry_s, config.max_retry_s)
        while True:
            reason = await self._one_connection()
            if reason is None:  # given up, already said why
                return
            if not config.reconnect or (
                not self._logged_in_once and not config.retry_first_connect
            ):
                self._set_state(CS.OFFLINE, reason)
                return
            if self._was_connected:
                backoff.reset()
                self._was_connected = False
            backoff_delay = backoff.next_delay()
            log.info("%s; reconnecting in %.1f s", reason, backoff_delay)
            self._set_state(
                CS.RECONNECTING, reason, retry_in_s=backoff_delay, attempt=backoff.attempt
            )
            await trio.sleep(backoff_delay)
            self._set_state(CS.CONNECTING, reason, attempt=backoff.attempt)

    async def _one_connection(self) -> str | None:
        """Connect, log in and serve; returns why it ended, or None if the client must
        stop (OFFLINE already set)."""
        config = self.config
        where = f"{config.host}:{config.port}"
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                conn = await self._open()
        except trio.TooSlowError:
            return f"cannot reach {where}: no answer within {CONNECT_TIMEOUT_S:.0f} s"
        except TrustError as exc:
            self._set_state(CS.OFFLINE, str(exc))
            return None
        except (OSError, trio.BrokenResourceError) as exc:
            return f"cannot reach {where}: {_oserror_text(exc)}"
        try:
            try:
                with trio.fail_after(LOGIN_TIMEOUT_S):
                    result = await conn.login(config.username, config.password, config.client_name)
            except trio.TooSlowError:
                return f"{where} did not answer the login within {LOGIN_TIMEOUT_S:.0f} s"
            except (ConnectionClosed, RequestRefused) as exc:
                return f"login failed: {exc}"
            if not result.ok:
                text = result.message or f"status {result.status_code}"
                if result.status_code == ev.LoginStatus.TOO_MANY_ATTEMPTS:
                    return f"login refused for now: {text}"
                self._set_state(CS.OFFLINE, f"login refused: {text}")
                return None
            held: list[str] = []
            if result.resumed:  # the server kept our session: what it holds comes next
                try:
                    while True:
                        part = await conn.receive_matching(ev.SessionResumed)
                        held.extend(part.rooms)
                        if not part.more:
                            break
                    if part.voice_room and not self._logged_in_once:  # another program's
                        self.active_room = part.voice_room
                        self._emit(ce.ActiveRoomChanged(part.voice_room))
                except ConnectionClosed as exc:
                    return str(exc)
            return await self._serve(conn, result, held)
        finally:
            self._conn = None
            with trio.CancelScope(shield=True):
                if self._closing:  # leaving on purpose: no resume grace for us
                    with trio.move_on_after(LOGOUT_WAIT_S):
                        await _send_quietly(conn, ev.Logout())
                await conn.aclose()

    async def _open(self) -> ControlConnection:
        config = self.config
        if config.plaintext:
            return ControlConnection(await trio.open_tcp_stream(config.host, config.port))
        policy = TrustPolicy(
            known=await trio.to_thread.run_sync(KnownServers.load, config.known_servers),
            explicit=config.fingerprint,
            confirm=config.confirm_fingerprint,
            on_pinned=self._pinned,
        )
        return ControlConnection(await tls_connect(config.host, config.port, policy))

    def _pinned(self, verified: Verified) -> None:
        path = str(self.config.known_servers or default_path())
        log.info(
            "pinned %s:%d as %s in %s", verified.host, verified.port, verified.fingerprint, path
        )
        self._emit(ce.CertificatePinned(verified.host, verified.port, verified.fingerprint, path))

    async def _serve(
        self, conn: ControlConnection, result: ev.LoginResult, held: Sequence[str] = ()
    ) -> str | None:
        resumed = self._logged_in_once
        self.user_id, self.username = result.user_id, result.username or self.username
        self.server_version = result.server_version
        self._logged_in_once = True
        self.outbox.connected()
        lost: list[str] = []
        async with trio.open_nursery() as nursery:
            self._conn, self._conn_scope, self._conn_nursery = conn, nursery.cancel_scope, nursery
            self._last_heard = trio.current_time()
            nursery.start_soon(self._read, conn, lost)
            nursery.start_soon(self._ping, conn, lost)
            self._emit(ce.LoggedIn(self.user_id, self.username, self.server_version, resumed))
            try:
                await self._restore(resumed, held)
            except NotConnected:
                pass  # the reader says why
            else:
                self._was_connected = True
                self._set_state(CS.CONNECTED)
                nursery.start_soon(self._flush_outbox, conn)
                nursery.start_soon(self._statistics, conn)
        self._conn = self._conn_scope = self._conn_nursery = None
        if self.audio is not None:
            self.audio.link = None
        self.link = None
        self.outbox.disconnected()
        self._fail_calls(NotConnected("the connection was lost"))
        reason = lost[0] if lost else "the connection was lost"
        self.call = None  # the server ends a call with the session (CE_DISCONNECTED)
        goodbye = conn.goodbye
        final = _FINAL_GOODBYES.get(goodbye.reason) if goodbye is not None else None
        if goodbye is not None and final is not None:  # no coming back by ourselves
            self._set_state(CS.OFFLINE, f"{final}: {goodbye.message}")
            return None
        return reason

    async def _restore(self, resumed: bool, held: Sequence[str]) -> None:
        """Rejoin every room (first login: the configured ones) and the active room. Rooms
        the server kept for a session we took over (``held``; another process of ours, or
        our own connection it had not yet seen die) are joined too: rejoining a room one is
        in costs the members nothing and gives us its member list and history."""
        wanted = list(self._rooms) if resumed else list(self.config.rooms)
        wanted += [room for room in held if room not in wanted]
        active = self.active_room
        for room in wanted:
            try:
                await self._join(room, create=self.config.create_rooms and not resumed,
                                 rejoin=resumed)  # fmt: skip
            except RequestRefused as exc:
                self._rooms.pop(room, None)
                self._emit(ce.RoomLeft(room, f"could not rejoin: {exc.reply.message}"))
        # Always ask: the server moves the active room to each room joined, and its notice
        # for the last one may still be on its way.
        if resumed and active and active in self._rooms:
            try:
                await self.set_active_room(active)
            except RequestRefused:
                pass

    # ================================================================ reading
    async def _read(self, conn: ControlConnection, lost: list[str]) -> None:
        try:
            while True:
                incoming = await conn.receive()
                self._dispatch(incoming)
                if self._queue.full:
                    await self._wait_writable()
        except ConnectionClosed as exc:
            lost.append(str(exc))
        except Exception as exc:  # a bug must not leave the client hanging
            log.exception("client reader failed")
            lost.append(f"client error: {exc!r}")
        finally:
            if self._conn_scope is not None:
                self._conn_scope.cancel()

    def _dispatch(self, incoming: ev.Incoming[ev.ServerNotice]) -> None:
        event, rid = incoming.event, incoming.request_id
        self._last_heard = trio.current_time()
        call = self._calls.get(rid) if rid else None
        if isinstance(event, ev.ErrorReply):
            self._error(event, rid, call)
            return
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, rid)
        if call is not None and isinstance(event, call.kind):
            call.parts.append(event)
            if not getattr(event, "more", False):
                call.result = event
                del self._calls[rid]
                call.done.set()

    def _error(self, error: ev.ErrorReply, rid: int, call: _Call | None) -> None:
        pending = self.outbox.by_request(rid)
        if pending is not None:
            if error.code == E.RATE_LIMITED:
                self.outbox.rate_limited(
                    pending.client_msg_id, trio.current_time() + max(0.1, error.retry_after_s)
                )
            else:
                self.outbox.refused(pending.client_msg_id)
                self._emit(ce.MessageFailed(pending.client_msg_id, error.code, error.message))
            self._outbox_wake.set()
            return
        if call is not None:
            del self._calls[rid]
            call.error = RequestRefused(error)
            call.done.set()
            return
        self._emit(ce.ServerError(error.code, error.message, ""))

    # ---------------------------------------------------------------- notices
    def _on_chat(self, message: ev.ChatMessage, rid: int) -> None:
        own = message.user_id == self.user_id
        if own and message.client_msg_id and self.outbox.acknowledged(message.client_msg_id):
            self._emit(ce.MessageDelivered(message.client_msg_id, message.message_id))
            self._outbox_wake.set()
        if self._seen(message.room_id).add(message.message_id):
            self._emit(ce.ChatReceived(message, own=own))

    def _on_history(self, batch: ev.HistoryBatch, rid: int) -> None:
        seen = self._seen(batch.room_id)
        for message in batch.messages:
            if seen.add(message.message_id):
                own = message.user_id == self.user_id
                self._emit(ce.ChatReceived(message, history=True, own=own))

    def _seen(self, room: str) -> _Seen:
        seen = self._seen_chat.get(room)
        if seen is None:
            seen = self._seen_chat[room] = _Seen()
        return seen

    def _on_direct(self, message: ev.DirectMessage, rid: int) -> None:
        own = message.from_user_id == self.user_id
        if own and message.client_msg_id and self.outbox.acknowledged(message.client_msg_id):
            self._emit(ce.MessageDelivered(message.client_msg_id, message.message_id))
            self._outbox_wake.set()
        if self._seen_direct.add(message.message_id):
            self._emit(ce.DirectReceived(message, own=own))

    def _on_snapshot(self, snapshot: ev.RoomSnapshot, rid: int) -> None:
        call = self._calls.get(rid)
        rejoin = call is not None and call.rejoin
        room = snapshot.room_id
        if call is None or not call.parts:  # the first part
            self._snapshot_parts[room] = {}
        members = self._snapshot_parts.setdefault(room, {})
        for member in snapshot.members:
            members[member.user_id] = member
            self._learn_source(member)
        if snapshot.more:
            return
        del self._snapshot_parts[room]
        before = self._rooms.get(room, {})
        if rejoin:
            # Members we knew who are not back yet (after a server restart everyone
            # reconnects in turn) stay listed for a grace period instead of leaving and
            # joining again; those still missing then have left.
            deadline = trio.current_time() + REJOIN_GRACE_S
            for user_id, member in before.items():
                if user_id not in members:
                    members[user_id] = member
                    self._absent[(room, user_id)] = deadline
        self._rooms[room] = members
        # Before the history that follows it.
        self._emit(ce.RoomJoined(room, tuple(members.values()), rejoin))

    def _on_member_joined(self, event: ev.MemberJoined, rid: int) -> None:
        members = self._rooms.get(event.room_id)
        if members is None:
            return
        known = event.member.user_id in members
        members[event.member.user_id] = event.member
        self._learn_source(event.member)
        returning = self._absent.pop((event.room_id, event.member.user_id), None) is not None
        if not (known and returning):  # a member back after a restart is no news
            self._emit(event)

    def _expire_absent(self, now: float) -> None:
        for key, deadline in list(self._absent.items()):
            if now >= deadline:
                del self._absent[key]
                room, user_id = key
                member = self._rooms.get(room, {}).pop(user_id, None)
                if member is not None:
                    self._emit(ev.MemberLeft(room, member))

    def _on_member_left(self, event: ev.MemberLeft, rid: int) -> None:
        if event.member.user_id == self.user_id:
            if self._rooms.pop(event.room_id, None) is not None:
                self._emit(ce.RoomLeft(event.room_id))
            return
        members = self._rooms.get(event.room_id)
        if members is None or members.pop(event.member.user_id, None) is None:
            return
        self._absent.pop((event.room_id, event.member.user_id), None)
        self._emit(event)
        if event.room_id == self.active_room and self.audio is not None:
            self.audio.speaker_left(event.member.source_id)

    def _on_room_deleted(self, event: ev.RoomDeleted, rid: int) -> None:
        if self._rooms.pop(event.room_id, None) is not None:
            self._emit(event)
            self._emit(ce.RoomLeft(event.room_id, f"deleted by {event.by.username}"))

    def _on_voice_room(self, event: ev.VoiceRoomChanged, rid: int) -> None:
        if event.room_id != self.active_room:
            self.active_room = event.room_id
            self._emit(ce.ActiveRoomChanged(event.room_id))

    def _on_voice_setup(self, setup: ev.VoiceSetupInfo, rid: int) -> None:
        if self.audio is None or self._conn is None:
            return
        link = VoiceLink(
            setup, self._conn, self.config.host, self.audio.frame_received,
            udp_port=self.config.udp_port,
        )  # fmt: skip
        self.link = link
        self.audio.link = link
        if self._conn_nursery is not None:
            self._conn_nursery.start_soon(self._run_link, link)

    async def _run_link(self, link: VoiceLink) -> None:
        try:
            await link.run()
        except OSError as exc:  # no UDP at all (no route): the tunnel still works
            log.warning("voice over UDP is not possible: %s", exc)
        finally:
            if self.link is link:
                self.link = None

    def _on_tunnel(self, event: ev.VoiceDatagram, rid: int) -> None:
        if self.link is not None:
            self.link.tunnelled(event.datagram)

    def _on_loss_feedback(self, event: ev.VoiceLossFeedback, rid: int) -> None:
        self._reported_loss = event.loss
        if self.audio is not None:
            self.audio.set_reported_loss(event.loss)

    def _on_ping(self, event: ev.Ping, rid: int) -> None:
        conn, nursery = self._conn, self._conn_nursery
        if conn is not None and nursery is not None:
            nursery.start_soon(_send_quietly, conn, ev.Pong(event.nonce, event.sent_ms), rid)

    def _on_pong(self, event: ev.Pong, rid: int) -> None:
        sent = self._ping_sent.pop(event.nonce, None)
        if sent is not None:
            self.tcp_rtt_ms = (trio.current_time() - sent) * 1000

    def _pass(self, event: ce.ClientEvent, rid: int) -> None:
        self._emit(event)

    def _on_call(self, event: ev.CallRinging | ev.CallConnected | ev.CallEnded, rid: int) -> None:
        self._learn_source(event.caller)
        self._learn_source(event.callee)
        if isinstance(event, ev.CallEnded):
            if self.call is None or self.call.call_id == event.call_id:
                self.call = None
        else:
            self.call = event
        self._emit(event)

    def _learn_source(self, member: ev.Member) -> None:
        if not member.source_id:
            return
        self._sources[member.source_id] = member
        gain = self._gains.get(member.username)
        if gain is not None and self.audio is not None:
            self.audio.set_gain(member.source_id, gain)

    # ================================================================ requests
    def _require(self) -> ControlConnection:
        conn = self._conn
        if conn is None:
            raise NotConnected(self.reason or "not connected")
        return conn

    async def _call(
        self, request: ev.ClientRequest, answer: type | tuple[type, ...], *, rejoin: bool = False
    ) -> _Call:
        conn = self._require()
        rid = conn.next_request_id()
        call = _Call(answer, rejoin=rejoin)
        self._calls[rid] = call
        try:
            await conn.send(request, rid)
        except ConnectionClosed as exc:
            self._calls.pop(rid, None)
            raise NotConnected(str(exc)) from exc
        await call.done.wait()
        if call.error is not None:
            raise call.error
        return call

    def _fail_calls(self, error: BaseException) -> None:
        calls, self._calls = self._calls, {}
        for call in calls.values():
            call.error = error
            call.done.set()

    # ---------------------------------------------------------------- rooms
    async def join(self, room: str, *, create: bool = False) -> ce.RoomJoined:
        """Join ``room`` (with ``create``: creating it when it does not exist)."""
        return await self._join(room, create=create, rejoin=False)

    async def _join(self, room: str, *, create: bool, rejoin: bool) -> ce.RoomJoined:
        try:
            await self._call(ev.JoinRoom(room), ev.RoomSnapshot, rejoin=rejoin)
        except RequestRefused as exc:
            if not create or exc.reply.code != E.UNKNOWN_ROOM:
                raise
            try:
                await self._call(ev.CreateRoom(room), ev.RoomSnapshot)
            except RequestRefused as again:
                if again.reply.code != E.ROOM_EXISTS:  # someone else was quicker
                    raise
                await self._call(ev.JoinRoom(room), ev.RoomSnapshot)
        return ce.RoomJoined(room, self.members(room), rejoined=rejoin)

    async def create_room(self, room: str) -> ce.RoomJoined:
        """Create ``room`` and join it."""
        await self._call(ev.CreateRoom(room), ev.RoomSnapshot)
        return ce.RoomJoined(room, self.members(room))

    async def leave(self, room: str) -> None:
        await self._call(ev.LeaveRoom(room), ev.MemberLeft)

    async def delete_room(self, room: str) -> None:
        await self._call(ev.DeleteRoom(room), ev.RoomDeleted)

    async def list_rooms(self) -> tuple[ev.RoomInfo, ...]:
        call = await self._call(ev.ListRooms(), ev.RoomListing)
        rooms = tuple(r for part in call.parts for r in part.rooms)  # type: ignore[attr-defined]
        self._emit(ce.RoomList(rooms))
        return rooms

    async def request_presence(self) -> tuple[ev.Member, ...]:
        call = await self._call(ev.ListPresence(), ev.PresenceSnapshot)
        online = tuple(m for part in call.parts for m in part.online)  # type: ignore[attr-defined]
        self._emit(ce.PresenceList(online))
        return online

    async def set_active_room(self, room: str) -> None:
        """The room our voice goes to and comes from ("" for none)."""
        await self._call(ev.SetVoiceRoom(room), ev.VoiceRoomChanged)

    # ---------------------------------------------------------------- calls
    async def place_call(self, username: str) -> ev.CallRinging | ev.CallEnded:
        """Call ``username``: ``CallRinging`` while their client rings (then
        ``CallConnected`` or ``CallEnded`` arrive as events), or ``CallEnded`` with
        ``BUSY`` at once."""
        call = await self._call(ev.PlaceCall(to_username=username), (ev.CallRinging, ev.CallEnded))
        return call.result  # type: ignore[return-value]

    def _ringing_id(self, call_id: int | None) -> int:
        if call_id is not None:
            return call_id
        if self.call is None:
            raise NoCall("no call is ringing")
        return self.call.call_id

    async def accept_call(self, call_id: int | None = None) -> ev.CallConnected:
        """Take the ringing call (the current one by default)."""
        call = await self._call(ev.AcceptCall(self._ringing_id(call_id)), ev.CallConnected)
        return call.result  # type: ignore[return-value]

    async def reject_call(self, call_id: int | None = None) -> ev.CallEnded:
        call = await self._call(ev.RejectCall(self._ringing_id(call_id)), ev.CallEnded)
        return call.result  # type: ignore[return-value]

    async def hang_up(self) -> ev.CallEnded:
        """End the current call, ringing or connected."""
        call = await self._call(ev.HangUp(), ev.CallEnded)
        return call.result  # type: ignore[return-value]

    # ---------------------------------------------------------------- moderation
    async def _moderate(self, request: ev.ClientRequest) -> ev.ModerationDone:
        call = await self._call(request, ev.ModerationDone)
        return call.result  # type: ignore[return-value]

    async def kick(self, username: str, room: str = "", reason: str = "") -> ev.ModerationDone:
        """Out of ``room`` (its owners, admins), or with no room off the server (admins)."""
        return await self._moderate(ev.Kick(username, room, reason))

    async def mute(self, username: str, room: str = "", reason: str = "") -> ev.ModerationDone:
        """Server-mute in ``room`` (its owners, admins) or everywhere (admins)."""
        return await self._moderate(ev.Mute(username, room, reason))

    async def unmute(self, username: str, room: str = "") -> ev.ModerationDone:
        return await self._moderate(ev.Unmute(username, room))

    async def ban(
        self, username: str = "", *, address: str = "", duration_s: float = 0.0, reason: str = ""
    ) -> ev.ModerationDone:
        """Admins: refuse a user's or an address's logins (``duration_s`` 0: until unbanned)."""
        return await self._moderate(ev.Ban(username, address, duration_s, reason))

    async def unban(self, username: str = "", *, address: str = "") -> ev.ModerationDone:
        return await self._moderate(ev.Unban(username, address))

    async def op(self, room: str, username: str) -> ev.ModerationDone:
        """Make ``username`` an owner of ``room``."""
        return await self._moderate(ev.GrantOwner(room, username))

    async def deop(self, room: str, username: str) -> ev.ModerationDone:
        return await self._moderate(ev.RevokeOwner(room, username))

    # ---------------------------------------------------------------- messages
    def send_chat(self, room: str, text: str) -> str:
        """Queue a chat message; returns its client_msg_id (see MessageDelivered)."""
        pending = self.outbox.add(ev.SendChat(room, text))
        self._outbox_wake.set()
        return pending.client_msg_id

    def send_direct(self, username: str, text: str) -> str:
        """Queue a direct message to ``username`` (delivered when they are next online)."""
        pending = self.outbox.add(ev.SendDirect(text, to_username=username))
        self._outbox_wake.set()
        return pending.client_msg_id

    async def set_typing(self, room: str, active: bool) -> None:
        """Tell the room we are typing (ignored while offline: it is only a hint)."""
        conn = self._conn
        if conn is not None and self.state is CS.CONNECTED:
            try:
                await conn.send(ev.SetTyping(room, active))
            except ConnectionClosed:
                pass

    async def _flush_outbox(self, conn: ControlConnection) -> None:
        outbox = self.outbox
        while True:
            now = trio.current_time()
            pending = outbox.next_to_send(now)
            if pending is None:
                self._outbox_wake = trio.Event()
                wait = outbox.hold_until - now if outbox.hold_until > now else math.inf
                with trio.move_on_after(wait):
                    await self._outbox_wake.wait()
                continue
            rid = conn.next_request_id()
            outbox.sent(pending.client_msg_id, rid)
            try:
                await conn.send(pending.message, rid)
            except ConnectionClosed:
                return

    # ---------------------------------------------------------------- audio
    def set_transmit_mode(self, mode: GateMode) -> None:
        if self.audio is not None:
            self.audio.set_mode(mode)

    def ptt(self, down: bool) -> None:
        """Push-to-talk key down or up (in push-to-talk mode)."""
        if self.audio is not None:
            self.audio.ptt(down)

    def set_muted(self, muted: bool) -> None:
        if self.audio is not None:
            self.audio.set_muted(muted)
            self._transmit_changed(self.audio.transmitting)

    def set_deafened(self, deafened: bool) -> None:
        if self.audio is not None:
            self.audio.set_deafened(deafened)
            self._transmit_changed(self.audio.transmitting)

    def set_volume(self, username: str, gain: float) -> None:
        """Play ``username`` at ``gain`` (1.0 as sent; 0 silences them)."""
        if not math.isfinite(gain) or gain < 0:
            raise ValueError(f"gain must be a finite number >= 0, not {gain}")
        self._gains[username] = gain
        if self.audio is not None:
            for source_id, member in self._sources.items():
                if member.username == username:
                    self.audio.set_gain(source_id, gain)

    def set_noise_suppression(self, on: bool) -> bool:
        """Noise suppression on or off; returns whether it is on (without the RNNoise library
        it cannot be: ``client.audio.front_end_problem`` says why)."""
        return self.audio is not None and self.audio.set_noise_suppression(on)

    def set_gain_control(self, on: bool) -> None:
        if self.audio is not None:
            self.audio.set_gain_control(on)

    def set_vad_threshold(self, dbfs: float | None) -> None:
        """Voice activation above ``dbfs`` (e.g. -40); None follows the noise floor."""
        if dbfs is not None and not (math.isfinite(dbfs) and -96 <= dbfs <= 0):
            raise ValueError(f"the threshold is in dBFS, between -96 and 0, not {dbfs}")
        if self.audio is not None:
            self.audio.set_vad_threshold(dbfs)

    def _talk_changed(self, source_id: int, speaking: bool) -> None:
        member = self._sources.get(source_id)
        user_id, name = (member.user_id, member.username) if member else (0, "")
        self._emit(ce.TalkChanged(source_id, user_id, name, speaking))

    def _transmit_changed(self, transmitting: bool) -> None:
        audio = self.audio
        if audio is not None:
            self._emit(ce.TransmitChanged(transmitting, audio.muted, audio.deafened))

    def _level(self, dbfs: float, voice: bool) -> None:
        self._emit(ce.InputLevel(dbfs, voice))

    # ================================================================ periodic
    async def _ping(self, conn: ControlConnection, lost: list[str]) -> None:
        """A Ping every PING_EVERY_S; a server silent for DEAD_AFTER_S is taken for dead."""
        while True:
            await trio.sleep(PING_EVERY_S)
            if trio.current_time() - self._last_heard >= DEAD_AFTER_S:
                lost.append(f"the server did not answer for {DEAD_AFTER_S:.0f} s")
                if self._conn_scope is not None:
                    self._conn_scope.cancel()
                return
            nonce = next(self._ping_nonce)
            self._ping_sent = {nonce: trio.current_time()}  # one outstanding is enough
            await _send_quietly(conn, ev.Ping(nonce, _now_ms()))

    async def _statistics(self, conn: ControlConnection) -> None:
        """LinkStatistics every second; a loss report to the server every other one."""
        previous_sent = previous_received = 0
        last = trio.current_time()
        for tick in itertools.count(1):
            await trio.sleep(STATS_EVERY_S)
            now = trio.current_time()
            elapsed, last = max(1e-3, now - last), now
            self._expire_absent(now)
            link, audio = self.link, self.audio
            sent = link.sent_bytes if link is not None else 0
            received = link.received_bytes if link is not None else 0
            if sent < previous_sent or received < previous_received:  # a new link
                previous_sent = previous_received = 0
            speakers: dict[int, ce.SpeakerLink] = {}
            if audio is not None:
                for source_id, stats in audio.receiver.statistics().speakers.items():
                    if not isinstance(source_id, int):
                        continue
                    jitter = stats.jitter
                    genuine = max(1, jitter.received - jitter.duplicates - jitter.dropped)
                    member = self._sources.get(source_id)
                    speakers[source_id] = ce.SpeakerLink(
                        username=member.username if member else "",
                        loss=min(1.0, jitter.loss_estimate),
                        late_loss=jitter.late / genuine,
                        delay_ms=jitter.target_delay * 1000,
                        concealed=jitter.concealed,
                    )
            self._emit(
                ce.LinkStatistics(
                    transport=link.transport if link is not None else ev.VoiceTransport.UNKNOWN,
                    udp_rtt_ms=link.rtt_ms if link is not None else None,
                    tcp_rtt_ms=self.tcp_rtt_ms,
                    send_kbps=(sent - previous_sent) * 8 / elapsed / 1000,
                    receive_kbps=(received - previous_received) * 8 / elapsed / 1000,
                    speakers=speakers,
                    reported_loss=self._reported_loss,
                )
            )
            previous_sent, previous_received = sent, received
            if audio is not None and link is not None and tick % LOSS_REPORT_EVERY == 0:
                report = audio.loss_report()
                if report is not None:
                    await _send_quietly(conn, report)


_HANDLERS: dict[type, Callable[[Client, Any, int], None]] = {
    ev.ChatMessage: Client._on_chat,
    ev.HistoryBatch: Client._on_history,
    ev.DirectMessage: Client._on_direct,
    ev.RoomSnapshot: Client._on_snapshot,
    ev.MemberJoined: Client._on_member_joined,
    ev.MemberLeft: Client._on_member_left,
    ev.RoomDeleted: Client._on_room_deleted,
    ev.VoiceRoomChanged: Client._on_voice_room,
    ev.VoiceSetupInfo: Client._on_voice_setup,
    ev.VoiceDatagram: Client._on_tunnel,
    ev.VoiceLossFeedback: Client._on_loss_feedback,
    ev.Ping: Client._on_ping,
    ev.Pong: Client._on_pong,
    ev.TypingNotice: Client._pass,
    ev.PresenceChanged: Client._pass,
    ev.CallRinging: Client._on_call,
    ev.CallConnected: Client._on_call,
    ev.CallEnded: Client._on_call,
    ev.Moderated: Client._pass,
    ev.ModerationDone: Client._pass,
}

_FINAL_GOODBYES = {
    ev.GoodbyeReason.REPLACED: "logged in elsewhere",
    ev.GoodbyeReason.KICKED: "kicked off the server",
    ev.GoodbyeReason.BANNED: "banned",
    ev.GoodbyeReason.LOGGED_OUT: "logged out",
}
"""Goodbyes after which reconnecting by ourselves would be wrong."""


async def _send_quietly(conn: ControlConnection, request: ev.ClientRequest, rid: int = 0) -> None:
    """Send; a closed connection is the reader's to report."""
    try:
        await conn.send(request, rid)
    except ConnectionClosed:
        pass


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def _oserror_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@asynccontextmanager
async def open_client(config: ClientConfig) -> AsyncIterator[Client]:
    """Start a client; it connects in the background (``await client.wait_connected()``).
    Leaving the block disconnects and stops every task."""
    client = Client(config)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client._supervise)
            if client.audio is not None:
                nursery.start_soon(client.audio.run)
            try:
                yield client
            finally:
                client._closing = True
                nursery.cancel_scope.cancel()
    finally:
        client._stopped.set()
        client._readable.set()
        if client.state is not CS.OFFLINE:
            client.state = CS.OFFLINE
            client.reason = "closed"
            client._state_changed.set()
