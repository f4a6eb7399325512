"""Logging in, heartbeats, and the end of a session.

Login is throttled per (address, user), per user and per address (``LoginThrottle``);
names are looked up exactly, then by canonical form (names.py). With open registration the
first login of an unknown name registers it, if the name is allowed and neither equals
nor looks like an existing one. With closed registration an unknown name gets the same
answer as a wrong password (401), after the same scrypt work, so that nobody can tell
which names exist.

A second login of the same user takes the first session over (resume): the new connection
gets the old one's rooms, active voice room and voice source id (with fresh voice keys), the
members see nothing, and the old connection gets ``GB_REPLACED``. This happens at once, so a
client whose old connection is dead but not yet noticed (the usual reconnect) never waits
for a timeout. A connection that ends without ``Logout`` keeps its session for
``resume_grace`` seconds, so a reconnect after a noticed drop is just as quiet.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from echomesh_trio import __version__
from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol.codec import notice_frame
from echomesh_trio.server.names import MAX_USERNAME, canonical, username_problem
from echomesh_trio.server.passwords import hash_password, verify_password
from echomesh_trio.server.request import ROOMS_PER_FRAME, Request, chunks
from echomesh_trio.server.state import Session
from echomesh_trio.server.store import BanRecord, NameUnavailable, UserExists, UserRecord

from .direct import deliver_pending

if TYPE_CHECKING:
    from echomesh_trio.server.connection import Connection
    from echomesh_trio.server.service import ControlService

log = logging.getLogger("echomesh.server")

LS = ev.LoginStatus

WRONG_CREDENTIALS = "wrong username or password"
"""The one answer for a wrong password and, with closed registration, an unknown name."""

_dummy_hashes: dict[int, str] = {}


async def _dummy_hash(svc: ControlService) -> str:
    """A hash to verify against for an unknown name, so that it costs what a known one
    does (made once per cost, in a worker thread like every hash)."""
    cost = svc.settings.password_cost
    stored = _dummy_hashes.get(cost)
    if stored is None:
        stored = await trio.to_thread.run_sync(
            hash_password, "no such user", cost, limiter=svc.password_limiter
        )
        _dummy_hashes[cost] = stored
    return stored


def login_name_problem(name: str) -> str | None:
    """Why a login attempt cannot even be looked up. The full rules (names.py) apply to
    registration only, so that accounts from older rules still log in."""
    if not name:
        return "username is empty"
    if len(name) > MAX_USERNAME:
        return f"username is longer than {MAX_USERNAME} characters"
    if not name.isprintable():
        return "username contains control characters"
    return None


def normal_address(address: str) -> str:
    """An IP address in one spelling (``::1`` for ``0:0::1``), so bans compare equal;
    other text as it is."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def ban_text(ban: BanRecord) -> str:
    """What a banned user is told (the login refusal, the goodbye): whom, until when, why."""
    who = f"the address {ban.address} is" if ban.address else "you are"
    return f"{who} banned{ban_end(ban)}: {ban.reason or 'no reason given'}"


def ban_end(ban: BanRecord) -> str:
    """ " until 2026-12-03 01:00:00 UTC", or " with no end date"."""
    if not ban.expires_ms:
        return " with no end date"
    end = datetime.fromtimestamp(ban.expires_ms / 1000, UTC)
    return f" until {end:%Y-%m-%d %H:%M:%S} UTC"


async def refused_if_banned(
    svc: ControlService, conn: Connection, user: UserRecord | None, request_id: int
) -> bool:
    """Refuse the login (403, with the reason and the end of the ban) if the user (when
    given) or else the connection's address is banned now; True if it was refused."""
    store = svc.store
    if user is not None:
        ban = await store.run(store.db.active_ban, user.user_id, None, svc.now_ms())
    else:
        ban = await store.run(store.db.active_ban, None, normal_address(conn.address), svc.now_ms())
    if ban is None:
        return False
    text = ban_text(ban)
    svc.metrics.login("banned")
    log.info(
        "refused login%s from %s: %s",
        f" of {user.username}" if user is not None else "",
        conn.address,
        text,
    )
    conn.send_nowait(
        ev.LoginResult(
            LS.FORBIDDEN, message=text, ban_reason=ban.reason, ban_expires_ms=ban.expires_ms or 0
        ),
        request_id,
    )
    return True


