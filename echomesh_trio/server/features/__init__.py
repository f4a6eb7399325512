"""What each request does, one module per feature, and the table that routes to them.

``OPEN_HANDLERS`` serve requests allowed before login (login itself, ping, pong) and get
the connection and its session, if any; ``HANDLERS`` serve everything else and get a
``Request`` of a logged-in session. Every ``ClientRequest`` type appears in exactly one of
the two (tests/server/test_dispatch.py checks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from echomesh_trio.protocol import events as ev

from . import calls, chat, direct, moderation, presence, rooms, session, voice

if TYPE_CHECKING:
    from echomesh_trio.server.connection import Connection
    from echomesh_trio.server.request import Request
    from echomesh_trio.server.service import ControlService
    from echomesh_trio.server.state import Session

OpenHandler = Callable[
    ["ControlService", "Connection", "Session[Connection] | None", "ev.Incoming[Any]"],
    Awaitable[None],
]
Handler = Callable[["ControlService", "Request[Any]"], Awaitable[None]]

OPEN_HANDLERS: dict[type, OpenHandler] = {
    ev.Login: session.on_login,
    ev.Ping: session.on_ping,
    ev.Pong: session.on_pong,
}

HANDLERS: dict[type, Handler] = {
    ev.CreateRoom: rooms.on_create,
    ev.JoinRoom: rooms.on_join,
    ev.LeaveRoom: rooms.on_leave,
    ev.DeleteRoom: rooms.on_delete,
    ev.ListRooms: rooms.on_list,
    ev.SendChat: chat.on_chat,
    ev.SetTyping: chat.on_typing,
    ev.SendDirect: direct.on_direct,
    ev.ListPresence: presence.on_list,
    ev.Logout: session.on_logout,
    ev.SetVoiceRoom: voice.on_set_room,
    ev.ChooseVoiceTransport: voice.on_transport,
    ev.VoiceDatagram: voice.on_tunnelled,
    ev.RequestVoiceStats: voice.on_stats,
    ev.ReportVoiceLoss: voice.on_loss_report,
    ev.PlaceCall: calls.on_place,
    ev.AcceptCall: calls.on_accept,
    ev.RejectCall: calls.on_reject,
    ev.HangUp: calls.on_hang_up,
    ev.Kick: moderation.on_kick,
    ev.Mute: moderation.on_mute,
    ev.Unmute: moderation.on_mute,
    ev.Ban: moderation.on_ban,
    ev.Unban: moderation.on_unban,
    ev.GrantOwner: moderation.on_owner,
    ev.RevokeOwner: moderation.on_owner,
}
