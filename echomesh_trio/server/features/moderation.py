"""Moderation: kick, server-mute, ban, and room owners.

Who may do what:

- A room's owners (its creator, and the users an owner or an admin made owner with
  ``GrantOwner``) may kick from that room, mute and unmute there, and grant or revoke its
  ownership (the creator's cannot be revoked).
- Server admins (the ``admins`` setting) may do all of that in every room, and also kick
  off the server, mute everywhere, and ban or unban a user or an address, optionally for
  a time. Room owners cannot act on an admin; nobody acts on themselves.

Every request is answered with ``ModerationDone`` or an error, the affected user is told
(``Moderated``, or the ``Goodbye`` that closes its connection), and the action is logged.
Bans are in the database (they hold across restarts) and checked at login; mutes are in
memory (they hold across the user's sessions until lifted or the server restarts).
Requests are budgeted with room actions (``room_action_rate``).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import trio

from echomesh_trio.protocol import events as ev
from echomesh_trio.server.names import canonical
from echomesh_trio.server.request import Request, no_such_room, quoted
from echomesh_trio.server.store import BanRecord, UserRecord

from .rooms import refused, remove_member
from .session import ban_end, ban_text, expel, normal_address

if TYPE_CHECKING:
    from echomesh_trio.server.service import ControlService

log = logging.getLogger("echomesh.server")

E = ev.ErrorCode
K = ev.ModerationKind

MAX_REASON = 200
"""Characters of a moderation reason; it is repeated in notices and logs."""

MAX_BAN_SECONDS = 100 * 365 * 86_400.0
"""Longer bans are refused as nonsense (use 0 for a ban without an end)."""

AnyMod = ev.Kick | ev.Mute | ev.Unmute | ev.Ban | ev.Unban | ev.GrantOwner | ev.RevokeOwner


def _where(room: str) -> str:
    return f"in room {quoted(room)}" if room else "everywhere"


async def _allowed(svc: ControlService, req: Request[AnyMod], room: str) -> bool:
    """Whether the sender may moderate ``room`` ("" : the whole server, admins only);
    refuses (and returns False) otherwise. Spends a room-action token."""
    if refused(req, svc.budgets.allow_room_action(req.session.user_id, trio.current_time())):
        return False
    reason = getattr(req.event, "reason", "")
    if len(reason) > MAX_REASON:
        req.fail(E.TOO_LONG, f"a reason is at most {MAX_REASON} characters")
        return False
    if svc.is_admin(req.session):
        if room and not svc.registry.room_exists(room):
            req.fail(E.UNKNOWN_ROOM, no_such_room(room))
            return False
        return True
    if not room:
        req.fail(E.FORBIDDEN, "only server admins may do that server-wide")
        return False
    if not svc.registry.room_exists(room):
        req.fail(E.UNKNOWN_ROOM, no_such_room(room))
        return False
    if not await svc.store.run(svc.store.db.is_room_owner, room, req.session.user_id):
        req.fail(E.FORBIDDEN, f"only the owners of room {quoted(room)} and server admins may")
        return False
    return True


async def _target(svc: ControlService, req: Request[AnyMod], username: str) -> UserRecord | None:
    """The user acted on: it exists, is not the sender, and is not an admin unless the
    sender is one; None after a refusal."""
    if not username:
        req.fail(E.BAD_REQUEST, "name the user")
        return None
    user = await svc.store.run(svc.store.db.get_user, username)
    if user is None:
        req.fail(E.UNKNOWN_USER, f"no user {quoted(username)}")
        return None
    if user.user_id == req.session.user_id:
        req.fail(E.BAD_REQUEST, "you cannot do that to yourself")
        return None
    if canonical(user.username) in svc.admins and not svc.is_admin(req.session):
        req.fail(E.FORBIDDEN, f"{user.username} is a server admin")
        return None
    return user


def _done(
    svc: ControlService, req: Request[AnyMod], done: ev.ModerationDone, reason: str = ""
) -> None:
    """Log the action and confirm it to the moderator."""
    svc.metrics.moderation[done.kind.name.lower()] += 1
    because = f" (reason: {reason!r})" if reason else ""
    log.info("moderation: %s: %s%s", req.session.username, done.message, because)
    req.reply(done)


# ---------------------------------------------------------------------- kick, mute


async def on_kick(svc: ControlService, req: Request[ev.Kick]) -> None:
    kick = req.event
    room = kick.room_id
    if not await _allowed(svc, req, room):
        return
    user = await _target(svc, req, kick.username)
    if user is None:
        return
    session = svc.registry.current(user.user_id)
    if room:
        if session is None or not svc.registry.is_member(session, room):
            req.fail(E.NOT_IN_ROOM, f"{user.username} is not in room {quoted(room)}")
            return
        left = remove_member(svc, session, room)
        assert left is not None
        session.peer.send_nowait(left)
        session.peer.send_nowait(ev.Moderated(K.KICK, room, req.session.member(), kick.reason))
        message = f"kicked {user.username} out of room {room!r}"
    else:
        if session is None:
            req.fail(E.USER_OFFLINE, f"{user.username} is not online")
            return
        by = f"kicked off the server by {req.session.username}"
        expel(
            svc,
            session,
            ev.Goodbye(ev.GoodbyeReason.KICKED, f"{by}: {kick.reason}" if kick.reason else by),
        )
        message = f"kicked {user.username} off the server"
    _done(svc, req, ev.ModerationDone(K.KICK, user.username, room, message=message), kick.reason)


async def on_mute(svc: ControlService, req: Request[ev.Mute] | Request[ev.Unmute]) -> None:
    event = req.event
    room, muting = event.room_id, isinstance(event, ev.Mute)
    if not await _allowed(svc, req, room):
        return
    user = await _target(svc, req, event.username)
    if user is None:
        return
    key = (user.user_id, room)
    if muting:
        already = key in svc.mutes
        svc.mutes.add(key)
        message = f"{'already muted' if already else 'muted'} {user.username} {_where(room)}"
    else:
        if key not in svc.mutes:
            req.fail(E.BAD_REQUEST, f"{user.username} is not muted {_where(room)}")
            return
        svc.mutes.discard(key)
        message = f"unmuted {user.username} {_where(room)}"
    kind = K.MUTE if muting else K.UNMUTE
    reason = event.reason if isinstance(event, ev.Mute) else ""
    session = svc.registry.current(user.user_id)
    if session is not None:
        svc.route_voice(session)
        session.peer.send_nowait(ev.Moderated(kind, room, req.session.member(), reason))
    _done(svc, req, ev.ModerationDone(kind, user.username, room, message=message), reason)


# ---------------------------------------------------------------------- bans


def _one_of(req: Request[ev.Ban] | Request[ev.Unban]) -> bool:
    if bool(req.event.username) == bool(req.event.address):
        req.fail(E.BAD_REQUEST, "name either a user or an address")
        return False
    return True


async def on_ban(svc: ControlService, req: Request[ev.Ban]) -> None:
    ban = req.event
    if not await _allowed(svc, req, "") or not _one_of(req):
        return
    if not (math.isfinite(ban.duration_s) and 0 <= ban.duration_s <= MAX_BAN_SECONDS):
        req.fail(E.BAD_REQUEST, "duration_s must be 0 (no end) or a positive number of seconds")
        return
    now_ms = svc.now_ms()
    expires_ms = now_ms + round(ban.duration_s * 1000) if ban.duration_s else None
    if ban.username:
        user = await _target(svc, req, ban.username)
        if user is None:
            return
        record = BanRecord(
            user.user_id, user.username, None, ban.reason, req.session.username, now_ms, expires_ms
        )
        current = svc.registry.current(user.user_id)
        victims = [current] if current is not None else []
        what = f"banned {user.username}"
    else:
        address = normal_address(ban.address)
        if address == normal_address(req.conn.address):
            req.fail(E.BAD_REQUEST, "that is your own address")
            return
        record = BanRecord(None, "", address, ban.reason, req.session.username, now_ms, expires_ms)
        victims = [
            s
            for s in svc.registry.online()
            if normal_address(s.peer.address) == address and not svc.is_admin(s)
        ]
        what = f"banned the address {address}"
    await svc.store.run(svc.store.db.add_ban, record)
    goodbye = ev.Goodbye(ev.GoodbyeReason.BANNED, ban_text(record))
    for session in victims:
        expel(svc, session, goodbye)
    done = ev.ModerationDone(
        K.BAN,
        record.username,
        address=record.address or "",
        expires_ms=expires_ms or 0,
        message=f"{what}{ban_end(record)} ({len(victims)} session(s) closed)",
    )
    _done(svc, req, done, ban.reason)


async def on_unban(svc: ControlService, req: Request[ev.Unban]) -> None:
    unban = req.event
    if not await _allowed(svc, req, "") or not _one_of(req):
        return
    if unban.username:
        user = await svc.store.run(svc.store.db.get_user, unban.username)
        if user is None:
            req.fail(E.UNKNOWN_USER, f"no user {quoted(unban.username)}")
            return
        lifted = await svc.store.run(svc.store.db.remove_ban, user.user_id, None)
        who, name, address = user.username, user.username, ""
    else:
        address = normal_address(unban.address)
        lifted = await svc.store.run(svc.store.db.remove_ban, None, address)
        who, name = f"the address {address}", ""
    if not lifted:
        req.fail(E.BAD_REQUEST, f"{who} is not banned")
        return
    _done(svc, req, ev.ModerationDone(K.UNBAN, name, address=address, message=f"unbanned {who}"))


# ---------------------------------------------------------------------- room owners


async def on_owner(
    svc: ControlService, req: Request[ev.GrantOwner] | Request[ev.RevokeOwner]
) -> None:
    event, db = req.event, svc.store.db
    room, granting = event.room_id, isinstance(event, ev.GrantOwner)
    if not room:
        req.fail(E.BAD_REQUEST, "name the room")
        return
    if not await _allowed(svc, req, room):
        return
    user = await _target(svc, req, event.username)
    if user is None:
        return
    if granting:
        added = await svc.store.run(
            db.add_room_owner, room, user.user_id, req.session.user_id, svc.now_ms()
        )
        is_creator = await svc.store.run(db.room_owner, room) == user.user_id
        new = added and not is_creator
        message = f"{user.username} {'is now' if new else 'already was'} an owner of room {room!r}"
    else:
        if await svc.store.run(db.room_owner, room) == user.user_id:
            req.fail(
                E.FORBIDDEN, f"{user.username} created room {quoted(room)} and stays its owner"
            )
            return
        if not await svc.store.run(db.remove_room_owner, room, user.user_id):
            req.fail(E.BAD_REQUEST, f"{user.username} is not an owner of room {quoted(room)}")
            return
        message = f"{user.username} is no longer an owner of room {room!r}"
    kind = K.OP if granting else K.DEOP
    session = svc.registry.current(user.user_id)
    if session is not None:
        session.peer.send_nowait(ev.Moderated(kind, room, req.session.member()))
    _done(svc, req, ev.ModerationDone(kind, user.username, room, message=message))
