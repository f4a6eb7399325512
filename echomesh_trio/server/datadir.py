"""The data directory: created private (0700), locked by the one server that uses it.

The database holds password hashes, so the directory is created 0700 and the database
file 0600 before SQLite first opens it (SQLite gives its -wal and -shm files the database
file's mode). A server holds an exclusive ``flock`` on ``echomesh.lock`` for as long as it
runs; the file names the holder, so a second server on the same directory can say who
has it. The lock goes with the process (the kernel releases it on exit, even a crash), so
a stale lock file never blocks a start.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import stat
import time
from pathlib import Path

from echomesh_trio.server.store import StoreError

log = logging.getLogger("echomesh.server")

DATABASE_NAME = "echomesh.sqlite3"
LOCK_NAME = "echomesh.lock"


def prepare(data_dir: Path) -> Path:
    """Make sure ``data_dir`` is a usable private directory; return the database path.

    StoreError, with a message naming the directory and what to do, if it cannot be.
    """
    try:
        data_dir.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        if not data_dir.is_dir():
            raise StoreError(
                f"data_dir {data_dir} is a file, not a directory: choose another --data-dir"
            ) from None
    except OSError as exc:
        raise StoreError(f"cannot create data_dir {data_dir}: {exc.strerror or exc}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StoreError(
            f"data_dir {data_dir} is not writable by this user (uid {os.getuid()}):"
            " fix its owner or choose another --data-dir"
        )
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o077:
        log.warning("data_dir %s is open to other users (mode %o); chmod 700 it", data_dir, mode)
    db_path = data_dir / DATABASE_NAME
    for suffix in ("", "-wal", "-shm"):
        _make_private(db_path.with_name(DATABASE_NAME + suffix), create=not suffix)
    return db_path


def _make_private(path: Path, create: bool) -> None:
    """Create ``path`` 0600 (when asked), or take group and other access from it."""
    try:
        if create:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700)
            log.warning(
                "%s was readable by other users (mode %o); now %o", path, mode, mode & 0o700
            )
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise StoreError(f"{path} is a directory, not a database: move it away") from None
    except OSError as exc:
        raise StoreError(f"cannot use {path}: {exc.strerror or exc}") from None


class DataDirLock:
    """An exclusive lock on a data directory for this process; ``release`` (or exit) frees it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"data_dir {data_dir} is in use by {holder}: stop that server first,"
                " or choose another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        note = f"echomesh-serve pid {os.getpid()} on {socket.gethostname()} since {started}\n"
        os.pwrite(fd, note.encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
