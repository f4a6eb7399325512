"""Errors raised when the *peer* sent something we cannot accept.

These are remote errors: the right response is an error reply (when possible) and closing
that one connection. Misuse of our own API raises ordinary ValueError/TypeError instead.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer broke the framing or the message schema.

    ``request_id`` is the envelope's when the frame got that far (0 otherwise), so the
    error reply can name the request. ``closes_connection`` is False only for a request
    that is well-formed but asks for something undefined (``BadRequest``).
    """

    code_name = "ERR_MALFORMED_FRAME"
    closes_connection = True
    request_id = 0


class FrameTooLarge(ProtocolError):
    """A length prefix announced more than the frame limit."""

    code_name = "ERR_FRAME_TOO_LARGE"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds the {limit}-byte limit")
        self.length = length
        self.limit = limit


class MalformedMessage(ProtocolError):
    """The frame body is not a valid EchoMsg, or lacks what its type requires."""

    code_name = "ERR_MALFORMED_FRAME"


class UnknownMessageType(ProtocolError):
    """The envelope's type is not one this side accepts."""

    code_name = "ERR_UNKNOWN_TYPE"

    def __init__(self, type_value: int) -> None:
        super().__init__(f"unknown or unexpected message type {type_value}")
        self.type_value = type_value


class BadRequest(ProtocolError):
    """A well-formed message with a value this side does not define (e.g. an unknown
    room action): an error reply, and the connection stays open."""

    code_name = "ERR_BAD_REQUEST"
    closes_connection = False
