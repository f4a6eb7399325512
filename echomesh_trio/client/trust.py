"""Trust on first use for the server's TLS certificate, as SSH and Mumble do.

EchoMesh servers usually run with a self-signed certificate, so there is no CA to check.
Instead the SHA-256 fingerprint of the server's leaf certificate (of its DER bytes) is
pinned per ``host:port`` in ``known_servers.toml`` on first contact, and every later
connection must present the same certificate.

Fingerprints are written as ``SHA256:`` followed by the 32 digest bytes in upper-case hex
pairs separated by colons (``SHA256:3A:1F:...:C2``), the form the server logs at start-up
with the prefix added. On input (``--fingerprint``, the file) ``parse_fingerprint`` also
takes the bare hex (with or without colons), the ``SHA256:`` prefix in any case, hex digits
in any case, and OpenSSH's style, ``SHA256:`` + unpadded base64 (base64 itself is
case-sensitive).

The module is independent of the rest of the client: ``tls_connect`` returns a handshaken
``trio.SSLStream`` on which nothing has been sent yet, or raises.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import hashlib
import inspect
import os
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import platformdirs
import tomlkit
import tomlkit.exceptions
import trio

FILE_NAME: Final = "known_servers.toml"
DIGEST_SIZE: Final = 32  # SHA-256
PREFIX: Final = "SHA256:"
MAX_FINGERPRINT_TEXT: Final = 200
"""Longer input is refused before it is looked at: the longest accepted form is 102
characters (prefix + 95 characters of colon-separated hex)."""

_HEX_PAIRS = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){31}")
_HEX_PLAIN = re.compile(r"[0-9a-fA-F]{64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{43}=?")

HEADER: Final = """\
EchoMesh known servers: the SHA-256 fingerprint of each server's TLS certificate,
pinned the first time this client connected to it (trust on first use, like SSH's
known_hosts). A server whose certificate no longer matches is refused. If you know
the server's certificate changed on purpose (compare with the fingerprint its log
shows at start-up), replace its fingerprint here or delete its line."""


# ---------------------------------------------------------------------- errors
class TrustError(Exception):
    """The server could not be trusted, or the trust store could not be used."""


class InvalidFingerprint(TrustError, ValueError):
    """Text that is not a SHA-256 fingerprint in any accepted form."""


class KnownServersError(TrustError):
    """``known_servers.toml`` cannot be read or written; the message names the file."""


class FingerprintMismatch(TrustError):
    """The server presented a certificate other than the one expected: refused."""

    def __init__(
        self, host: str, port: int, expected: str, actual: str, path: Path, *, explicit: bool
    ) -> None:
        self.host, self.port = host, port
        self.expected, self.actual, self.path = expected, actual, path
        self.explicit = explicit
        where = server_key(host, port)
        if explicit:
            source = "the fingerprint you gave (--fingerprint)"
            advice = "Check the fingerprint you gave against the one the server logs at start-up."
        else:
            source = f"the fingerprint pinned in {path}"
            advice = (
                "If the server's certificate was changed on purpose (compare with the "
                "fingerprint its log shows at start-up), edit or delete the line "
                f'"{where}" in {path}, or, once you have checked it, connect with '
                f"--fingerprint {actual}."
            )
        super().__init__(
            "\n".join(
                [
                    f"WARNING: THE CERTIFICATE OF {where} HAS CHANGED - CONNECTION REFUSED.",
                    "Someone could be intercepting the connection (a man-in-the-middle),",
                    "or the server's certificate was replaced.",
                    f"  expected ({source}):",
                    f"    {expected}",
                    "  the server presented:",
                    f"    {actual}",
                    advice,
                ]
            )
        )


class NotTrusted(TrustError):
    """First contact with a server whose certificate the user declined to trust."""

    def __init__(self, host: str, port: int, fingerprint: str) -> None:
        self.host, self.port, self.fingerprint = host, port, fingerprint
        super().__init__(
            f"the certificate of {server_key(host, port)} ({fingerprint}) was not accepted; "
            "nothing was pinned"
        )


# ---------------------------------------------------------------------- fingerprints
def fingerprint_of(der: bytes) -> str:
    """The fingerprint of a certificate in DER form, in the canonical form."""
    return format_fingerprint(hashlib.sha256(der).digest())


def format_fingerprint(digest: bytes) -> str:
    """``SHA256:`` + upper-case hex pairs separated by colons."""
    if len(digest) != DIGEST_SIZE:
        raise ValueError(f"a SHA-256 digest has {DIGEST_SIZE} bytes, not {len(digest)}")
    return PREFIX + ":".join(f"{b:02X}" for b in digest)


def parse_fingerprint(text: str) -> bytes:
    """The 32 digest bytes of a fingerprint in any accepted form (see the module
    docstring). The text is untrusted (typed, or read from a file): anything else raises
    InvalidFingerprint, and only that."""
    if len(text) > MAX_FINGERPRINT_TEXT:
        raise InvalidFingerprint(f"not a SHA-256 fingerprint: {len(text)} characters is too long")
    body = text.strip()
    if body[: len(PREFIX)].upper() == PREFIX:
        body = body[len(PREFIX) :]
    if _HEX_PAIRS.fullmatch(body) or _HEX_PLAIN.fullmatch(body):
        return bytes.fromhex(body.replace(":", ""))
    if _BASE64.fullmatch(body):
        unpadded = body.rstrip("=")
        try:
            digest = base64.b64decode(unpadded + "=", validate=True)
        except binascii.Error:  # pragma: no cover - the pattern admits only valid base64
            digest = b""
        # 43 characters carry 258 bits: the last character's 2 spare bits must be zero,
        # so that each digest has exactly one spelling.
        if len(digest) == DIGEST_SIZE and base64.b64encode(digest).decode()[:43] == unpadded:
            return digest
    raise InvalidFingerprint(
        f"not a SHA-256 fingerprint: {text[:80]!r} (expected SHA256: followed by 32 hex "
        "pairs separated by colons, or by 43 characters of base64)"
    )


def normalize_fingerprint(text: str) -> str:
    """Any accepted form, in the canonical form. Raises InvalidFingerprint."""
    return format_fingerprint(parse_fingerprint(text))


def server_key(host: str, port: int) -> str:
    """The key a server is pinned under: ``host:port``, the host in lower case and an
    IPv6 address in brackets (``[::1]:8888``)."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------------- the file
