"""The embedded SQLite store: users, rooms, chat history and direct messages.

``Database`` is plain synchronous code over one sqlite3 connection. ``Store`` is the thin
Trio adapter: every call runs in a worker thread, one at a time, so the event loop never
waits on the disk. Writes are committed before the call returns, and callers deliver a
message only after that, so nothing acknowledged is ever lost.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import trio

from echomesh_trio.protocol.events import ChatMessage, DirectMessage

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_ms    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    name        TEXT PRIMARY KEY,
    created_by  INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chat (
    id            INTEGER PRIMARY KEY,
    room          TEXT NOT NULL,
    user_id       INTEGER NOT NULL,
    username      TEXT NOT NULL,
    content       TEXT NOT NULL,
    ts_ms         INTEGER NOT NULL,
    client_msg_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chat_by_room ON chat (room, id);
CREATE UNIQUE INDEX IF NOT EXISTS chat_idempotency
    ON chat (user_id, client_msg_id) WHERE client_msg_id != '';
CREATE TABLE IF NOT EXISTS direct (
    id            INTEGER PRIMARY KEY,
    from_id       INTEGER NOT NULL,
    from_name     TEXT NOT NULL,
    to_id         INTEGER NOT NULL,
    to_name       TEXT NOT NULL,
    content       TEXT NOT NULL,
    ts_ms         INTEGER NOT NULL,
    client_msg_id TEXT NOT NULL DEFAULT '',
    delivered     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS direct_pending ON direct (to_id) WHERE delivered = 0;
CREATE UNIQUE INDEX IF NOT EXISTS direct_idempotency
    ON direct (from_id, client_msg_id) WHERE client_msg_id != '';
"""


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: int
    username: str
    password_hash: str


class UserExists(Exception):
    """A user with that name (compared case-insensitively) is already registered."""


class StoreError(Exception):
    """The database file cannot be used (wrong format, newer schema, unwritable)."""


