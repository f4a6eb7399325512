"""Maps ``EchoMsg`` frame bodies to typed events and back (sans-IO).

This is the only module that touches the generated ``message_pb2`` classes. Decoding is
role-specific, as in h11: a server decodes what clients may send (``decode_request``), a
client decodes what servers may send (``decode_notice``). Anything else is the peer's
fault and raises a ``ProtocolError`` subclass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from echomesh_trio.protocol import events as ev
from echomesh_trio.protocol import message_pb2 as pb
from echomesh_trio.protocol.errors import (
    BadRequest,
    MalformedMessage,
    ProtocolError,
    UnknownMessageType,
)
from echomesh_trio.protocol.framing import encode_frame

_Msg = Any  # pb.EchoMsg; typed loosely because the generated stubs are dynamic


def _parse(body: bytes) -> _Msg:
    msg: _Msg = pb.EchoMsg()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedMessage(f"undecodable EchoMsg: {exc}") from None
    return msg


def _need(msg: _Msg, field_name: str) -> Any:
    if not msg.HasField(field_name):
        raise MalformedMessage(f"message type {msg.type} requires the '{field_name}' field")
    return getattr(msg, field_name)


def _member_from(m: Any) -> ev.Member:
    return ev.Member(user_id=m.user_id, username=m.username, source_id=m.source_id)


def _member_into(target: Any, member: ev.Member) -> None:
    target.user_id = member.user_id
    target.username = member.username
    target.source_id = member.source_id


def _chat_from(c: Any) -> ev.ChatMessage:
    return ev.ChatMessage(
        message_id=c.message_id,
        room_id=c.room_id,
        user_id=c.user_id,
        username=c.username,
        content=c.content,
        timestamp_ms=c.timestamp_ms,
        client_msg_id=c.client_msg_id,
    )


def _chat_into(target: Any, m: ev.ChatMessage) -> None:
    target.message_id = m.message_id
    target.room_id = m.room_id
    target.user_id = m.user_id
    target.username = m.username
    target.content = m.content
    target.timestamp_ms = m.timestamp_ms
    target.client_msg_id = m.client_msg_id


def _enum(enum_cls: type[Any], value: int, what: str) -> Any:
    """A request's enum field: a value we do not define is a bad request (the frame itself
    is fine, so the connection stays)."""
    try:
        return enum_cls(value)
    except ValueError:
        raise BadRequest(f"unknown {what} {value}") from None


def _enum_or(enum_cls: type[Any], value: int, fallback: Any) -> Any:
    """A notice's enum field: a value newer than this client maps to ``fallback``."""
    try:
        return enum_cls(value)
    except ValueError:
        return fallback


# ------------------------------------------------------------------ client -> server

_ROOM_ACTIONS: dict[int, type[ev.CreateRoom | ev.JoinRoom | ev.LeaveRoom | ev.DeleteRoom]] = {
    pb.RA_CREATE: ev.CreateRoom,
    pb.RA_JOIN: ev.JoinRoom,
    pb.RA_LEAVE: ev.LeaveRoom,
    pb.RA_DELETE: ev.DeleteRoom,
}
_ROOM_ACTION_OF = {cls: action for action, cls in _ROOM_ACTIONS.items()}


def _req_login(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "login_request")
    return ev.Login(r.username, r.password, r.client_name)


def _req_room_action(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "room_action")
    cls = _ROOM_ACTIONS.get(r.action_type)
    if cls is None:
        raise BadRequest(f"unknown room action {r.action_type}")
    return cls(r.room_id)


def _req_chat(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "chat_msg")
    return ev.SendChat(r.room_id, r.content, r.client_msg_id)


def _req_direct(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "direct_msg")
    return ev.SendDirect(r.content, r.to_user_id, r.to_username, r.client_msg_id)


def _req_typing(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "typing")
    return ev.SetTyping(r.room_id, r.active)


def _req_voice_room(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "voice_active_room")
    return ev.SetVoiceRoom(r.room_id)


def _req_voice_transport(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "voice_transport")
    return ev.ChooseVoiceTransport(_enum(ev.VoiceTransport, r.transport, "voice transport"))


