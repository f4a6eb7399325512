"""The embedded SQLite store: users, rooms, chat history, direct messages, call records,
bans and room owners.

``Database`` is plain synchronous code over one sqlite3 connection. ``Store`` is the thin
Trio adapter: every call runs in a worker thread, one at a time, so the event loop never
waits on the disk. Writes are committed before the call returns, and callers deliver a
message only after that, so nothing acknowledged is ever lost.
"""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import trio

from echomesh_trio.protocol.events import ChatMessage, DirectMessage
from echomesh_trio.server.names import canonical, skeleton

log = logging.getLogger("echomesh.server")

_SCHEMA_VERSION = 3
# Version 1, as first released; _MIGRATIONS take it to the current version.
_SCHEMA_V1 = """
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

# Version 2: usernames compared by canonical form (NFKC + casefold) and confusable
# skeleton (see names.py). ``canonical`` is unique, but NULL for an account that a
# version-1 database already held under a name whose canonical form an older account
# has: both keep their rows, the older one owns the canonical form, and the later one
# logs in under its exact name only (the migration logs a warning naming both).
_SCHEMA_V2 = """
ALTER TABLE users ADD COLUMN canonical TEXT;
ALTER TABLE users ADD COLUMN skeleton TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX users_canonical ON users (canonical);
CREATE INDEX users_skeleton ON users (skeleton);
"""

# Version 3: call records (served by the HTTP API's call statistics), bans (by user or
# by address, optionally expiring) and the owners a room's creator added. Only new
# tables: a version-2 database keeps every row.
_SCHEMA_V3 = """
CREATE TABLE calls (
    id           INTEGER PRIMARY KEY,
    caller_id    INTEGER NOT NULL,
    caller_name  TEXT NOT NULL,
    callee_id    INTEGER NOT NULL,
    callee_name  TEXT NOT NULL,
    requested_ms INTEGER NOT NULL,
    answered_ms  INTEGER,
    ended_ms     INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    end_reason   TEXT NOT NULL
);
CREATE INDEX calls_by_end ON calls (ended_ms);
CREATE TABLE bans (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER,
    username   TEXT NOT NULL DEFAULT '',
    address    TEXT,
    reason     TEXT NOT NULL DEFAULT '',
    banned_by  TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    CHECK ((user_id IS NULL) != (address IS NULL))
);
CREATE UNIQUE INDEX bans_by_user ON bans (user_id) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX bans_by_address ON bans (address) WHERE address IS NOT NULL;
CREATE TABLE room_owners (
    room       TEXT NOT NULL,
    user_id    INTEGER NOT NULL,
    granted_by INTEGER NOT NULL,
    granted_ms INTEGER NOT NULL,
    PRIMARY KEY (room, user_id)
);
"""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One ended call, as stored (times are Unix epoch ms)."""

    caller_id: int
    caller: str
    callee_id: int
    callee: str
    requested_ms: int
    answered_ms: int | None
    ended_ms: int
    duration_ms: int
    end_reason: str
    """The ``CallEndReason`` name in lower case: rejected, no_answer, busy, hung_up,
    disconnected, shutdown."""
    record_id: int = 0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, with the HTTP API's camelCase names."""
        return {
            "id": self.record_id,
            "caller": self.caller,
            "callerId": self.caller_id,
            "callee": self.callee,
            "calleeId": self.callee_id,
            "requestedMs": self.requested_ms,
            "answeredMs": self.answered_ms,
            "endedMs": self.ended_ms,
            "durationMs": self.duration_ms,
            "endReason": self.end_reason,
        }


@dataclass(frozen=True, slots=True)
class BanRecord:
    """A ban of one user (``user_id``) or of one address; ``expires_ms`` None: until
    lifted."""

    user_id: int | None
    username: str
    address: str | None
    reason: str
    banned_by: str
    created_ms: int
    expires_ms: int | None


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: int
    username: str
    password_hash: str
    canonical: str | None = ""
    """None: an account that shares its canonical name with an older one (kept by the
    version-2 migration); it can log in under its exact name only."""


class NameUnavailable(Exception):
    """A new username collides with an existing user's; ``str()`` says how."""

    def __init__(self, reason: str, existing: str) -> None:
        super().__init__(reason)
        self.existing = existing


class UserExists(NameUnavailable):
    """A user with the same canonical name (NFKC + casefold) is already registered."""


class NameLooksTaken(NameUnavailable):
    """A user whose name looks the same (equal confusable skeleton) is registered."""


class ClientIdReused(Exception):
    """A ``client_msg_id`` already used by this sender for a different message."""


class StoreError(Exception):
    """The database file cannot be used (wrong format, newer schema, unwritable)."""


class RoomDeletion(enum.Enum):
    DELETED = "deleted"
    NOT_OWNER = "not owner"
    MISSING = "missing"