def default_path() -> Path:
    """``known_servers.toml`` in the user's config directory (on Linux
    ``$XDG_CONFIG_HOME/echomesh``, by default ``~/.config/echomesh``)."""
    return platformdirs.user_config_path("echomesh") / FILE_NAME


class KnownServers:
    """The pinned fingerprints, backed by ``known_servers.toml``.

    The file is TOML with one table, ``[servers]``, mapping ``"host:port"`` to a
    fingerprint. ``pin`` rewrites it with tomlkit (so comments and the user's own edits
    survive), atomically (a temporary file renamed over it) and readable by the owner only.
    """

    def __init__(self, path: Path, pins: Mapping[str, str]) -> None:
        self.path = path
        self._pins = dict(pins)

    @classmethod
    def load(cls, path: Path | None = None) -> KnownServers:
        """Read the file (``default_path()`` if None); a missing file is an empty store.
        Raises KnownServersError if it is not valid TOML of the expected shape."""
        path = default_path() if path is None else Path(path)
        _, pins = _read(path)
        return cls(path, pins)

    def lookup(self, host: str, port: int) -> str | None:
        """The pinned fingerprint of ``host:port`` (canonical form), or None."""
        return self._pins.get(server_key(host, port))

    def pin(self, host: str, port: int, fingerprint: str) -> None:
        """Pin (or re-pin) ``host:port`` to ``fingerprint`` (any accepted form) and write
        the file. The file is read again first, so that edits made since ``load`` are kept.
        Blocking file I/O (small): from Trio, run it in a thread."""
        canonical = normalize_fingerprint(fingerprint)
        key = server_key(host, port)
        doc, pins = _read(self.path)
        servers = doc.get("servers")
        if servers is None:
            servers = tomlkit.table()
            doc["servers"] = servers
        for other in [k for k in servers if k != key and _normalize_key(str(k)) == key]:
            del servers[other]  # the same server spelt differently (e.g. "Host:1")
        servers[key] = canonical
        _write_atomically(self.path, tomlkit.dumps(doc))
        pins[key] = canonical
        self._pins = pins

    def __contains__(self, key: object) -> bool:
        return key in self._pins

    def __len__(self) -> int:
        return len(self._pins)