def _req_voice_loss(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "voice_loss_report")
    return ev.ReportVoiceLoss(
        tuple(ev.SpeakerLoss(x.source_id, x.expected, x.lost, x.late) for x in r.speakers)
    )


def _req_call(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "call_request")
    return ev.PlaceCall(r.to_user_id, r.to_username)


def _req_call_answer(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "call_answer")
    return ev.AcceptCall(r.call_id) if r.accept else ev.RejectCall(r.call_id)


def _req_hangup(m: _Msg) -> ev.ClientRequest:
    return ev.HangUp(_need(m, "call_hangup").call_id)


_ModRequest = ev.Kick | ev.Mute | ev.Unmute | ev.Ban | ev.Unban | ev.GrantOwner | ev.RevokeOwner
_MOD_DECODERS: dict[int, Callable[[Any], _ModRequest]] = {
    pb.MA_KICK: lambda r: ev.Kick(r.username, r.room_id, r.reason),
    pb.MA_MUTE: lambda r: ev.Mute(r.username, r.room_id, r.reason),
    pb.MA_UNMUTE: lambda r: ev.Unmute(r.username, r.room_id),
    pb.MA_BAN: lambda r: ev.Ban(r.username, r.address, r.duration_s, r.reason),
    pb.MA_UNBAN: lambda r: ev.Unban(r.username, r.address),
    pb.MA_OP: lambda r: ev.GrantOwner(r.room_id, r.username),
    pb.MA_DEOP: lambda r: ev.RevokeOwner(r.room_id, r.username),
}


def _req_mod(m: _Msg) -> ev.ClientRequest:
    r = _need(m, "mod_action")
    decoder = _MOD_DECODERS.get(r.kind)
    if decoder is None:
        raise BadRequest(f"unknown moderation action {r.kind}")
    return decoder(r)


def _encode_mod(msg: _Msg, request: _ModRequest) -> None:
    msg.type = pb.MT_MOD_ACTION
    a = msg.mod_action
    a.SetInParent()
    match request:
        case ev.Kick() | ev.Mute():
            a.kind = pb.MA_KICK if isinstance(request, ev.Kick) else pb.MA_MUTE
            a.username, a.room_id, a.reason = request.username, request.room_id, request.reason
        case ev.Unmute():
            a.kind, a.username, a.room_id = pb.MA_UNMUTE, request.username, request.room_id
        case ev.Ban():
            a.kind, a.username, a.address = pb.MA_BAN, request.username, request.address
            a.duration_s, a.reason = request.duration_s, request.reason
        case ev.Unban():
            a.kind, a.username, a.address = pb.MA_UNBAN, request.username, request.address
        case ev.GrantOwner() | ev.RevokeOwner():
            a.kind = pb.MA_OP if isinstance(request, ev.GrantOwner) else pb.MA_DEOP
            a.room_id, a.username = request.room_id, request.username


def _ping(m: _Msg) -> ev.Ping:
    return ev.Ping(m.ping.nonce, m.ping.sent_ms)


def _pong(m: _Msg) -> ev.Pong:
    return ev.Pong(m.ping.nonce, m.ping.sent_ms)


def _tunnel(m: _Msg) -> ev.VoiceDatagram:
    return ev.VoiceDatagram(_need(m, "voice_tunnel").datagram)


_REQUEST_DECODERS: dict[int, Callable[[_Msg], ev.ClientRequest]] = {
    pb.MT_LOGIN_REQUEST: _req_login,
    pb.MT_ROOM_ACTION: _req_room_action,
    pb.MT_CHAT_MSG: _req_chat,
    pb.MT_DIRECT_MSG: _req_direct,
    pb.MT_TYPING: _req_typing,
    pb.MT_ROOM_LIST_REQUEST: lambda m: ev.ListRooms(),
    pb.MT_PRESENCE_REQUEST: lambda m: ev.ListPresence(),
    pb.MT_LOGOUT: lambda m: ev.Logout(),
    pb.MT_VOICE_ACTIVE_ROOM: _req_voice_room,
    pb.MT_VOICE_TRANSPORT: _req_voice_transport,
    pb.MT_VOICE_STATS_REQUEST: lambda m: ev.RequestVoiceStats(),
    pb.MT_VOICE_LOSS_REPORT: _req_voice_loss,
    pb.MT_CALL_REQUEST: _req_call,
    pb.MT_CALL_ANSWER: _req_call_answer,
    pb.MT_CALL_HANGUP: _req_hangup,
    pb.MT_MOD_ACTION: _req_mod,
    pb.MT_PING: _ping,
    pb.MT_PONG: _pong,
    pb.MT_VOICE_TUNNEL: _tunnel,
}


