"""Salted, deliberately slow password hashes (scrypt, from the standard library).

Stored as ``scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`` so that the cost can be raised
later without invalidating existing users. These functions are CPU-bound (tens of
milliseconds at the default cost): call them from a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

DEFAULT_LOG2_N = 14
"""scrypt cost: n = 2**14, r = 8 uses 16 MiB and ~40 ms per hash here (the RFC 7914 and
OWASP interactive-login setting)."""

_R = 8
_P = 1
_DKLEN = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, log2_n: int = DEFAULT_LOG2_N) -> str:
    salt = os.urandom(16)
    digest = _scrypt(password, salt, log2_n, _R, _P)
    return f"scrypt${log2_n}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches; False for a mismatch or an unreadable record."""
    try:
        scheme, log2_n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = _scrypt(password, salt, int(log2_n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r, dklen=_DKLEN
    )
