"""The history's SQLite plumbing: opening (read-write and migrated, or read-only), one
connection behind a lock, transactions, errors that name the file and the fix, and the
disabled mode.

Durability and concurrency. WAL journal with ``synchronous=NORMAL``: a commit survives the
process dying at any point; after a power cut the last commits may be lost, never the file.
Readers never wait for a writer; writers (from this or another process) take turns, waiting
up to ``BUSY_TIMEOUT`` for one another. One connection per :class:`Database`, guarded by a
lock, so methods may be called from any thread.

Read-only. ``read_only=True`` (the person's ``history`` command) never writes, creates or
migrates: it reads an intact database on a read-only disk or of a file it may not write,
and a file whose schema is older than this code is refused with a message saying so
(the next supervisor migrates it) rather than brought up to date.

Disabled. A database that cannot be used raises :class:`HistoryError`;
:meth:`Database.disabled` is the stand-in whose :meth:`connection` yields None, so every
method of a subclass does nothing and a supervisor goes on without memory.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from process_mcp.core.history import schema

DB_NAME = "history.sqlite3"
BUSY_TIMEOUT = 5.0  # seconds a write waits for another process's write
D = TypeVar("D", bound="Database")


class HistoryError(Exception):
    """The history database cannot be used; the message names the file and what to do."""


class Database:
    """One history database file (see the module docstring). Thread-safe."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """Open ``path``: read-write (creating and migrating it), or ``read_only``.
        Raises :class:`HistoryError` if it cannot be used."""
        self.path = Path(path)
        self.read_only = read_only
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        conn = self._open_read_only() if read_only else self._open_for_writing()
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            if read_only:
                self._check_version(conn)
            else:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                schema.migrate(conn)
        except schema.SchemaTooNew as exc:
            conn.close()
            raise HistoryError(f"history database {self.path}: {exc}") from exc
        except HistoryError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise self._error("cannot be used", exc) from exc
        self._conn = conn

    def _open_for_writing(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Private whatever the umask: SQLite gives its -wal and -shm files the database
            # file's mode, so creating that one 0600 first covers all three.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(self.path, 0o600)
            return sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._error("cannot be opened", exc) from exc

    def _open_read_only(self) -> sqlite3.Connection:
        """``mode=ro``; on a disk nobody can write, where SQLite cannot make the WAL's
        shared-memory file, ``immutable=1`` (safe: no one can change the file there)."""
        if not self.path.is_file():
            raise HistoryError(f"history database {self.path} does not exist (no runs yet)")
        uri = f"file:{quote(str(self.path.absolute()))}?mode=ro"
        last: sqlite3.Error | None = None
        for suffix in ("", "&immutable=1"):
            conn = None
            try:
                conn = sqlite3.connect(
                    uri + suffix, uri=True, isolation_level=None, check_same_thread=False
                )
                schema.user_version(conn)  # the WAL's shared memory is opened on first read
                return conn
            except sqlite3.Error as exc:
                last = exc
                if conn is not None:
                    conn.close()
        assert last is not None
        raise self._error("cannot be opened", last) from last

    def _check_version(self, conn: sqlite3.Connection) -> None:
        found = schema.user_version(conn)
        if found > schema.SCHEMA_VERSION:
            raise schema.SchemaTooNew(found, schema.SCHEMA_VERSION)
        if found < schema.SCHEMA_VERSION:
            raise HistoryError(
                f"history database {self.path} has schema version {found}, older than this "
                f"process-mcp's {schema.SCHEMA_VERSION}; it is brought up to date when a "
                "supervisor next opens it for writing (any agent's first call), or read it "
                "with the process-mcp that wrote it"
            )

    @classmethod
    def disabled(cls: type[D], problem: str, path: Path | None = None) -> D:
        """A stand-in that records nothing and finds nothing, saying why in ``problem``."""
        self = cls.__new__(cls)
        self.path = Path(path) if path is not None else Path(os.devnull)
        self.read_only = False
        self.problem = problem
        self._lock = threading.Lock()
        self._conn = None
        self._disabled_init()
        return self

    def _disabled_init(self) -> None:
        """What a subclass sets up in the disabled stand-in too."""

    @property
    def enabled(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self: D) -> D:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, what: str, exc: BaseException) -> HistoryError:
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text
        ):
            fix = "it is damaged: move it aside or delete it, and a new history starts"
        elif "readonly" in text or isinstance(exc, PermissionError):
            fix = "make it and its folder writable by this user, or set PROCESS_MCP_STATE_DIR"
        elif "full" in text:
            fix = "free space on its disk, or set PROCESS_MCP_STATE_DIR to another disk"
        else:
            fix = "check the disk and the file's permissions, or set PROCESS_MCP_STATE_DIR"
        return HistoryError(f"history database {self.path} {what} ({exc}); {fix}")

    @contextmanager
    def connection(self, write: bool = False) -> Iterator[sqlite3.Connection | None]:
        """The connection (None when disabled), inside a transaction when ``write``.
        An SQLite failure becomes a :class:`HistoryError` naming the file and the fix."""
        with self._lock:
            conn = self._conn
            if conn is None:
                yield None
                return
            if write and self.read_only:
                raise HistoryError(f"history database {self.path} was opened read-only")
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:  # SQLite may have rolled back already
                            conn.execute("ROLLBACK")
                        raise
                else:
                    yield conn
            except sqlite3.Error as exc:
                raise self._error("failed", exc) from exc