def decode_request(body: bytes) -> ev.Incoming[ev.ClientRequest]:
    """Parse one frame body sent by a client. Raises ProtocolError for anything invalid
    (``BadRequest``, which leaves the connection open, for undefined enum values)."""
    msg = _parse(body)
    decoder = _REQUEST_DECODERS.get(msg.type)
    try:
        if decoder is None:
            raise UnknownMessageType(msg.type)
        return ev.Incoming(msg.request_id, decoder(msg))
    except ProtocolError as exc:
        exc.request_id = msg.request_id
        raise


def encode_request(request: ev.ClientRequest, request_id: int = 0) -> bytes:
    """Serialize a client request to a frame body."""
    msg: _Msg = pb.EchoMsg(request_id=request_id)
    match request:
        case ev.Login():
            msg.type = pb.MT_LOGIN_REQUEST
            lr = msg.login_request
            lr.username, lr.password = request.username, request.password
            lr.client_name = request.client_name
        case ev.CreateRoom() | ev.JoinRoom() | ev.LeaveRoom() | ev.DeleteRoom():
            msg.type = pb.MT_ROOM_ACTION
            msg.room_action.action_type = _ROOM_ACTION_OF[type(request)]
            msg.room_action.room_id = request.room_id
        case ev.SendChat():
            msg.type = pb.MT_CHAT_MSG
            msg.chat_msg.room_id = request.room_id
            msg.chat_msg.content = request.content
            msg.chat_msg.client_msg_id = request.client_msg_id
        case ev.SendDirect():
            msg.type = pb.MT_DIRECT_MSG
            d = msg.direct_msg
            d.content, d.to_user_id = request.content, request.to_user_id
            d.to_username, d.client_msg_id = request.to_username, request.client_msg_id
        case ev.SetTyping():
            msg.type = pb.MT_TYPING
            msg.typing.room_id = request.room_id
            msg.typing.active = request.active
        case ev.ListRooms():
            msg.type = pb.MT_ROOM_LIST_REQUEST
        case ev.ListPresence():
            msg.type = pb.MT_PRESENCE_REQUEST
        case ev.Logout():
            msg.type = pb.MT_LOGOUT
        case ev.SetVoiceRoom():
            msg.type = pb.MT_VOICE_ACTIVE_ROOM
            msg.voice_active_room.room_id = request.room_id
        case ev.ChooseVoiceTransport():
            msg.type = pb.MT_VOICE_TRANSPORT
            msg.voice_transport.transport = int(request.transport)
        case ev.RequestVoiceStats():
            msg.type = pb.MT_VOICE_STATS_REQUEST
        case ev.ReportVoiceLoss():
            msg.type = pb.MT_VOICE_LOSS_REPORT
            msg.voice_loss_report.SetInParent()
            for x in request.speakers:
                msg.voice_loss_report.speakers.add(
                    source_id=x.source_id, expected=x.expected, lost=x.lost, late=x.late
                )
        case ev.PlaceCall():
            msg.type = pb.MT_CALL_REQUEST
            msg.call_request.to_user_id = request.to_user_id
            msg.call_request.to_username = request.to_username
            msg.call_request.SetInParent()
        case ev.AcceptCall() | ev.RejectCall():
            msg.type = pb.MT_CALL_ANSWER
            msg.call_answer.call_id = request.call_id
            msg.call_answer.accept = isinstance(request, ev.AcceptCall)
            msg.call_answer.SetInParent()
        case ev.HangUp():
            msg.type = pb.MT_CALL_HANGUP
            msg.call_hangup.call_id = request.call_id
            msg.call_hangup.SetInParent()
        case (
            ev.Kick()
            | ev.Mute()
            | ev.Unmute()
            | ev.Ban()
            | ev.Unban()
            | ev.GrantOwner()
            | ev.RevokeOwner()
        ):
            _encode_mod(msg, request)
        case ev.Ping() | ev.Pong() | ev.VoiceDatagram():
            _encode_shared(msg, request)
        case _:  # pragma: no cover - exhaustiveness guard for our own callers
            raise TypeError(f"not a client request: {request!r}")
    return bytes(msg.SerializeToString())


