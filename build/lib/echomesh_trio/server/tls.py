"""Server-side TLS over memory buffers, so that frames are encrypted when they are sent.

``trio.SSLStream`` encrypts inside ``send_all``, which means one task switch and one
awaited send per frame: with TLS on, fan-out to a 1,000-member room saturated a core
(bench.control; the profile showed 64 % of the time in ``SSLStream.send_all`` and only 5 %
in OpenSSL's ``write``). ``TlsSession`` instead turns each frame into TLS records at once
(``seal``), and the connection writes those bytes like plain TCP: directly when nothing is
queued, through its queue otherwise. Incoming bytes are decrypted with ``open``.

Renegotiation is disabled on the context (``server_context``), so after the handshake a
write never needs a read.
"""

from __future__ import annotations

import ssl

import trio

HANDSHAKE_READ_SIZE = 16 * 1024


class TlsError(Exception):
    """The peer's TLS is broken (failed handshake, corrupt records)."""


class TlsSession:
    __slots__ = ("_incoming", "_object", "_outgoing")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    async def handshake(self, tcp: trio.SocketStream) -> None:
        """Complete the server side of the handshake over ``tcp``. Raises TlsError."""
        while True:
            try:
                self._object.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            except ssl.SSLError as exc:
                raise TlsError(f"TLS handshake failed: {exc.reason or exc}") from None
            pending = self._outgoing.read()
            if pending:
                await tcp.send_all(pending)
            if done:
                return
            data = await tcp.receive_some(HANDSHAKE_READ_SIZE)
            if not data:
                raise TlsError("connection closed during the TLS handshake")
            self._incoming.write(data)

    def seal(self, plaintext: bytes) -> bytes:
        """The TLS records that carry ``plaintext`` (and anything else OpenSSL had queued)."""
        try:
            self._object.write(plaintext)
        except ssl.SSLError as exc:
            raise TlsError(f"TLS write failed: {exc.reason or exc}") from None
        return self._outgoing.read()

    def open(self, ciphertext: bytes) -> tuple[bytes, bytes, bool]:
        """Feed bytes from the socket. Returns the plaintext they complete, bytes OpenSSL
        wants sent back (e.g. a key-update reply), and whether the peer closed TLS."""
        self._incoming.write(ciphertext)
        chunks = []
        closed = False
        while True:
            try:
                chunk = self._object.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                closed = True
                break
            except ssl.SSLError as exc:
                raise TlsError(f"TLS error: {exc.reason or exc}") from None
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
        return b"".join(chunks), self._outgoing.read(), closed

    def close_notify(self) -> bytes:
        """The records that tell the peer we are closing TLS cleanly."""
        try:
            self._object.unwrap()
        except ssl.SSLError:  # SSLWantReadError: the peer's reply is not awaited
            pass
        return self._outgoing.read()
