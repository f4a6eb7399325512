"""The control service: the state every request handler shares, and the dispatch table.

``ControlService.dispatch`` is called by a connection's reader for each request, in order.
What each request does lives in ``server/features/`` (one module per feature: session,
rooms, chat, direct, presence, voice, calls, moderation); ``features.HANDLERS`` maps each
request type to its
handler, so a new request type is one handler in one obvious file plus one table entry.
Replies and broadcasts are queued on connections without waiting (see ``Connection``);
the only awaits are for the database and password hashing, which run in worker threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import notice_frame
from echomesh_trio.server import features
from echomesh_trio.server.call_control import CallControl
from echomesh_trio.server.config import Settings
from echomesh_trio.server.connection import Connection
from echomesh_trio.server.limits import BudgetPolicy, LoginThrottle, UserBudgets
from echomesh_trio.server.metrics import ServerMetrics
from echomesh_trio.server.names import canonical
from echomesh_trio.server.request import Request
from echomesh_trio.server.state import Registry, Session
from echomesh_trio.server.store import Store
from echomesh_trio.voice.loss import LossFeedback

log = logging.getLogger("echomesh.server")


class VoiceControl(Protocol):
    """What the control plane needs from the voice relay (``server.voice_control.RelayControl``
    over the pure ``voice.relay.VoiceRelay``)."""

    async def serve_udp(
        self, host: str, port: int = 0, *, task_status: trio.TaskStatus[Any] = ...
    ) -> None: ...
    def register(self, user_id: int) -> ev.VoiceSetupInfo: ...
    def rekey(self, source_id: int) -> ev.VoiceSetupInfo: ...
    def unregister(self, source_id: int) -> None: ...
    def set_active_room(self, source_id: int, room_id: str | None) -> None: ...
    def set_muted(self, source_id: int, muted: bool) -> None: ...
    def set_transport(
        self, source_id: int, transport: ev.VoiceTransport, send: Callable[[bytes], bool]
    ) -> None: ...
    def receive_tunnelled(self, source_id: int, datagram: bytes) -> None: ...
    def user_report(self, source_id: int) -> ev.VoiceStatsReport: ...


class ControlService:
    """Shared state of the control plane; handlers in ``features`` do the work."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        room_names: Iterable[str],
        voice: VoiceControl | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.store = store
        self.registry: Registry[Connection] = Registry(room_names)
        self.voice = voice
        self.throttle = LoginThrottle()
        self.budgets = UserBudgets(
            BudgetPolicy(
                message_rate=settings.chat_rate,
                message_burst=settings.chat_burst,
                room_action_rate=settings.room_action_rate,
                room_action_burst=settings.room_action_burst,
                rooms_per_hour=settings.rooms_per_user_per_hour,
                max_rooms=settings.max_rooms,
                typing_interval=settings.typing_interval,
            )
        )
        self.sessions_by_conn: dict[Connection, Session[Connection]] = {}
        self.sessions_by_source: dict[int, Session[Connection]] = {}  # voice source id
        self.loss_feedback = LossFeedback()
        self.password_limiter = trio.CapacityLimiter(2)  # scrypt uses 16 MiB each
        self.background: trio.Nursery  # set by the server: owner of short follow-up tasks
        self.calls = CallControl(self, settings.call_ring_timeout)
        self.admins = frozenset(filter(None, (canonical(n) for n in settings.admins)))
        self.mutes: set[tuple[int, str]] = set()
        """Server mutes: (user id, room); room "" is everywhere. In memory: a mute lasts
        across the user's sessions until lifted or the server restarts."""

    # ------------------------------------------------------------------ dispatch
    async def dispatch(self, conn: Connection, incoming: ev.Incoming[ev.ClientRequest]) -> None:
        request = incoming.event
        session = self.sessions_by_conn.get(conn)
        open_handler = features.OPEN_HANDLERS.get(type(request))
        if open_handler is not None:
            await open_handler(self, conn, session, incoming)
            return
        if session is None:
            conn.send_nowait(
                ev.ErrorReply(ev.ErrorCode.NOT_LOGGED_IN, "log in first"), incoming.request_id
            )
            return
        handler = features.HANDLERS[type(request)]
        await handler(self, Request(conn, session, incoming.request_id, request))

    def disconnected(self, conn: Connection) -> None:
        """The connection ended (for any reason): forget its session and tell others."""
        features.session.disconnected(self, conn)

    # ------------------------------------------------------------------ shared helpers
    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    @staticmethod
    def broadcast(sessions: Iterable[Session[Connection]], frame: bytes) -> None:
        """Hand one encoded frame to every session's connection (never blocks)."""
        for session in sessions:
            session.peer.send_frame_nowait(frame)

    def not_in_room_code(self, room: str) -> ev.ErrorCode:
        """For a request about a room the session is not in: NOT_IN_ROOM if the room
        exists, UNKNOWN_ROOM if it does not."""
        return (
            ev.ErrorCode.NOT_IN_ROOM
            if self.registry.room_exists(room)
            else ev.ErrorCode.UNKNOWN_ROOM
        )

    def broadcast_presence(self, session: Session[Connection], online: bool) -> None:
        watchers = [s for s in self.registry.presence_watchers() if s is not session]
        if watchers:
            self.broadcast(watchers, notice_frame(ev.PresenceChanged(session.member(), online)))

    def set_voice_room(
        self, session: Session[Connection], room: str | None, request_id: int = 0
    ) -> None:
        """Make ``room`` the session's active voice room and tell its client. During a
        connected call the voice stays in the call; the room is where it goes after."""
        session.voice_room = room
        if self.voice is not None and session.source_id:
            self.route_voice(session)
            session.peer.send_nowait(ev.VoiceRoomChanged(room or ""), request_id)

    def route_voice(self, session: Session[Connection]) -> None:
        """Point the relay at where the session's voice goes now: its connected call,
        else its active room; muted if a server mute covers that place."""
        if self.voice is None or not session.source_id:
            return
        user, everywhere = session.user_id, (session.user_id, "") in self.mutes
        room: str | None = self.calls.relay_room(user)
        if room is not None:
            muted = everywhere
        else:
            room = session.voice_room
            muted = everywhere or (room is not None and (user, room) in self.mutes)
        self.voice.set_active_room(session.source_id, room)
        self.voice.set_muted(session.source_id, muted)

    def is_admin(self, session: Session[Connection]) -> bool:
        """Named in the ``admins`` setting (compared by canonical form)."""
        return canonical(session.username) in self.admins

    def active_calls(self) -> list[dict[str, object]]:
        """The calls ringing or connected now, JSON-ready (for the HTTP API)."""
        return self.calls.active_calls()