class Database:
    """Synchronous data access. Not thread-safe: ``Store`` serialises calls."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a message acknowledged to its sender survives power loss too.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise StoreError(f"{path} was written by a newer EchoMesh (schema {version})")
            if version == 0:
                # executescript runs its statements in one go; CREATE ... IF NOT EXISTS
                # keeps a retry after an interrupted first start harmless.
                self._db.executescript(
                    f"BEGIN; {_SCHEMA} PRAGMA user_version={_SCHEMA_VERSION}; COMMIT;"
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from None

    def _transaction(self) -> sqlite3.Connection:
        # With isolation_level=None, the connection as a context manager commits or
        # rolls back the explicit BEGIN issued here.
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def close(self) -> None:
        self._db.close()

    # -- users
    def get_user(self, username: str) -> UserRecord | None:
        row = self._db.execute(
            "SELECT id, username, password_hash FROM users WHERE username = ?", (username,)
        ).fetchone()
        return UserRecord(*row) if row else None

    def get_user_by_id(self, user_id: int) -> UserRecord | None:
        row = self._db.execute(
            "SELECT id, username, password_hash FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return UserRecord(*row) if row else None

    def create_user(self, username: str, password_hash: str, now_ms: int) -> UserRecord:
        try:
            with self._transaction():
                cur = self._db.execute(
                    "INSERT INTO users (username, password_hash, created_ms) VALUES (?, ?, ?)",
                    (username, password_hash, now_ms),
                )
        except sqlite3.IntegrityError:
            raise UserExists(username) from None
        assert cur.lastrowid is not None
        return UserRecord(cur.lastrowid, username, password_hash)

    def set_password(self, user_id: int, password_hash: str) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )

    # -- rooms
    def room_names(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM rooms ORDER BY name")]

    def create_room(self, name: str, created_by: int, now_ms: int) -> bool:
        """Record a new room; False if it already exists."""
        with self._transaction():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO rooms (name, created_by, created_ms) VALUES (?, ?, ?)",
                (name, created_by, now_ms),
            )
        return cur.rowcount == 1

    # -- chat
    def add_chat(
        self, room: str, user_id: int, username: str, content: str, client_msg_id: str, now_ms: int
    ) -> tuple[ChatMessage, bool]:
        """Store a chat message; with a client id already used by this user, return the
        stored message instead and False."""
        if client_msg_id:
            existing = self._db.execute(
                "SELECT id, room, user_id, username, content, ts_ms, client_msg_id FROM chat"
                " WHERE user_id = ? AND client_msg_id = ?",
                (user_id, client_msg_id),
            ).fetchone()
            if existing:
                return ChatMessage(*existing), False
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO chat (room, user_id, username, content, ts_ms, client_msg_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (room, user_id, username, content, now_ms, client_msg_id),
            )
        assert cur.lastrowid is not None
        return ChatMessage(
            cur.lastrowid, room, user_id, username, content, now_ms, client_msg_id
        ), True

    def recent_chat(self, room: str, limit: int) -> list[ChatMessage]:
        rows = self._db.execute(
            "SELECT id, room, user_id, username, content, ts_ms, client_msg_id FROM chat"
            " WHERE room = ? ORDER BY id DESC LIMIT ?",
            (room, limit),
        ).fetchall()
        return [ChatMessage(*row) for row in reversed(rows)]

    # -- direct messages
    _DIRECT_COLUMNS = (
        "id, from_id, from_name, to_id, content, ts_ms, client_msg_id, delivered, to_name"
    )

    @staticmethod
    def _direct(
        row: tuple[int, int, str, int, str, int, str, int, str], offline: bool
    ) -> DirectMessage:
        mid, from_id, from_name, to_id, content, ts, cid, _delivered, to_name = row
        return DirectMessage(mid, from_id, from_name, to_id, content, ts, cid, offline, to_name)

    def add_direct(
        self,
        sender: UserRecord,
        recipient: UserRecord,
        content: str,
        client_msg_id: str,
        now_ms: int,
    ) -> tuple[DirectMessage, bool]:
        if client_msg_id:
            row = self._db.execute(
                f"SELECT {self._DIRECT_COLUMNS} FROM direct"
                " WHERE from_id = ? AND client_msg_id = ?",
                (sender.user_id, client_msg_id),
            ).fetchone()
            if row:
                return self._direct(row, offline=False), False
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO direct (from_id, from_name, to_id, to_name, content, ts_ms,"
                " client_msg_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    sender.user_id,
                    sender.username,
                    recipient.user_id,
                    recipient.username,
                    content,
                    now_ms,
                    client_msg_id,
                ),
            )
        assert cur.lastrowid is not None
        message = DirectMessage(
            cur.lastrowid,
            sender.user_id,
            sender.username,
            recipient.user_id,
            content,
            now_ms,
            client_msg_id,
            False,
            recipient.username,
        )
        return message, True

    def pending_direct(self, to_id: int) -> list[DirectMessage]:
        rows = self._db.execute(
            f"SELECT {self._DIRECT_COLUMNS} FROM direct"
            " WHERE to_id = ? AND delivered = 0 ORDER BY id",
            (to_id,),
        ).fetchall()
        return [self._direct(row, offline=True) for row in rows]

    def mark_delivered(self, message_ids: list[int]) -> None:
        if not message_ids:
            return
        with self._transaction():
            self._db.executemany(
                "UPDATE direct SET delivered = 1 WHERE id = ?", [(i,) for i in message_ids]
            )


P = ParamSpec("P")
T = TypeVar("T")


class Store:
    """Trio adapter: runs ``Database`` calls one at a time in a worker thread."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self._limiter = trio.CapacityLimiter(1)

    @classmethod
    def open(cls, path: Path) -> Store:
        return cls(Database(path))

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one Database method off the event loop."""
        # abandon_on_cancel=False: a write that has started always finishes, so a
        # cancelled caller never leaves it half-done and the connection is not closed
        # under it.
        return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self._limiter)

    def close(self) -> None:
        self.db.close()