def _encode_shared(msg: _Msg, event: ev.Ping | ev.Pong | ev.VoiceDatagram) -> None:
    match event:
        case ev.Ping():
            msg.type = pb.MT_PING
            msg.ping.nonce, msg.ping.sent_ms = event.nonce, event.sent_ms
        case ev.Pong():
            msg.type = pb.MT_PONG
            msg.ping.nonce, msg.ping.sent_ms = event.nonce, event.sent_ms
        case ev.VoiceDatagram():
            msg.type = pb.MT_VOICE_TUNNEL
            msg.voice_tunnel.datagram = event.datagram


# ------------------------------------------------------------------ server -> client


def encode_notice(notice: ev.ServerNotice, request_id: int = 0) -> bytes:
    """Serialize a server notice to a frame body; ``request_id`` echoes the request."""
    msg: _Msg = pb.EchoMsg(request_id=request_id)
    match notice:
        case ev.LoginResult():
            msg.type = pb.MT_LOGIN_RESPONSE
            r = msg.login_response
            r.status_code, r.user_id = notice.status_code, notice.user_id
            r.message, r.username = notice.message, notice.username
            r.server_version = notice.server_version
            r.ban_reason, r.ban_expires_ms = notice.ban_reason, notice.ban_expires_ms
            r.resumed = notice.resumed
        case ev.ErrorReply():
            msg.type = pb.MT_ERROR
            msg.error.code = int(notice.code)
            msg.error.message = notice.message
            msg.error.retry_after_s = notice.retry_after_s
        case ev.ChatMessage():
            msg.type = pb.MT_CHAT_MSG
            _chat_into(msg.chat_msg, notice)
        case ev.DirectMessage():
            msg.type = pb.MT_DIRECT_MSG
            d = msg.direct_msg
            d.message_id, d.from_user_id = notice.message_id, notice.from_user_id
            d.from_username, d.to_user_id = notice.from_username, notice.to_user_id
            d.to_username, d.content = notice.to_username, notice.content
            d.timestamp_ms, d.client_msg_id = notice.timestamp_ms, notice.client_msg_id
            d.offline = notice.offline
        case ev.MemberJoined() | ev.MemberLeft() | ev.RoomDeleted():
            msg.type = pb.MT_ROOM_EVENT
            kind, action, subject = _ROOM_EVENT_KINDS[type(notice)]
            msg.room_event.kind = kind
            msg.room_event.room_id = notice.room_id
            _member_into(msg.room_event.member, subject(notice))
            # Original EchoMesh clients read membership changes as RoomAction echoes.
            msg.room_action.action_type = action
            msg.room_action.room_id = notice.room_id
            msg.room_action.user_id = subject(notice).user_id
        case ev.RoomSnapshot():
            msg.type = pb.MT_ROOM_STATE
            msg.room_state.room_id = notice.room_id
            msg.room_state.more = notice.more
            for member in notice.members:
                _member_into(msg.room_state.members.add(), member)
        case ev.SessionResumed():
            msg.type = pb.MT_SESSION_RESUMED
            msg.session_resumed.rooms.extend(notice.rooms)
            msg.session_resumed.voice_room = notice.voice_room
            msg.session_resumed.more = notice.more
        case ev.RoomListing():
            msg.type = pb.MT_ROOM_LIST
            msg.room_list.more = notice.more
            for info in notice.rooms:
                msg.room_list.rooms.add(room_id=info.room_id, member_count=info.member_count)
        case ev.HistoryBatch():
            msg.type = pb.MT_HISTORY
            msg.history.room_id = notice.room_id
            for chat in notice.messages:
                _chat_into(msg.history.messages.add(), chat)
        case ev.TypingNotice():
            msg.type = pb.MT_TYPING
            t = msg.typing
            t.room_id, t.user_id = notice.room_id, notice.user_id
            t.username, t.active = notice.username, notice.active
        case ev.PresenceSnapshot():
            msg.type = pb.MT_PRESENCE_LIST
            msg.presence_list.more = notice.more
            for member in notice.online:
                _member_into(msg.presence_list.online.add(), member)
        case ev.PresenceChanged():
            msg.type = pb.MT_PRESENCE_EVENT
            _member_into(msg.presence_event.member, notice.member)
            msg.presence_event.online = notice.online
        case ev.Goodbye():
            msg.type = pb.MT_GOODBYE
            msg.goodbye.reason = int(notice.reason)
            msg.goodbye.message = notice.message
        case ev.VoiceSetupInfo():
            msg.type = pb.MT_VOICE_SETUP
            v = msg.voice_setup
            v.udp_port, v.source_id = notice.udp_port, notice.source_id
            v.client_key, v.server_key = notice.client_key, notice.server_key
            v.ping_interval_ms, v.cipher = notice.ping_interval_ms, notice.cipher
        case ev.VoiceRoomChanged():
            msg.type = pb.MT_VOICE_ACTIVE_ROOM
            msg.voice_active_room.room_id = notice.room_id
        case ev.VoiceStatsReport():
            msg.type = pb.MT_VOICE_STATS
            s = msg.voice_stats
            s.packets_in, s.packets_out = notice.packets_in, notice.packets_out
            s.dropped.update(notice.dropped)
            s.rtt_ms, s.transport = notice.rtt_ms, int(notice.transport)
            s.active_room = notice.active_room
        case ev.VoiceLossFeedback():
            msg.type = pb.MT_VOICE_LOSS_FEEDBACK
            f = msg.voice_loss_feedback
            f.loss, f.late_loss = notice.loss, notice.late_loss
            f.worst_loss, f.listeners = notice.worst_loss, notice.listeners
            f.SetInParent()
        case ev.CallRinging() | ev.CallConnected() | ev.CallEnded():
            msg.type = pb.MT_CALL_STATE
            _call_into(msg.call_state, notice)
        case ev.ModerationDone():
            msg.type = pb.MT_MOD_RESULT
            r = msg.mod_result
            r.kind, r.username, r.room_id = int(notice.kind), notice.username, notice.room_id
            r.address, r.expires_ms = notice.address, notice.expires_ms
            r.message = notice.message
            r.SetInParent()
        case ev.Moderated():
            msg.type = pb.MT_MODERATED
            d = msg.moderated
            d.kind, d.room_id, d.reason = int(notice.kind), notice.room_id, notice.reason
            d.expires_ms = notice.expires_ms
            _member_into(d.by, notice.by)
        case ev.Ping() | ev.Pong() | ev.VoiceDatagram():
            _encode_shared(msg, notice)
        case _:  # pragma: no cover - UnknownNotice is never sent
            raise TypeError(f"not a server notice: {notice!r}")
    return bytes(msg.SerializeToString())