class Database:
    """Synchronous data access. Not thread-safe: ``Store`` serialises calls."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a message acknowledged to its sender survives power loss too.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                self._db.close()
                raise StoreError(
                    f"{path} has schema {version}, written by a newer EchoMesh (this one reads"
                    f" up to {_SCHEMA_VERSION}): upgrade echomesh, or start from a backup"
                    " made by this version"
                )
            first = version
            if version == 0:
                # executescript runs its statements in one go; CREATE ... IF NOT EXISTS
                # keeps a retry after an interrupted first start harmless.
                self._db.executescript(f"BEGIN; {_SCHEMA_V1} PRAGMA user_version=1; COMMIT;")
                version = 1
            if version == 1:
                self._migrate_to_2()
                version = 2
            if version == 2:
                self._migrate_to_3()
            if first == 0:
                log.info("created database %s (schema %d)", path, _SCHEMA_VERSION)
            elif first < _SCHEMA_VERSION:
                log.info("migrated database %s from schema %d to %d", path, first, _SCHEMA_VERSION)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot open database {path}: {exc}; restore a backup or move the file away"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot open database {path}: {exc.strerror or exc}") from None

    def _migrate_to_2(self) -> None:
        """Add canonical names and skeletons, in one transaction (an interrupted start
        leaves version 1, and the next start migrates again)."""
        with self._transaction():
            for statement in _SCHEMA_V2.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            owners: dict[str, str] = {}
            rows = self._db.execute("SELECT id, username FROM users ORDER BY id").fetchall()
            for user_id, username in rows:
                form: str | None = canonical(username)
                assert form is not None
                if form in owners:
                    log.warning(
                        "users %r and %r (id %d) have the same canonical name %r: both are"
                        " kept; %r can log in under its exact name only",
                        owners[form],
                        username,
                        user_id,
                        form,
                        username,
                    )
                    form = None
                else:
                    owners[form] = username
                self._db.execute(
                    "UPDATE users SET canonical = ?, skeleton = ? WHERE id = ?",
                    (form, skeleton(username), user_id),
                )
            self._db.execute("PRAGMA user_version=2")
        if rows:
            log.info("database migrated to schema 2 (%d users)", len(rows))

    def _migrate_to_3(self) -> None:
        """Add the calls, bans and room_owners tables, in one transaction."""
        with self._transaction():
            for statement in _SCHEMA_V3.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("PRAGMA user_version=3")

    def _transaction(self) -> sqlite3.Connection:
        # With isolation_level=None, the connection as a context manager commits or
        # rolls back the explicit BEGIN issued here.
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def close(self) -> None:
        self._db.close()

    # -- users
    _USER_COLUMNS = "id, username, password_hash, canonical"

    def get_user(self, username: str) -> UserRecord | None:
        """The user registered under exactly ``username``, else the one whose canonical
        name is ``username``'s (so ``ALICE`` finds ``alice``)."""
        row = self._db.execute(
            f"SELECT {self._USER_COLUMNS} FROM users WHERE username = ? COLLATE BINARY",
            (username,),
        ).fetchone()
        if row is None:
            row = self._db.execute(
                f"SELECT {self._USER_COLUMNS} FROM users WHERE canonical = ?",
                (canonical(username),),
            ).fetchone()
        return UserRecord(*row) if row else None

    def get_user_by_id(self, user_id: int) -> UserRecord | None:
        row = self._db.execute(
            f"SELECT {self._USER_COLUMNS} FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return UserRecord(*row) if row else None

    def name_conflict(self, username: str) -> NameUnavailable | None:
        """Why ``username`` cannot be registered next to the existing users, or None."""
        row = self._db.execute(
            "SELECT username FROM users WHERE canonical = ?", (canonical(username),)
        ).fetchone()
        if row is not None:
            return UserExists(f"username is taken (by {row[0]!r})", row[0])
        row = self._db.execute(
            "SELECT username FROM users WHERE skeleton = ? LIMIT 1", (skeleton(username),)
        ).fetchone()
        if row is not None:
            return NameLooksTaken(f"username looks too much like {row[0]!r}", row[0])
        return None

    def create_user(self, username: str, password_hash: str, now_ms: int) -> UserRecord:
        """Register ``username``; NameUnavailable (UserExists or NameLooksTaken) if it
        collides with an existing user's name."""
        form = canonical(username)
        with self._transaction():
            conflict = self.name_conflict(username)
            if conflict is not None:
                raise conflict
            try:
                cur = self._db.execute(
                    "INSERT INTO users (username, password_hash, created_ms, canonical,"
                    " skeleton) VALUES (?, ?, ?, ?, ?)",
                    (username, password_hash, now_ms, form, skeleton(username)),
                )
            except sqlite3.IntegrityError:  # the old NOCASE unique name: same canonical
                raise UserExists("username is taken", username) from None
        assert cur.lastrowid is not None
        return UserRecord(cur.lastrowid, username, password_hash, form)

    def list_users(self) -> list[tuple[int, str, int]]:
        """Every user as (id, name, created_ms), oldest first."""
        rows = self._db.execute("SELECT id, username, created_ms FROM users ORDER BY id")
        return [(r[0], r[1], r[2]) for r in rows]

    def delete_user(self, user_id: int) -> None:
        """Forget a user: the account and its undelivered direct messages. Chat messages
        it wrote stay in their rooms under its name (they are the room's history)."""
        with self._transaction():
            self._db.execute("DELETE FROM direct WHERE to_id = ? AND delivered = 0", (user_id,))
            self._db.execute("DELETE FROM users WHERE id = ?", (user_id,))

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

    def room_owner(self, name: str) -> int | None:
        """The user who created ``name`` (its owner), or None for no such room."""
        row = self._db.execute("SELECT created_by FROM rooms WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def delete_room(self, name: str, by_user_id: int) -> RoomDeletion:
        """Delete a room and its history, if ``by_user_id`` owns it (created it).

        The history goes with the room: a room created later under the same name starts
        empty, and nobody who joins it can read the old room's messages.
        """
        with self._transaction():
            row = self._db.execute(
                "SELECT created_by FROM rooms WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                return RoomDeletion.MISSING
            if row[0] != by_user_id:
                return RoomDeletion.NOT_OWNER
            self._db.execute("DELETE FROM chat WHERE room = ?", (name,))
            self._db.execute("DELETE FROM room_owners WHERE room = ?", (name,))
            self._db.execute("DELETE FROM rooms WHERE name = ?", (name,))
        return RoomDeletion.DELETED

    def is_room_owner(self, room: str, user_id: int) -> bool:
        """The room's creator, or a user it (or another owner, or an admin) made owner."""
        if self.room_owner(room) == user_id:
            return True
        row = self._db.execute(
            "SELECT 1 FROM room_owners WHERE room = ? AND user_id = ?", (room, user_id)
        ).fetchone()
        return row is not None

    def add_room_owner(self, room: str, user_id: int, granted_by: int, now_ms: int) -> bool:
        """Make ``user_id`` an owner of ``room``; False if it already was one."""
        with self._transaction():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO room_owners (room, user_id, granted_by, granted_ms)"
                " VALUES (?, ?, ?, ?)",
                (room, user_id, granted_by, now_ms),
            )
        return cur.rowcount == 1

    def remove_room_owner(self, room: str, user_id: int) -> bool:
        """Take an added owner's ownership away; False if it had none (a creator keeps
        its own: it is the row in ``rooms``)."""
        with self._transaction():
            cur = self._db.execute(
                "DELETE FROM room_owners WHERE room = ? AND user_id = ?", (room, user_id)
            )
        return cur.rowcount == 1

    # -- calls
    def add_call(self, record: CallRecord) -> int:
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO calls (caller_id, caller_name, callee_id, callee_name,"
                " requested_ms, answered_ms, ended_ms, duration_ms, end_reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.caller_id,
                    record.caller,
                    record.callee_id,
                    record.callee,
                    record.requested_ms,
                    record.answered_ms,
                    record.ended_ms,
                    record.duration_ms,
                    record.end_reason,
                ),
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def call_stats(self, limit: int) -> list[CallRecord]:
        """The last ``limit`` ended calls, newest first."""
        rows = self._db.execute(
            "SELECT caller_id, caller_name, callee_id, callee_name, requested_ms, answered_ms,"
            " ended_ms, duration_ms, end_reason, id FROM calls ORDER BY id DESC LIMIT ?",
            (max(0, limit),),
        ).fetchall()
        return [CallRecord(*row) for row in rows]

    def call_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM calls").fetchone()[0])

    # -- bans
    _BAN_COLUMNS = "user_id, username, address, reason, banned_by, created_ms, expires_ms"

    def add_ban(self, ban: BanRecord) -> None:
        """Ban a user or an address, replacing an earlier ban of the same one."""
        with self._transaction():
            if ban.user_id is not None:
                self._db.execute("DELETE FROM bans WHERE user_id = ?", (ban.user_id,))
            else:
                self._db.execute("DELETE FROM bans WHERE address = ?", (ban.address,))
            self._db.execute(
                f"INSERT INTO bans ({self._BAN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    ban.user_id,
                    ban.username,
                    ban.address,
                    ban.reason,
                    ban.banned_by,
                    ban.created_ms,
                    ban.expires_ms,
                ),
            )

    def remove_ban(self, user_id: int | None = None, address: str | None = None) -> bool:
        """Lift the ban of a user or an address; False if there was none."""
        with self._transaction():
            if user_id is not None:
                cur = self._db.execute("DELETE FROM bans WHERE user_id = ?", (user_id,))
            else:
                cur = self._db.execute("DELETE FROM bans WHERE address = ?", (address,))
        return cur.rowcount == 1

    def active_ban(self, user_id: int | None, address: str | None, now_ms: int) -> BanRecord | None:
        """The ban in force on this user or this address, the longest-lasting first."""
        row = self._db.execute(
            f"SELECT {self._BAN_COLUMNS} FROM bans"
            " WHERE (user_id = ? OR address = ?) AND (expires_ms IS NULL OR expires_ms > ?)"
            " ORDER BY expires_ms IS NULL DESC, expires_ms DESC LIMIT 1",
            (user_id, address, now_ms),
        ).fetchone()
        return BanRecord(*row) if row else None

    def bans(self, now_ms: int) -> list[BanRecord]:
        """Every ban in force, oldest first."""
        rows = self._db.execute(
            f"SELECT {self._BAN_COLUMNS} FROM bans"
            " WHERE expires_ms IS NULL OR expires_ms > ? ORDER BY id",
            (now_ms,),
        ).fetchall()
        return [BanRecord(*row) for row in rows]

    # -- chat
    def add_chat(
        self, room: str, user_id: int, username: str, content: str, client_msg_id: str, now_ms: int
    ) -> tuple[ChatMessage, bool]:
        """Store a chat message and return it with True. A resend (the same client id,
        room and content as a stored message of this user) returns the stored one and
        False; the same client id for a different message raises ClientIdReused."""
        if client_msg_id:
            existing = self._db.execute(
                "SELECT id, room, user_id, username, content, ts_ms, client_msg_id FROM chat"
                " WHERE user_id = ? AND client_msg_id = ?",
                (user_id, client_msg_id),
            ).fetchone()
            if existing:
                stored = ChatMessage(*existing)
                if stored.room_id != room or stored.content != content:
                    raise ClientIdReused(client_msg_id)
                return stored, False
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
                stored = self._direct(row, offline=False)
                if stored.to_user_id != recipient.user_id or stored.content != content:
                    raise ClientIdReused(client_msg_id)
                return stored, False
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


def backup_database(source: Path, target: Path) -> dict[str, int]:
    """Copy the database ``source``, as of one moment, to the new file ``target``; return
    the copy's rows per table.

    SQLite's online backup: consistent while a server writes, and it includes what is
    still in the WAL (a plain ``cp`` of a live database misses that). The copy is private
    (0600), checked, and in rollback-journal mode, so that it is one self-contained file.
    The source is neither migrated nor changed. StoreError names what went wrong.
    """
    if not source.is_file():
        raise StoreError(f"no database at {source}: is --data-dir right?")
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise StoreError(f"{target} exists: back up to a new file name") from None
    except OSError as exc:
        raise StoreError(f"cannot create {target}: {exc.strerror or exc}") from None
    try:
        src = sqlite3.connect(source)
        copy = sqlite3.connect(target)
        try:
            src.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
            if copy.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise StoreError(f"the copy in {target} fails SQLite's quick_check")
            return {
                table: copy.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("users", "rooms", "chat", "direct")
            }
        finally:
            copy.close()
            src.close()
    except sqlite3.DatabaseError as exc:
        target.unlink(missing_ok=True)
        raise StoreError(f"cannot back up {source}: {exc}") from None


P = ParamSpec("P")
T = TypeVar("T")


class Store:
    """Trio adapter: runs ``Database`` calls one at a time in a worker thread."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self._limiter = trio.CapacityLimiter(1)
        self.observe: Callable[[str, float], None] | None = None
        """Called with the operation's name and its seconds after each call (metrics)."""

    @classmethod
    def open(cls, path: Path) -> Store:
        return cls(Database(path))

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one Database method off the event loop."""
        # A caller cancelled while it waits for the limiter (or before) gives up at once,
        # and the call never runs. Once the call runs, abandon_on_cancel=False makes the
        # caller wait for it to return however it is cancelled (Trio then raises
        # Cancelled at the caller's next checkpoint): a call is never left running in
        # its thread behind the caller's back, so the limiter is not released early and
        # ``close`` (also run through here, at shutdown) cannot close the connection
        # under a call still using it.
        start = time.perf_counter()
        try:
            return await trio.to_thread.run_sync(
                lambda: fn(*args, **kwargs), abandon_on_cancel=False, limiter=self._limiter
            )
        finally:
            if self.observe is not None:
                self.observe(getattr(fn, "__name__", "other"), time.perf_counter() - start)

    def close(self) -> None:
        self.db.close()
