"""Logging in, heartbeats, and the end of a session.

Login is throttled per address and user (``LoginThrottle``); with open registration the
first login of an unknown name registers it. A second login of the same user replaces the
first session, which gets ``GB_REPLACED``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from echomesh_trio import __version__
from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import notice_frame
from echomesh_trio.server.passwords import hash_password, verify_password
from echomesh_trio.server.state import Session, username_problem
from echomesh_trio.server.store import UserExists, UserRecord

from .direct import deliver_pending

if TYPE_CHECKING:
    from echomesh_trio.server.connection import Connection
    from echomesh_trio.server.service import ControlService

log = logging.getLogger("echomesh.server")

LS = ev.LoginStatus


async def on_ping(
    svc: ControlService,
    conn: Connection,
    session: Session[Connection] | None,
    incoming: ev.Incoming[ev.Ping],
) -> None:
    ping = incoming.event
    conn.send_nowait(ev.Pong(ping.nonce, ping.sent_ms), incoming.request_id)


async def on_pong(
    svc: ControlService,
    conn: Connection,
    session: Session[Connection] | None,
    incoming: ev.Incoming[ev.Pong],
) -> None:
    """Nothing to do: any frame already counts against the idle timeout."""


async def on_login(
    svc: ControlService,
    conn: Connection,
    session: Session[Connection] | None,
    incoming: ev.Incoming[ev.Login],
) -> None:
    request, request_id = incoming.event, incoming.request_id

    def answer(status: LS, message: str) -> None:
        conn.send_nowait(ev.LoginResult(status, message=message), request_id)

    if session is not None:
        conn.send_nowait(
            ev.ErrorReply(
                ev.ErrorCode.ALREADY_LOGGED_IN, f"already logged in as {session.username}"
            ),
            request_id,
        )
        return
    problem = username_problem(request.username)
    if problem is not None or not request.password:
        answer(LS.BAD_REQUEST, problem or "password is empty")
        return
    keys = (f"addr:{conn.address}", f"user:{request.username.lower()}")
    wait = svc.throttle.wait_time(keys, trio.current_time())
    if wait > 0:
        answer(LS.TOO_MANY_ATTEMPTS, f"too many failed logins; try again in {wait:.0f} s")
        return
    user = await _authenticate(svc, conn, request, keys, answer)
    if user is None:
        return
    svc.throttle.record_success(keys[1:])
    if conn.closing:
        return
    await _start_session(svc, conn, user, request_id)


async def _authenticate(
    svc: ControlService,
    conn: Connection,
    request: ev.Login,
    keys: tuple[str, str],
    answer: Callable[[LS, str], None],
) -> UserRecord | None:
    """The user, registered now if registration is open; None after a refusal was sent.
    ``keys`` are the login throttle's: (address, username)."""
    store = svc.store
    user = await store.run(store.db.get_user, request.username)
    if user is None:
        if svc.settings.registration != "open":
            svc.throttle.record_failure(keys, trio.current_time())
            answer(LS.FORBIDDEN, "unknown user; registration is closed")
            return None
        hashed = await trio.to_thread.run_sync(
            hash_password,
            request.password,
            svc.settings.password_cost,
            limiter=svc.password_limiter,
        )
        try:
            user = await store.run(store.db.create_user, request.username, hashed, svc.now_ms())
        except UserExists:  # registered concurrently under another case or connection
            user = await store.run(store.db.get_user, request.username)
            assert user is not None
        else:
            log.info(
                "registered user %s (id %d) from %s", user.username, user.user_id, conn.address
            )
            return user
    ok = await trio.to_thread.run_sync(
        verify_password, request.password, user.password_hash, limiter=svc.password_limiter
    )
    if not ok:
        svc.throttle.record_failure(keys, trio.current_time())
        log.info("failed login for %s from %s", request.username, conn.address)
        answer(LS.WRONG_PASSWORD, "wrong username or password")
        return None
    return user


async def _start_session(
    svc: ControlService, conn: Connection, user: UserRecord, request_id: int
) -> None:
    session: Session[Connection] = Session(user.user_id, user.username, conn)
    old = svc.registry.current(user.user_id)
    if old is not None:
        end_session(svc, old, presence=False)
        old.peer.close(
            "replaced by a new login",
            ev.Goodbye(ev.GoodbyeReason.REPLACED, f"logged in again from {conn.address}"),
        )
    svc.registry.add_session(session)
    svc.sessions_by_conn[conn] = session
    conn.user = user.username
    voice_setup = None
    if svc.voice is not None:
        voice_setup = svc.voice.register(user.user_id)
        session.source_id = voice_setup.source_id
        svc.sessions_by_source[session.source_id] = session
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
        svc.broadcast_presence(session, online=True)
    await deliver_pending(svc, session)


def disconnected(svc: ControlService, conn: Connection) -> None:
    """The connection ended (for any reason): forget its session and tell others."""
    session = svc.sessions_by_conn.pop(conn, None)
    if session is None:
        return
    if svc.registry.current(session.user_id) is session:
        end_session(svc, session, presence=True)


def end_session(svc: ControlService, session: Session[Connection], presence: bool) -> None:
    """Take the session out of its rooms (members told), the relay and, with ``presence``,
    tell presence watchers it went offline."""
    svc.sessions_by_conn.pop(session.peer, None)
    if svc.voice is not None and session.source_id:
        svc.voice.unregister(session.source_id)
        svc.loss_feedback.forget(session.source_id)
        if svc.sessions_by_source.get(session.source_id) is session:
            del svc.sessions_by_source[session.source_id]
    for room, remaining in svc.registry.remove_session(session):
        svc.broadcast(remaining, notice_frame(ev.MemberLeft(room, session.member())))
    if presence:
        svc.broadcast_presence(session, online=False)
        svc.chat_buckets.pop(session.user_id, None)