_ROOM_EVENT_KINDS: dict[type, tuple[int, int, Callable[[Any], ev.Member]]] = {
    ev.MemberJoined: (pb.RE_JOINED, pb.RA_JOIN, lambda n: n.member),
    ev.MemberLeft: (pb.RE_LEFT, pb.RA_LEAVE, lambda n: n.member),
    ev.RoomDeleted: (pb.RE_DELETED, pb.RA_DELETE, lambda n: n.by),
}


def _call_into(c: Any, notice: ev.CallRinging | ev.CallConnected | ev.CallEnded) -> None:
    c.call_id, c.requested_ms = notice.call_id, notice.requested_ms
    _member_into(c.caller, notice.caller)
    _member_into(c.callee, notice.callee)
    match notice:
        case ev.CallRinging():
            c.phase = pb.CP_RINGING
        case ev.CallConnected():
            c.phase, c.answered_ms = pb.CP_CONNECTED, notice.answered_ms
        case ev.CallEnded():
            c.phase, c.end_reason = pb.CP_ENDED, int(notice.reason)
            c.answered_ms, c.duration_ms = notice.answered_ms, notice.duration_ms


def notice_frame(notice: ev.ServerNotice, request_id: int = 0) -> bytes:
    """A whole length-prefixed frame for ``notice``: what a connection writes."""
    return encode_frame(encode_notice(notice, request_id))