def expel(svc: ControlService, session: Session[Connection], goodbye: ev.Goodbye) -> None:
    """End a session on the server's initiative (kicked, banned): its call, rooms and
    presence end now, and the connection closes after the goodbye."""
    if svc.registry.current(session.user_id) is session:
        end_session(svc, session, presence=True)
    session.peer.close(goodbye.message, goodbye)


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
        svc.metrics.login(status.name.lower())
        conn.send_nowait(ev.LoginResult(status, message=message), request_id)

    if session is not None:
        conn.send_nowait(
            ev.ErrorReply(
                ev.ErrorCode.ALREADY_LOGGED_IN, f"already logged in as {session.username}"
            ),
            request_id,
        )
        return
    problem = login_name_problem(request.username)
    if problem is not None or not request.password:
        answer(LS.BAD_REQUEST, problem or "password is empty")
        return
    address, user_key = conn.address, canonical(request.username)
    wait = svc.throttle.wait_time(address, user_key, trio.current_time())
    if wait > 0:
        answer(LS.TOO_MANY_ATTEMPTS, f"too many failed logins; try again in {wait:.0f} s")
        return
    if user_key not in svc.admins and await refused_if_banned(svc, conn, None, request_id):
        return  # the address is banned (admins never are: they can always lift a ban)
    user = await _authenticate(svc, conn, request, answer)
    if user is None:
        return
    svc.throttle.record_success(address, user_key)
    if await refused_if_banned(svc, conn, user, request_id) or conn.closing:
        return
    svc.metrics.login("ok")
    if user.canonical is None:
        log.warning(
            "user %s (id %d) shares its canonical name with an older account and can log in"
            " under its exact name only",
            user.username,
            user.user_id,
        )
    await _start_session(svc, conn, user, request_id)


async def _authenticate(
    svc: ControlService,
    conn: Connection,
    request: ev.Login,
    answer: Callable[[LS, str], None],
) -> UserRecord | None:
    """The user, registered now if registration is open; None after a refusal was sent."""
    store = svc.store
    user = await store.run(store.db.get_user, request.username)
    if user is None and svc.settings.registration == "open":
        registered = await _register(svc, conn, request, answer)
        if registered is not None:
            return registered
        if conn.closing:
            return None
        # Registered concurrently (the same canonical name): log in to that account.
        user = await store.run(store.db.get_user, request.username)
        if user is None:
            return None
    stored = user.password_hash if user is not None else await _dummy_hash(svc)
    ok = await trio.to_thread.run_sync(
        verify_password, request.password, stored, limiter=svc.password_limiter
    )
    if user is None or not ok:
        svc.throttle.record_failure(conn.address, canonical(request.username), trio.current_time())
        log.info("failed login for %r from %s", request.username, conn.address)
        answer(LS.WRONG_PASSWORD, WRONG_CREDENTIALS)
        return None
    return user


async def _register(
    svc: ControlService,
    conn: Connection,
    request: ev.Login,
    answer: Callable[[LS, str], None],
) -> UserRecord | None:
    """Register an unknown name. None either after a refusal was sent (400), or, with
    nothing sent, when the same canonical name was registered meanwhile."""
    store = svc.store
    problem = username_problem(request.username)
    if problem is None:
        conflict = await store.run(store.db.name_conflict, request.username)
        problem = str(conflict) if conflict is not None else None
    if problem is not None:
        answer(LS.BAD_REQUEST, problem)
        return None
    hashed = await trio.to_thread.run_sync(
        hash_password, request.password, svc.settings.password_cost, limiter=svc.password_limiter
    )
    try:
        user = await store.run(store.db.create_user, request.username, hashed, svc.now_ms())
    except UserExists:
        return None
    except NameUnavailable as exc:  # a look-alike registered meanwhile
        answer(LS.BAD_REQUEST, str(exc))
        return None
    svc.metrics.registrations += 1
    log.info("registered user %s (id %d) from %s", user.username, user.user_id, conn.address)
    return user