def _read(path: Path) -> tuple[tomlkit.TOMLDocument, dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        doc = tomlkit.document()
        for line in HEADER.splitlines():
            doc.add(tomlkit.comment(line))
        doc.add(tomlkit.nl())
        return doc, {}
    except (OSError, UnicodeDecodeError) as exc:
        raise KnownServersError(f"cannot read the known servers file {path}: {exc}") from exc
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as exc:
        raise KnownServersError(
            f"the known servers file {path} is not valid TOML ({exc}); "
            "fix or delete it (deleting it forgets every pinned server)"
        ) from exc
    servers = doc.get("servers", {})
    if not isinstance(servers, Mapping):
        raise KnownServersError(f"in {path}: 'servers' must be a table of \"host:port\" = ...")
    pins: dict[str, str] = {}
    for key, value in servers.items():
        try:
            if not isinstance(value, str):
                raise InvalidFingerprint(f"a {type(value).__name__}, not a string")
            canonical = normalize_fingerprint(value)
        except InvalidFingerprint as exc:
            raise KnownServersError(f"in {path}, servers.{key!r}: {exc}") from exc
        pins[_normalize_key(str(key))] = canonical
    return doc, pins


def _normalize_key(key: str) -> str:
    host, sep, port = key.rpartition(":")
    if sep and port.isdigit():
        return server_key(host, int(port))
    return key.lower()


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover tmp file
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise KnownServersError(f"cannot write the known servers file {path}: {exc}") from exc


# ---------------------------------------------------------------------- the decision
Confirm = Callable[[str, int, str], "bool | Awaitable[bool]"]
"""Asked on first contact: ``confirm(host, port, fingerprint)``; True pins and connects."""


class Outcome(enum.Enum):
    KNOWN = "known"
    """The pinned fingerprint matched."""
    PINNED = "pinned"
    """First contact: the fingerprint is now pinned (confirmed, explicit, or automatic)."""
    REPINNED = "repinned"
    """An explicit fingerprint matched and replaced a different pin."""


@dataclass(frozen=True)
class Verified:
    """What was decided about a server's certificate."""

    host: str
    port: int
    fingerprint: str
    outcome: Outcome


@dataclass(frozen=True)
class TrustPolicy:
    """How to decide about a server's certificate.

    ``explicit``: a fingerprint given by the user (``--fingerprint``, a config value). When
    set the server must present exactly it; it is then pinned, replacing an older pin (the
    way to accept a certificate changed on purpose). ``confirm``: asked before pinning on
    first contact (the TUI); None pins automatically (the bot).
    """

    known: KnownServers
    explicit: str | None = None
    confirm: Confirm | None = None
    on_pinned: Callable[[Verified], None] | None = None
    """Told when a fingerprint was pinned or re-pinned (e.g. to print it); not when known."""


async def verify(host: str, port: int, der: bytes, policy: TrustPolicy) -> Verified:
    """Decide about the certificate ``der`` that ``host:port`` presented; pin it when
    that is the decision. Raises FingerprintMismatch, NotTrusted, InvalidFingerprint (a
    bad ``explicit``) or KnownServersError."""
    actual = fingerprint_of(der)
    known = policy.known
    pinned = known.lookup(host, port)
    if policy.explicit is not None:
        expected = normalize_fingerprint(policy.explicit)
        if actual != expected:
            raise FingerprintMismatch(host, port, expected, actual, known.path, explicit=True)
        if pinned == actual:
            return Verified(host, port, actual, Outcome.KNOWN)
        outcome = Outcome.PINNED if pinned is None else Outcome.REPINNED
        return await _pin(policy, Verified(host, port, actual, outcome))
    if pinned is not None:
        if pinned != actual:
            raise FingerprintMismatch(host, port, pinned, actual, known.path, explicit=False)
        return Verified(host, port, actual, Outcome.KNOWN)
    if policy.confirm is not None:
        answer = policy.confirm(host, port, actual)
        if inspect.isawaitable(answer):
            answer = await answer
        if not answer:
            raise NotTrusted(host, port, actual)
    return await _pin(policy, Verified(host, port, actual, Outcome.PINNED))


async def _pin(policy: TrustPolicy, verified: Verified) -> Verified:
    await trio.to_thread.run_sync(
        policy.known.pin, verified.host, verified.port, verified.fingerprint
    )
    if policy.on_pinned is not None:
        policy.on_pinned(verified)
    return verified


def client_context() -> ssl.SSLContext:
    """A client context that accepts any certificate: trust comes from the pin, checked
    by ``verify`` after the handshake and before any data is sent."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def tls_connect(
    host: str, port: int, trust: TrustPolicy
) -> trio.SSLStream[trio.SocketStream]:
    """Connect over TCP, do the TLS handshake and apply ``trust`` to the certificate.
    Returns the stream, on which nothing has been sent yet; on any failure the
    connection is closed and the error raised (TrustError, OSError, trio.BrokenResourceError
    for a failed handshake)."""
    tcp = await trio.open_tcp_stream(host, port)
    stream = trio.SSLStream(tcp, client_context(), server_hostname=host)
    try:
        await stream.do_handshake()
        der = stream.getpeercert(binary_form=True)
        if not der:  # pragma: no cover - a TLS server always presents a certificate
            raise TrustError(f"{server_key(host, port)} presented no certificate")
        await verify(host, port, der, trust)
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return stream
