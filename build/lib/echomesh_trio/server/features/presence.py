"""Who is online. Presence changes go only to connections that asked for the list once,
so that logins on a large server do not fan out to everyone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from echomesh_trio.protocol import events as ev
from echomesh_trio.server.request import MEMBERS_PER_FRAME, Request

if TYPE_CHECKING:
    from echomesh_trio.server.service import ControlService


async def on_list(svc: ControlService, req: Request[ev.ListPresence]) -> None:
    req.session.watching_presence = True
    online = [s.member() for s in svc.registry.online()]
    req.reply_in_parts(
        online, MEMBERS_PER_FRAME, lambda part, more: ev.PresenceSnapshot(part, more)
    )