async def _start_session(
    svc: ControlService, conn: Connection, user: UserRecord, request_id: int
) -> None:
    session: Session[Connection] = Session(user.user_id, user.username, conn)
    # A session the user already has (a connection that dropped, maybe not yet noticed,
    # or a login elsewhere) is taken over: its rooms, voice room and voice source id go
    # to the new one, and the other members see no change.
    old = svc.registry.add_session(session)
    svc.sessions_by_conn[conn] = session
    conn.user = user.username
    if old is not None:
        svc.sessions_by_conn.pop(old.peer, None)  # its connection's end is not the user's
        old.peer.close(
            "replaced by a new login",
            ev.Goodbye(ev.GoodbyeReason.REPLACED, f"logged in again from {conn.address}"),
        )
    voice_setup = None
    if svc.voice is not None:
        if old is not None and old.source_id:
            # Same source id (listeners know it) and active room; fresh keys, and nothing
            # more goes to the old client's address or tunnel.
            voice_setup = svc.voice.rekey(old.source_id)
        else:
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
            resumed=old is not None,
        ),
        request_id,
    )
    if old is not None:
        voice_room = (session.voice_room or "") if svc.voice is not None else ""
        parts = chunks(session.rooms, ROOMS_PER_FRAME)
        for i, part in enumerate(parts, 1):
            resumed = ev.SessionResumed(part, voice_room, i < len(parts))
            conn.send_nowait(resumed, request_id)
    if voice_setup is not None:
        conn.send_nowait(voice_setup)
    if old is not None:
        svc.calls.session_resumed(session, request_id)
    log.info(
        "login %s (id %d) from %s%s",
        user.username,
        user.user_id,
        conn.address,
        f", resuming {len(session.rooms)} rooms from {old.peer.address}" if old else "",
    )
    if old is None:
        svc.broadcast_presence(session, online=True)
    await deliver_pending(svc, session)


def disconnected(svc: ControlService, conn: Connection) -> None:
    """The connection ended (for any reason). Its session, if it is still the user's,
    stays for ``resume_grace`` seconds so that a reconnect can take it over unnoticed;
    after that (or at once, with no grace) it ends and others are told."""
    session = svc.sessions_by_conn.pop(conn, None)
    if session is None or svc.registry.current(session.user_id) is not session:
        return
    grace = svc.settings.resume_grace
    if grace > 0:
        log.info("session of %s kept %.0f s for a reconnect", session.username, grace)
        svc.background.start_soon(_end_unless_resumed, svc, session, grace)
    else:
        end_session(svc, session, presence=True)


async def _end_unless_resumed(
    svc: ControlService, session: Session[Connection], grace: float
) -> None:
    await trio.sleep(grace)
    if svc.registry.current(session.user_id) is session:
        log.info("session of %s ended: no reconnect within %.0f s", session.username, grace)
        end_session(svc, session, presence=True)


async def on_logout(svc: ControlService, req: Request[ev.Logout]) -> None:
    """End the session now (no grace), then say goodbye."""
    end_session(svc, req.session, presence=True)
    req.conn.close("logged out", ev.Goodbye(ev.GoodbyeReason.LOGGED_OUT, "logged out"))


def end_session(svc: ControlService, session: Session[Connection], presence: bool) -> None:
    """End its call (the other party told), take the session out of its rooms (members
    told), the relay and, with ``presence``, tell presence watchers it went offline."""
    svc.calls.session_ended(session)
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
        svc.budgets.forget_typing(session.user_id)
