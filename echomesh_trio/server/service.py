"""What the server does with each request: login, rooms, chat, direct messages, presence.

``ControlService.dispatch`` is called by a connection's reader for each request, in order.
Replies and broadcasts are queued on connections without waiting (see ``Connection``);
the only awaits are for the database and password hashing, which run in worker threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

import trio

from echomesh_trio import __version__
from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import encode_notice, notice_frame
from echomesh_trio.protocol.framing import MAX_FRAME_SIZE
from echomesh_trio.server.config import Settings
from echomesh_trio.server.connection import Connection
from echomesh_trio.server.limits import LoginThrottle, TokenBucket
from echomesh_trio.server.passwords import hash_password, verify_password
from echomesh_trio.server.state import Registry, Session, room_name_problem, username_problem
from echomesh_trio.server.store import Store, UserExists, UserRecord

log = logging.getLogger("echomesh.server")

E = ev.ErrorCode
LS = ev.LoginStatus


class VoiceControl(Protocol):
    """What the control plane needs from the voice relay (``server.voice_control.RelayControl``
    over the pure ``voice.relay.VoiceRelay``)."""

    async def serve_udp(
        self, host: str, port: int = 0, *, task_status: trio.TaskStatus[Any] = ...
    ) -> None: ...
    def register(self, user_id: int) -> ev.VoiceSetupInfo: ...
    def unregister(self, source_id: int) -> None: ...
    def set_active_room(self, source_id: int, room_id: str | None) -> None: ...
    def set_transport(
        self, source_id: int, transport: ev.VoiceTransport, send: Callable[[bytes], bool]
    ) -> None: ...
    def receive_tunnelled(self, source_id: int, datagram: bytes) -> None: ...
    def user_report(self, source_id: int) -> ev.VoiceStatsReport: ...


class ControlService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        room_names: Iterable[str],
        voice: VoiceControl | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry: Registry[Connection] = Registry(room_names)
        self.voice = voice
        self.throttle = LoginThrottle()
        self._chat_buckets: dict[int, TokenBucket] = {}
        self._sessions_by_conn: dict[Connection, Session[Connection]] = {}
        self._password_limiter = trio.CapacityLimiter(2)  # scrypt uses 16 MiB each
        self.background: trio.Nursery  # set by the server: owner of short follow-up tasks

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    @staticmethod
    def _error(
        conn: Connection, request: ev.ClientRequest, code: E, message: str, retry: float = 0.0
    ) -> None:
        conn.send_nowait(ev.ErrorReply(code, message, retry, request.request_id))

    def _take_chat_token(
        self, conn: Connection, session: Session[Connection], request: ev.ClientRequest
    ) -> bool:
        now = trio.current_time()
        bucket = self._chat_buckets.get(session.user_id)
        if bucket is None:
            bucket = self._chat_buckets[session.user_id] = TokenBucket(
                self.settings.chat_rate, self.settings.chat_burst, now
            )
        if bucket.try_take(now):
            return True
        wait = bucket.retry_after(now)
        self._error(conn, request, E.RATE_LIMITED, f"sending too fast; retry in {wait:.2f} s", wait)
        return False

    def _content_problem(self, content: str) -> tuple[E, str] | None:
        if not content.strip():
            return E.BAD_REQUEST, "message is empty"
        if len(content) > self.settings.max_chat_chars:
            limit = self.settings.max_chat_chars
            return E.TOO_LONG, f"message has {len(content)} characters; the limit is {limit}"
        return None

    @staticmethod
    def _broadcast(sessions: Iterable[Session[Connection]], frame: bytes) -> None:
        for session in sessions:
            session.peer.send_frame_nowait(frame)

    # ------------------------------------------------------------------ dispatch
    async def dispatch(self, conn: Connection, request: ev.ClientRequest) -> None:
        if isinstance(request, ev.Ping):
            conn.send_nowait(ev.Pong(request.nonce, request.sent_ms), request.request_id)
            return
        if isinstance(request, ev.Pong):
            return
        session = self._sessions_by_conn.get(conn)
        if isinstance(request, ev.Login):
            if session is not None:
                self._error(
                    conn, request, E.ALREADY_LOGGED_IN, f"already logged in as {session.username}"
                )
                return
            await self._on_login(conn, request)
            return
        if session is None:
            self._error(conn, request, E.NOT_LOGGED_IN, "log in first")
            return
        match request:
            case ev.CreateRoom():
                await self._on_create(conn, session, request)
            case ev.JoinRoom():
                await self._on_join(conn, session, request)
            case ev.LeaveRoom():
                await self._on_leave(conn, session, request)
            case ev.SendChat():
                await self._on_chat(conn, session, request)
            case ev.SendDirect():
                await self._on_direct(conn, session, request)
            case _:
                self._on_sync_request(conn, session, request)

    def _on_sync_request(
        self, conn: Connection, session: Session[Connection], request: ev.ClientRequest
    ) -> None:
        match request:
            case ev.SetTyping():
                self._on_typing(conn, session, request)
            case ev.ListRooms():
                rooms = _chunks(self.registry.listing(), ROOMS_PER_FRAME)
                for i, part in enumerate(rooms, 1):
                    conn.send_nowait(ev.RoomListing(part, more=i < len(rooms)), request.request_id)
            case ev.ListPresence():
                session.watching_presence = True
                online = tuple(s.member() for s in self.registry.online())
                parts = _chunks(online, MEMBERS_PER_FRAME)
                for i, who in enumerate(parts, 1):
                    conn.send_nowait(
                        ev.PresenceSnapshot(who, more=i < len(parts)), request.request_id
                    )
            case ev.SetVoiceRoom():
                self._on_set_voice_room(conn, session, request)
            case ev.ChooseVoiceTransport() | ev.VoiceDatagram() | ev.RequestVoiceStats():
                self._on_voice(conn, session, request)
            case _:  # pragma: no cover - the codec only yields the requests above
                self._error(
                    conn, request, E.BAD_REQUEST, f"unsupported request {type(request).__name__}"
                )

    # ------------------------------------------------------------------ login
    async def _on_login(self, conn: Connection, request: ev.Login) -> None:
        username = request.username
        problem = username_problem(username)
        if problem is not None or not request.password:
            message = problem or "password is empty"
            conn.send_nowait(ev.LoginResult(LS.BAD_REQUEST, message=message), request.request_id)
            return
        keys = (f"addr:{conn.address}", f"user:{username.lower()}")
        wait = self.throttle.wait_time(keys, trio.current_time())
        if wait > 0:
            conn.send_nowait(
                ev.LoginResult(
                    LS.TOO_MANY_ATTEMPTS,
                    message=f"too many failed logins; try again in {wait:.0f} s",
                ),
                request.request_id,
            )
            return
        user = await self._authenticate(conn, request, keys)
        if user is None:
            return
        self.throttle.record_success(keys[1:])
        if conn.closing:
            return
        await self._start_session(conn, user, request.request_id)

    async def _authenticate(
        self, conn: Connection, request: ev.Login, keys: tuple[str, str]
    ) -> UserRecord | None:
        """The user, registered now if registration is open; None after a refusal was sent.
        ``keys`` are the login throttle's: (address, username)."""
        user = await self.store.run(self.store.db.get_user, request.username)
        if user is None:
            if self.settings.registration != "open":
                self.throttle.record_failure(keys, trio.current_time())
                conn.send_nowait(
                    ev.LoginResult(LS.FORBIDDEN, message="unknown user; registration is closed"),
                    request.request_id,
                )
                return None
            hashed = await trio.to_thread.run_sync(
                hash_password,
                request.password,
                self.settings.password_cost,
                limiter=self._password_limiter,
            )
            try:
                user = await self.store.run(
                    self.store.db.create_user, request.username, hashed, self._now_ms()
                )
            except UserExists:  # registered concurrently under another case or connection
                user = await self.store.run(self.store.db.get_user, request.username)
                assert user is not None
            else:
                log.info(
                    "registered user %s (id %d) from %s", user.username, user.user_id, conn.address
                )
                return user
        ok = await trio.to_thread.run_sync(
            verify_password, request.password, user.password_hash, limiter=self._password_limiter
        )
        if not ok:
            self.throttle.record_failure(keys, trio.current_time())
            log.info("failed login for %s from %s", request.username, conn.address)
            conn.send_nowait(
                ev.LoginResult(LS.WRONG_PASSWORD, message="wrong username or password"),
                request.request_id,
            )
            return None
        return user

    async def _start_session(self, conn: Connection, user: UserRecord, request_id: int) -> None:
        session: Session[Connection] = Session(user.user_id, user.username, conn)
        old = self.registry.current(user.user_id)
        if old is not None:
            self._end_session(old, presence=False)
            old.peer.close(
                "replaced by a new login",
                ev.Goodbye(ev.GoodbyeReason.REPLACED, f"logged in again from {conn.address}"),
            )
        self.registry.add_session(session)
        self._sessions_by_conn[conn] = session
        conn.user = user.username
        voice_setup = None
        if self.voice is not None:
            voice_setup = self.voice.register(user.user_id)
            session.source_id = voice_setup.source_id
        conn.send_nowait(
            ev.LoginResult(
                LS.OK,
                user_id=user.user_id,
                username=user.username,
                message=f"welcome, {user.username}",
                server_version=f"echomesh {__version__}",
            ),
            request_id,
        )
        if voice_setup is not None:
            conn.send_nowait(voice_setup)
        log.info("login %s (id %d) from %s", user.username, user.user_id, conn.address)
        if old is None:
            self._broadcast_presence(session, online=True)
        await self._deliver_pending_direct(session)

    async def _deliver_pending_direct(self, session: Session[Connection]) -> None:
        pending = await self.store.run(self.store.db.pending_direct, session.user_id)
        if not pending or self.registry.current(session.user_id) is not session:
            return
        for message in pending:
            session.peer.send_nowait(message)
        await self._mark_delivered_when_written(session.peer, [m.message_id for m in pending])

    async def _mark_delivered_when_written(self, conn: Connection, message_ids: list[int]) -> None:
        """Mark direct messages delivered once their frames have left for the recipient.

        Until then they stay pending, so a connection lost in between gets them again at
        the next login (at-least-once; clients recognise repeats by ``message_id``).
        """
        if await conn.wait_written(conn.frames_queued):
            await self.store.run(self.store.db.mark_delivered, message_ids)

    def _broadcast_presence(self, session: Session[Connection], online: bool) -> None:
        watchers = [s for s in self.registry.presence_watchers() if s is not session]
        if watchers:
            self._broadcast(watchers, notice_frame(ev.PresenceChanged(session.member(), online)))

    # ------------------------------------------------------------------ disconnect
    def disconnected(self, conn: Connection) -> None:
        """The connection ended (for any reason): forget its session and tell others."""
        session = self._sessions_by_conn.pop(conn, None)
        if session is None:
            return
        if self.registry.current(session.user_id) is session:
            self._end_session(session, presence=True)

    def _end_session(self, session: Session[Connection], presence: bool) -> None:
        self._sessions_by_conn.pop(session.peer, None)
        if self.voice is not None and session.source_id:
            self.voice.unregister(session.source_id)
        for room, remaining in self.registry.remove_session(session):
            self._broadcast(remaining, notice_frame(ev.MemberLeft(room, session.member())))
        if presence:
            self._broadcast_presence(session, online=False)
            self._chat_buckets.pop(session.user_id, None)

    # ------------------------------------------------------------------ rooms
    async def _on_create(
        self, conn: Connection, session: Session[Connection], request: ev.CreateRoom
    ) -> None:
        problem = room_name_problem(request.room_id)
        if problem is not None:
            self._error(conn, request, E.INVALID_NAME, problem)
            return
        if self.registry.room_exists(request.room_id):
            self._error(
                conn, request, E.ROOM_EXISTS, f"room {request.room_id!r} already exists; join it"
            )
            return
        created = await self.store.run(
            self.store.db.create_room, request.room_id, session.user_id, self._now_ms()
        )
        if not self.registry.create_room(request.room_id) and not created:
            self._error(
                conn, request, E.ROOM_EXISTS, f"room {request.room_id!r} already exists; join it"
            )
            return
        log.info("%s created room %r", session.username, request.room_id)
        await self._join(conn, session, request.room_id, request.request_id)

    async def _on_join(
        self, conn: Connection, session: Session[Connection], request: ev.JoinRoom
    ) -> None:
        if not self.registry.room_exists(request.room_id):
            self._error(
                conn, request, E.UNKNOWN_ROOM, f"no room named {request.room_id!r}; create it first"
            )
            return
        await self._join(conn, session, request.room_id, request.request_id)

    async def _join(
        self, conn: Connection, session: Session[Connection], room: str, request_id: int
    ) -> None:
        newly = self.registry.join(session, room)
        if newly:
            others = [s for s in self.registry.members(room) if s is not session]
            self._broadcast(others, notice_frame(ev.MemberJoined(room, session.member())))
        members = tuple(s.member() for s in self.registry.members(room))
        parts = _chunks(members, MEMBERS_PER_FRAME)
        for i, part in enumerate(parts, 1):
            conn.send_nowait(ev.RoomSnapshot(room, part, more=i < len(parts)), request_id)
        if newly:  # the room joined last becomes the active voice room
            self._set_voice_room(session, room)
        history = await self.store.run(
            self.store.db.recent_chat, room, self.settings.history_on_join
        )
        if history and self.registry.is_member(session, room):
            for frame in history_frames(room, history):
                conn.send_frame_nowait(frame)

    async def _on_leave(
        self, conn: Connection, session: Session[Connection], request: ev.LeaveRoom
    ) -> None:
        room = request.room_id
        if not self.registry.leave(session, room):
            code = E.NOT_IN_ROOM if self.registry.room_exists(room) else E.UNKNOWN_ROOM
            self._error(conn, request, code, f"you are not in room {room!r}")
            return
        if session.voice_room == room:
            self._set_voice_room(session, session.rooms[-1] if session.rooms else None)
        frame = notice_frame(ev.MemberLeft(room, session.member()))
        self._broadcast(self.registry.members(room), frame)
        conn.send_nowait(ev.MemberLeft(room, session.member()), request.request_id)

    # ------------------------------------------------------------------ chat
    async def _on_chat(
        self, conn: Connection, session: Session[Connection], request: ev.SendChat
    ) -> None:
        room = request.room_id
        if not self.registry.is_member(session, room):
            code = E.NOT_IN_ROOM if self.registry.room_exists(room) else E.UNKNOWN_ROOM
            self._error(conn, request, code, f"join room {room!r} before writing to it")
            return
        problem = self._content_problem(request.content)
        if problem is not None:
            self._error(conn, request, *problem)
            return
        if not self._take_chat_token(conn, session, request):
            return
        message, is_new = await self.store.run(
            self.store.db.add_chat,
            room,
            session.user_id,
            session.username,
            request.content,
            request.client_msg_id[:64],
            self._now_ms(),
        )
        if not is_new:  # a resend: acknowledge to the sender only, no duplicate
            conn.send_nowait(message, request.request_id)
            return
        frame = notice_frame(message)
        for member in self.registry.members(room):
            if member is session:
                conn.send_frame_nowait(
                    notice_frame(message, request.request_id) if request.request_id else frame
                )
            else:
                member.peer.send_frame_nowait(frame)

    async def _on_direct(
        self, conn: Connection, session: Session[Connection], request: ev.SendDirect
    ) -> None:
        problem = self._content_problem(request.content)
        if problem is not None:
            self._error(conn, request, *problem)
            return
        if request.to_user_id:
            recipient = await self.store.run(self.store.db.get_user_by_id, request.to_user_id)
        else:
            recipient = await self.store.run(self.store.db.get_user, request.to_username)
        if recipient is None:
            who = request.to_username or f"id {request.to_user_id}"
            self._error(conn, request, E.UNKNOWN_USER, f"no user {who}")
            return
        if not self._take_chat_token(conn, session, request):
            return
        sender = UserRecord(session.user_id, session.username, "")
        message, is_new = await self.store.run(
            self.store.db.add_direct,
            sender,
            recipient,
            request.content,
            request.client_msg_id[:64],
            self._now_ms(),
        )
        conn.send_nowait(message, request.request_id)  # the sender's acknowledgement
        if not is_new:
            return
        if recipient.user_id == session.user_id:  # a note to self: the ack is the delivery
            await self._mark_delivered_when_written(conn, [message.message_id])
            return
        target = self.registry.current(recipient.user_id)
        if target is not None and not target.peer.closing:
            target.peer.send_nowait(message)
            # Confirmed by a task of its own so that this sender's requests do not wait
            # on another user's connection.
            self.background.start_soon(
                self._mark_delivered_when_written, target.peer, [message.message_id]
            )

    def _on_typing(
        self, conn: Connection, session: Session[Connection], request: ev.SetTyping
    ) -> None:
        if not self.registry.is_member(session, request.room_id):
            self._error(conn, request, E.NOT_IN_ROOM, f"you are not in room {request.room_id!r}")
            return
        notice = ev.TypingNotice(request.room_id, session.user_id, session.username, request.active)
        others = [s for s in self.registry.members(request.room_id) if s is not session]
        self._broadcast(others, notice_frame(notice))

    # ------------------------------------------------------------------ voice
    def _set_voice_room(
        self, session: Session[Connection], room: str | None, request_id: int = 0
    ) -> None:
        """Make ``room`` the session's active voice room and tell its client."""
        session.voice_room = room
        if self.voice is not None and session.source_id:
            self.voice.set_active_room(session.source_id, room)
            session.peer.send_nowait(ev.VoiceRoomChanged(room or ""), request_id)

    def _on_set_voice_room(
        self, conn: Connection, session: Session[Connection], request: ev.SetVoiceRoom
    ) -> None:
        room = request.room_id or None
        if room is not None and not self.registry.is_member(session, room):
            self._error(conn, request, E.NOT_IN_ROOM, f"join room {room!r} before talking in it")
            return
        if self.voice is None:
            self._error(conn, request, E.BAD_REQUEST, "voice is not enabled on this server")
            return
        self._set_voice_room(session, room, request.request_id)

    def _on_voice(
        self, conn: Connection, session: Session[Connection], request: ev.ClientRequest
    ) -> None:
        if self.voice is None:
            self._error(conn, request, E.BAD_REQUEST, "voice is not enabled on this server")
            return
        match request:
            case ev.VoiceDatagram():
                self.voice.receive_tunnelled(session.source_id, request.datagram)
            case ev.ChooseVoiceTransport():
                self.voice.set_transport(session.source_id, request.transport, _tunnel_sender(conn))
            case ev.RequestVoiceStats():
                conn.send_nowait(self.voice.user_report(session.source_id), request.request_id)


