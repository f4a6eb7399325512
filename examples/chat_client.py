"""A minimal EchoMesh chat client over a plain blocking socket: the raw wire protocol.

Every frame on the control connection is a 4-byte big-endian length followed by one
serialized ``EchoMsg`` (see proto/message.proto). This script logs in (the first login
registers the name on a server with open registration), creates a room or joins it if it
exists, sends one message, and prints everything the server sends until the echo of that
message comes back. Run it against ``echomesh-serve --plaintext``:

    python examples/chat_client.py --user alice --password secret --room lobby --message hi
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time
from typing import Any

from google.protobuf import text_format

from echomesh_trio.protocol import message_pb2 as pb

LENGTH = struct.Struct(">I")  # the frame prefix: body length, big-endian, 4 bytes


class Failed(Exception):
    """Something went wrong; the message says what."""


def send(sock: socket.socket, msg: Any) -> None:
    body = msg.SerializeToString()
    sock.sendall(LENGTH.pack(len(body)) + body)
    print(f"-> {describe(msg)}")


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise Failed("the server closed the connection")
        data += chunk
    return data


def receive(sock: socket.socket) -> Any:
    """Read one frame, print it, and return the parsed EchoMsg."""
    (length,) = LENGTH.unpack(recv_exact(sock, LENGTH.size))
    msg = pb.EchoMsg()
    msg.ParseFromString(recv_exact(sock, length))
    print(f"<- {describe(msg)}")
    return msg


def describe(msg: Any) -> str:
    """``MT_NAME #request_id field { ... }`` on one line."""
    parts = [pb.MsgType.Name(msg.type), f"#{msg.request_id}"]
    for field, value in msg.ListFields():
        if field.name in ("type", "request_id"):
            continue
        if field.name == "login_request":  # never print the password
            value = pb.LoginRequest(username=value.username, client_name=value.client_name)
        parts.append(f"{field.name} {{ {text_format.MessageToString(value, as_one_line=True)} }}")
    return " ".join(parts)


def check_error(msg: Any, request_id: int) -> None:
    if msg.type == pb.MT_ERROR and msg.request_id == request_id:
        code = pb.ErrorCode.Name(msg.error.code)
        raise Failed(f"request {request_id} failed: {code}: {msg.error.message}")


def chat(args: argparse.Namespace) -> None:
    with socket.create_connection((args.host, args.port), timeout=args.timeout) as sock:
        # 1. Log in. Replies echo the request_id of the request they answer.
        login = pb.EchoMsg(type=pb.MT_LOGIN_REQUEST, request_id=1)
        login.login_request.username = args.user
        login.login_request.password = args.password
        login.login_request.client_name = "examples/chat_client.py"
        send(sock, login)
        while (msg := receive(sock)).type != pb.MT_LOGIN_RESPONSE:
            pass
        if msg.login_response.status_code != 200:
            status = msg.login_response.status_code
            raise Failed(f"login failed ({status}): {msg.login_response.message}")
        my_id = msg.login_response.user_id

        # 2. Create the room; if it exists, join it. Either way a ROOM_STATE follows.
        action = pb.EchoMsg(type=pb.MT_ROOM_ACTION, request_id=2)
        action.room_action.action_type = pb.RA_CREATE
        action.room_action.room_id = args.room
        send(sock, action)
        while True:
            msg = receive(sock)
            if msg.type == pb.MT_ERROR and msg.error.code == pb.ERR_ROOM_EXISTS:
                action.request_id = 3
                action.room_action.action_type = pb.RA_JOIN
                send(sock, action)
                continue
            check_error(msg, action.request_id)
            if msg.type == pb.MT_ROOM_STATE and msg.room_state.room_id == args.room:
                break

        # 3. Send the message; the server delivers it to every member, us included.
        client_msg_id = f"example-{time.time_ns()}"
        message = pb.EchoMsg(type=pb.MT_CHAT_MSG, request_id=4)
        message.chat_msg.room_id = args.room
        message.chat_msg.content = args.message
        message.chat_msg.client_msg_id = client_msg_id  # makes a resend idempotent
        send(sock, message)
        while True:
            msg = receive(sock)
            check_error(msg, message.request_id)
            echo = msg.chat_msg
            mine = echo.user_id == my_id and echo.client_msg_id == client_msg_id
            if msg.type == pb.MT_CHAT_MSG and mine:
                print(f"delivered as message {echo.message_id} at {echo.timestamp_ms} ms")
                break

        # 4. Log out: the session ends now. (A connection that just closes keeps its session
        # for a few seconds, so that a client reconnecting takes it over unnoticed.)
        send(sock, pb.EchoMsg(type=pb.MT_LOGOUT))
        while (msg := receive(sock)).type != pb.MT_GOODBYE:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--message", default="hello from examples/chat_client.py")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per socket read")
    args = parser.parse_args(argv)
    try:
        chat(args)
    except Failed as exc:
        print(f"chat_client: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # refused, reset, timed out
        print(f"chat_client: {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