def request_frame(request: ev.ClientRequest, request_id: int = 0) -> bytes:
    """A whole length-prefixed frame for ``request``."""
    return encode_frame(encode_request(request, request_id))


def _n_login(m: _Msg) -> ev.ServerNotice:
    r = _need(m, "login_response")
    return ev.LoginResult(
        r.status_code,
        r.user_id,
        r.username,
        r.message,
        r.server_version,
        resumed=r.resumed,
        ban_reason=r.ban_reason,
        ban_expires_ms=r.ban_expires_ms,
    )


def _n_error(m: _Msg) -> ev.ServerNotice:
    r = _need(m, "error")
    code = _enum_or(ev.ErrorCode, r.code, ev.ErrorCode.UNKNOWN)
    return ev.ErrorReply(code, r.message, r.retry_after_s)


def _n_room_event(m: _Msg) -> ev.ServerNotice:
    r = _need(m, "room_event")
    member = _member_from(r.member)
    if r.kind == pb.RE_JOINED:
        return ev.MemberJoined(r.room_id, member)
    if r.kind == pb.RE_LEFT:
        return ev.MemberLeft(r.room_id, member)
    if r.kind == pb.RE_DELETED:
        return ev.RoomDeleted(r.room_id, member)
    return ev.UnknownNotice(pb.MT_ROOM_EVENT)  # a kind newer than this client


def _n_direct(m: _Msg) -> ev.ServerNotice:
    d = _need(m, "direct_msg")
    return ev.DirectMessage(
        message_id=d.message_id,
        from_user_id=d.from_user_id,
        from_username=d.from_username,
        to_user_id=d.to_user_id,
        content=d.content,
        timestamp_ms=d.timestamp_ms,
        client_msg_id=d.client_msg_id,
        offline=d.offline,
        to_username=d.to_username,
    )


def _n_typing(m: _Msg) -> ev.ServerNotice:
    t = _need(m, "typing")
    return ev.TypingNotice(t.room_id, t.user_id, t.username, t.active)


def _n_voice_setup(m: _Msg) -> ev.ServerNotice:
    v = _need(m, "voice_setup")
    return ev.VoiceSetupInfo(
        v.udp_port, v.source_id, v.client_key, v.server_key, v.ping_interval_ms, v.cipher
    )


def _n_voice_stats(m: _Msg) -> ev.ServerNotice:
    s = _need(m, "voice_stats")
    return ev.VoiceStatsReport(
        packets_in=s.packets_in,
        packets_out=s.packets_out,
        dropped=dict(s.dropped),
        rtt_ms=s.rtt_ms,
        transport=_enum_or(ev.VoiceTransport, s.transport, ev.VoiceTransport.UNKNOWN),
        active_room=s.active_room,
    )


def _n_voice_loss(m: _Msg) -> ev.ServerNotice:
    f = _need(m, "voice_loss_feedback")
    return ev.VoiceLossFeedback(f.loss, f.late_loss, f.worst_loss, f.listeners)


def _n_goodbye(m: _Msg) -> ev.ServerNotice:
    g = _need(m, "goodbye")
    return ev.Goodbye(_enum_or(ev.GoodbyeReason, g.reason, ev.GoodbyeReason.UNKNOWN), g.message)


def _n_call(m: _Msg) -> ev.ServerNotice:
    c = _need(m, "call_state")
    caller, callee = _member_from(c.caller), _member_from(c.callee)
    if c.phase == pb.CP_RINGING:
        return ev.CallRinging(c.call_id, caller, callee, c.requested_ms)
    if c.phase == pb.CP_CONNECTED:
        return ev.CallConnected(c.call_id, caller, callee, c.requested_ms, c.answered_ms)
    if c.phase == pb.CP_ENDED:
        reason = _enum_or(ev.CallEndReason, c.end_reason, ev.CallEndReason.UNKNOWN)
        return ev.CallEnded(
            c.call_id, caller, callee, reason, c.requested_ms, c.answered_ms, c.duration_ms
        )
    return ev.UnknownNotice(pb.MT_CALL_STATE)  # a phase newer than this client


