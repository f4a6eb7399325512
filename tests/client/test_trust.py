"""Trust on first use against real TLS servers on 127.0.0.1, and the fingerprint parser
fed untrusted text."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from echomesh_trio.client import trust
from echomesh_trio.client.control import ControlConnection
from echomesh_trio.client.trust import (
    FingerprintMismatch,
    InvalidFingerprint,
    KnownServers,
    KnownServersError,
    NotTrusted,
    Outcome,
    TrustPolicy,
    Verified,
)
from echomesh_trio.protocol import events as ev
from echomesh_trio.server.app import ServerInfo
from echomesh_trio.server.config import Settings
from tests.server.helpers import make_settings, start_server


def tls_settings(data_dir: Path, port: int = 0) -> Settings:
    return make_settings(data_dir, plaintext=False, port=port)


def server_fp(info: ServerInfo) -> str:
    assert info.fingerprint is not None
    return "SHA256:" + info.fingerprint  # the server logs the bare colon-separated hex


async def ping_over(stream: trio.SSLStream[trio.SocketStream]) -> None:
    """The stream is a working control connection after the decision."""
    conn = ControlConnection(stream)
    rid = await conn.request(ev.Ping(nonce=5))
    with trio.fail_after(5):
        assert (await conn.receive_matching(ev.Pong, request_id=rid)).nonce == 5
    await conn.aclose()


# ---------------------------------------------------------------------- real servers
async def test_first_contact_pins_then_connects_without_asking(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, tls_settings(tmp_path / "srv"))
    known = KnownServers.load(tmp_path / "cfg" / "known_servers.toml")
    asked: list[tuple[str, int, str]] = []
    pinned: list[Verified] = []

    def confirm(host: str, port: int, fingerprint: str) -> bool:
        asked.append((host, port, fingerprint))
        return True

    policy = TrustPolicy(known, confirm=confirm, on_pinned=pinned.append)
    await ping_over(await trust.tls_connect("127.0.0.1", info.port, policy))
    assert asked == [("127.0.0.1", info.port, server_fp(info))]
    assert [p.outcome for p in pinned] == [Outcome.PINNED]
    assert known.lookup("127.0.0.1", info.port) == server_fp(info)
    # Written for the next process, readable by the owner only.
    assert KnownServers.load(known.path).lookup("127.0.0.1", info.port) == server_fp(info)
    assert stat.S_IMODE(known.path.stat().st_mode) == 0o600

    # Unchanged certificate: connects, nothing asked, nothing pinned again.
    again = TrustPolicy(KnownServers.load(known.path), confirm=confirm, on_pinned=pinned.append)
    await ping_over(await trust.tls_connect("127.0.0.1", info.port, again))
    assert len(asked) == 1 and len(pinned) == 1


async def test_a_changed_certificate_is_refused_loudly(tmp_path: Path) -> None:
    known_path = tmp_path / "cfg" / "known_servers.toml"
    async with trio.open_nursery() as nursery:
        first, info1 = await start_server(nursery, tls_settings(tmp_path / "srv1"))
        await ping_over(
            await trust.tls_connect(
                "127.0.0.1", info1.port, TrustPolicy(KnownServers.load(known_path))
            )
        )
        first.request_shutdown()
    # Another server (a new certificate in a new data dir) on the same port.
    async with trio.open_nursery() as nursery:
        second, info2 = await start_server(nursery, tls_settings(tmp_path / "srv2", info1.port))
        assert info2.port == info1.port and info2.fingerprint != info1.fingerprint
        asked: list[str] = []

        def confirm(host: str, port: int, fingerprint: str) -> bool:
            asked.append(fingerprint)
            return True

        policy = TrustPolicy(KnownServers.load(known_path), confirm=confirm)
        with pytest.raises(FingerprintMismatch) as refused:
            await trust.tls_connect("127.0.0.1", info2.port, policy)
        message = str(refused.value)
        assert server_fp(info1) in message and server_fp(info2) in message
        assert str(known_path) in message and "CHANGED" in message
        assert refused.value.expected == server_fp(info1)
        assert refused.value.actual == server_fp(info2)
        assert asked == []  # a mismatch is never a question
        # The pin is untouched.
        assert KnownServers.load(known_path).lookup("127.0.0.1", info1.port) == server_fp(info1)
        # The way out: the user checked the new fingerprint and gives it explicitly.
        pinned: list[Verified] = []
        explicit = TrustPolicy(
            KnownServers.load(known_path),
            explicit=info2.fingerprint,  # the bare form the server logs is accepted
            on_pinned=pinned.append,
        )
        await ping_over(await trust.tls_connect("127.0.0.1", info2.port, explicit))
        assert [p.outcome for p in pinned] == [Outcome.REPINNED]
        assert KnownServers.load(known_path).lookup("127.0.0.1", info2.port) == server_fp(info2)
        second.request_shutdown()


async def test_explicit_fingerprint_must_match(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, info = await start_server(nursery, tls_settings(tmp_path / "srv"))
    known = KnownServers.load(tmp_path / "known_servers.toml")
    wrong = trust.fingerprint_of(b"some other certificate")
    with pytest.raises(FingerprintMismatch) as refused:
        await trust.tls_connect("127.0.0.1", info.port, TrustPolicy(known, explicit=wrong))
    assert wrong in str(refused.value) and server_fp(info) in str(refused.value)
    assert refused.value.explicit
    assert not known.path.exists()  # nothing pinned

    # Lower case, no prefix: still the same fingerprint. Nothing is asked; it is pinned.
    def never(host: str, port: int, fingerprint: str) -> bool:
        raise AssertionError("an explicit fingerprint is not a question")

    given_fp = server_fp(info).lower().removeprefix("sha256:")
    policy = TrustPolicy(known, explicit=given_fp, confirm=never)
    await ping_over(await trust.tls_connect("127.0.0.1", info.port, policy))
    assert known.lookup("127.0.0.1", info.port) == server_fp(info)


async def test_an_explicit_fingerprint_overrides_the_pin_only_if_the_server_matches_it(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, tls_settings(tmp_path / "srv"))
    known = KnownServers.load(tmp_path / "known_servers.toml")
    known.pin("127.0.0.1", info.port, server_fp(info))
    other = trust.fingerprint_of(b"x")
    with pytest.raises(FingerprintMismatch):
        await trust.tls_connect("127.0.0.1", info.port, TrustPolicy(known, explicit=other))
    assert known.lookup("127.0.0.1", info.port) == server_fp(info)


async def test_a_declined_confirmation_refuses_without_pinning(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, tls_settings(tmp_path / "srv"))
    known = KnownServers.load(tmp_path / "known_servers.toml")

    async def decline(host: str, port: int, fingerprint: str) -> bool:  # async works too
        await trio.lowlevel.checkpoint()
        return False

    with pytest.raises(NotTrusted) as refused:
        await trust.tls_connect("127.0.0.1", info.port, TrustPolicy(known, confirm=decline))
    assert server_fp(info) in str(refused.value)
    assert known.lookup("127.0.0.1", info.port) is None
    assert not known.path.exists()
    assert KnownServers.load(known.path).lookup("127.0.0.1", info.port) is None


async def test_a_plaintext_server_fails_the_handshake(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, info = await start_server(nursery, make_settings(tmp_path / "srv"))
    known = KnownServers.load(tmp_path / "known_servers.toml")
    with trio.fail_after(10), pytest.raises((trio.BrokenResourceError, OSError)):
        await trust.tls_connect("127.0.0.1", info.port, TrustPolicy(known))
    assert len(known) == 0


# ---------------------------------------------------------------------- the file
def test_xdg_config_home_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    known = KnownServers.load()
    assert known.path == tmp_path / "xdg" / "echomesh" / "known_servers.toml"
    known.pin("Example.org", 8888, trust.fingerprint_of(b"cert"))
    assert known.path.exists()
    assert stat.S_IMODE(known.path.parent.stat().st_mode) == 0o700
    assert KnownServers.load().lookup("example.ORG", 8888) == trust.fingerprint_of(b"cert")


def test_a_corrupt_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "known_servers.toml"
    path.write_text('[servers\n"a:1" = "x"\n')
    with pytest.raises(KnownServersError) as error:
        KnownServers.load(path)
    assert str(path) in str(error.value) and "not valid TOML" in str(error.value)

    path.write_text('[servers]\n"a:1" = "SHA256:nonsense"\n')
    with pytest.raises(KnownServersError) as error:
        KnownServers.load(path)
    assert str(path) in str(error.value) and "a:1" in str(error.value)

    path.write_text("servers = 3\n")
    with pytest.raises(KnownServersError, match="servers"):
        KnownServers.load(path)


def test_pinning_keeps_comments_and_other_edits(tmp_path: Path) -> None:
    path = tmp_path / "known_servers.toml"
    a, b, c = (trust.fingerprint_of(x) for x in (b"a", b"b", b"c"))
    path.write_text(f'# my servers\n[servers]\n# the office\n"office:8888" = "{a}"\n')
    known = KnownServers.load(path)
    # Someone edits the file after it was loaded: the edit survives the next pin.
    path.write_text(path.read_text() + f'"home:8888" = "{b}"  # at home\n')
    known.pin("::1", 9000, c)
    text = path.read_text()
    assert "# my servers" in text and "# the office" in text and "# at home" in text
    again = KnownServers.load(path)
    assert again.lookup("office", 8888) == a
    assert again.lookup("home", 8888) == b
    assert again.lookup("[::1]", 9000) == c == known.lookup("::1", 9000)
    assert '"[::1]:9000"' in text
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    # A key spelt differently is the same server: re-pinning replaces it.
    path.write_text(path.read_text() + f'"Office.example:1" = "{a}"\n')
    KnownServers.load(path).pin("office.example", 1, b)
    assert path.read_text().count("ffice.example:1") == 1
    assert KnownServers.load(path).lookup("OFFICE.example", 1) == b


def test_a_new_file_explains_itself(tmp_path: Path) -> None:
    known = KnownServers.load(tmp_path / "sub" / "known_servers.toml")
    known.pin("h", 1, trust.fingerprint_of(b"a"))
    assert "trust on first use" in known.path.read_text()


# ---------------------------------------------------------------------- fingerprints
def test_the_canonical_form() -> None:
    der = b"certificate bytes"
    digest = hashlib.sha256(der).digest()
    fp = trust.fingerprint_of(der)
    assert fp == "SHA256:" + ":".join(f"{x:02X}" for x in digest)
    b64 = base64.b64encode(digest).decode().rstrip("=")
    for form in (fp, fp.lower(), fp[7:], fp[7:].replace(":", ""), "sha256:" + b64, b64 + "="):
        assert trust.parse_fingerprint(form) == digest, form
    for bad in ("", "SHA256:", fp[:-1], fp + "0", fp.replace(":", "-"), b64.lower(), "x" * 500):
        with pytest.raises(InvalidFingerprint):
            trust.parse_fingerprint(bad)


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_invalid_fingerprint(text: str) -> None:
    try:
        digest = trust.parse_fingerprint(text)
    except InvalidFingerprint:
        return
    assert len(digest) == 32
    assert trust.parse_fingerprint(trust.format_fingerprint(digest)) == digest


_FP_ALPHABET = "0123456789abcdefABCDEF:+/=SHA256sha ghxyz"


@given(st.text(alphabet=_FP_ALPHABET, min_size=40, max_size=110))
def test_near_misses_parse_or_raise_invalid_fingerprint(text: str) -> None:
    try:
        assert len(trust.parse_fingerprint(text)) == 32
    except InvalidFingerprint:
        pass


@given(
    st.binary(min_size=32, max_size=32),
    st.sampled_from(["hex", "plain", "b64", "b64="]),
    st.booleans(),
    st.booleans(),
)
def test_every_spelling_of_a_digest_parses_to_it(
    digest: bytes, form: str, lower: bool, prefix: bool
) -> None:
    if form.startswith("b64"):
        text = base64.b64encode(digest).decode()
        text = text if form == "b64=" else text.rstrip("=")
    else:
        text = trust.format_fingerprint(digest).removeprefix("SHA256:")
        text = text.replace(":", "") if form == "plain" else text
        text = text.lower() if lower else text
    text = ("sha256:" if lower else "SHA256:") + text if prefix else text
    assert trust.parse_fingerprint(text) == digest
    assert trust.normalize_fingerprint(text) == trust.format_fingerprint(digest)


@given(st.binary(min_size=32, max_size=32), st.integers(0, 42), st.sampled_from("AQgw+/"))
def test_one_changed_base64_character_is_another_digest_or_refused(
    digest: bytes, index: int, char: str
) -> None:
    text = base64.b64encode(digest).decode().rstrip("=")
    changed = text[:index] + char + text[index + 1 :]
    try:
        parsed = trust.parse_fingerprint(changed)
    except InvalidFingerprint:
        return
    assert (parsed == digest) == (changed == text)