def _tunnel_sender(conn: Connection) -> Callable[[bytes], bool]:
    """A non-blocking way for the relay to push datagrams down this control connection."""

    def send(datagram: bytes) -> bool:
        return conn.offer_frame_nowait(notice_frame(ev.VoiceDatagram(datagram)))

    return send


MEMBERS_PER_FRAME = 256
"""Members per RoomSnapshot or PresenceSnapshot frame: a member encodes to at most ~160
bytes (a 32-character name of 4-byte characters), so 256 stay far below MAX_FRAME_SIZE."""

ROOMS_PER_FRAME = 128
"""Rooms per RoomListing frame: a room name is at most 64 characters (~270 bytes)."""

T = TypeVar("T")


def _chunks(items: Iterable[T], size: int) -> list[tuple[T, ...]]:
    """``items`` in tuples of at most ``size``; always at least one (maybe empty) tuple."""
    seq = tuple(items)
    return [seq[i : i + size] for i in range(0, len(seq), size)] or [()]


def history_frames(room: str, messages: list[ev.ChatMessage]) -> list[bytes]:
    """Split recent history into as few HistoryBatch frames as fit the frame limit."""
    budget = MAX_FRAME_SIZE - 256  # envelope, room name and length prefixes
    frames: list[bytes] = []
    batch: list[ev.ChatMessage] = []
    size = 0
    for message in messages:
        cost = len(encode_notice(message)) + 8
        if batch and size + cost > budget:
            frames.append(notice_frame(ev.HistoryBatch(room, tuple(batch))))
            batch, size = [], 0
        batch.append(message)
        size += cost
    if batch:
        frames.append(notice_frame(ev.HistoryBatch(room, tuple(batch))))
    return frames