def _n_mod_result(m: _Msg) -> ev.ServerNotice:
    r = _need(m, "mod_result")
    kind = _enum_or(ev.ModerationKind, r.kind, ev.ModerationKind.UNKNOWN)
    return ev.ModerationDone(kind, r.username, r.room_id, r.address, r.expires_ms, r.message)


def _n_moderated(m: _Msg) -> ev.ServerNotice:
    d = _need(m, "moderated")
    kind = _enum_or(ev.ModerationKind, d.kind, ev.ModerationKind.UNKNOWN)
    return ev.Moderated(kind, d.room_id, _member_from(d.by), d.reason, d.expires_ms)


_NOTICE_DECODERS: dict[int, Callable[[_Msg], ev.ServerNotice]] = {
    pb.MT_LOGIN_RESPONSE: _n_login,
    pb.MT_ERROR: _n_error,
    pb.MT_CHAT_MSG: lambda m: _chat_from(_need(m, "chat_msg")),
    pb.MT_DIRECT_MSG: _n_direct,
    pb.MT_ROOM_EVENT: _n_room_event,
    pb.MT_ROOM_STATE: lambda m: ev.RoomSnapshot(
        m.room_state.room_id,
        tuple(_member_from(x) for x in m.room_state.members),
        m.room_state.more,
    ),
    pb.MT_SESSION_RESUMED: lambda m: ev.SessionResumed(
        tuple(m.session_resumed.rooms), m.session_resumed.voice_room, m.session_resumed.more
    ),
    pb.MT_ROOM_LIST: lambda m: ev.RoomListing(
        tuple(ev.RoomInfo(r.room_id, r.member_count) for r in m.room_list.rooms),
        m.room_list.more,
    ),
    pb.MT_HISTORY: lambda m: ev.HistoryBatch(
        m.history.room_id, tuple(_chat_from(c) for c in m.history.messages)
    ),
    pb.MT_TYPING: _n_typing,
    pb.MT_PRESENCE_LIST: lambda m: ev.PresenceSnapshot(
        tuple(_member_from(x) for x in m.presence_list.online),
        m.presence_list.more,
    ),
    pb.MT_PRESENCE_EVENT: lambda m: ev.PresenceChanged(
        _member_from(m.presence_event.member), m.presence_event.online
    ),
    pb.MT_GOODBYE: _n_goodbye,
    pb.MT_VOICE_SETUP: _n_voice_setup,
    pb.MT_VOICE_ACTIVE_ROOM: lambda m: ev.VoiceRoomChanged(m.voice_active_room.room_id),
    pb.MT_VOICE_STATS: _n_voice_stats,
    pb.MT_VOICE_LOSS_FEEDBACK: _n_voice_loss,
    pb.MT_CALL_STATE: _n_call,
    pb.MT_MOD_RESULT: _n_mod_result,
    pb.MT_MODERATED: _n_moderated,
    pb.MT_PING: _ping,
    pb.MT_PONG: _pong,
    pb.MT_VOICE_TUNNEL: _tunnel,
}


def decode_notice(body: bytes) -> ev.Incoming[ev.ServerNotice]:
    """Parse one frame body sent by a server. Raises ProtocolError for anything invalid.

    What a newer server may send and this client does not know (a message type, an enum
    value) is not an error: unknown types come back as ``UnknownNotice`` and unknown enum
    values as the enum's ``UNKNOWN``, so the connection keeps going.
    """
    msg = _parse(body)
    decoder = _NOTICE_DECODERS.get(msg.type)
    try:
        event = ev.UnknownNotice(msg.type) if decoder is None else decoder(msg)
    except ProtocolError as exc:
        exc.request_id = msg.request_id
        raise
    return ev.Incoming(msg.request_id, event)
