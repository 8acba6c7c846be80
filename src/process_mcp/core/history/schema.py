"""The history database's schema and its versioned migrations.

The version lives in SQLite's ``PRAGMA user_version`` (0 in a new file). ``MIGRATIONS[i]``
takes a database from version ``i`` to ``i + 1``; a release only ever appends steps, never
edits one already shipped, so any older file can be brought up to date. All pending steps and
the new version number are applied in one ``BEGIN IMMEDIATE`` transaction: a crash or a
failing step leaves the file exactly as it was, and two processes opening the same old file
at once migrate it once (the second sees the new version once it gets the write lock).

A file whose version is higher than this code knows was written by a newer process-mcp; it
is refused rather than guessed at (see :class:`SchemaTooNew`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

Migration = Sequence[str]

# Version 1. ``logs`` is one log folder (several runs of one process may share it);
# ``runs`` is one run of a process. Times are ISO-8601 UTC text ("...Z"), so they sort as text.
_V1: Migration = (
    """
    CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        dir TEXT UNIQUE,              -- folder name under the runs directory
        bytes INTEGER NOT NULL DEFAULT 0,
        first_line INTEGER,           -- oldest line kept by the log's own size cap
        last_line INTEGER,
        trimmed_bytes INTEGER,        -- bytes that cap dropped while the process ran
        cut_lines INTEGER,
        ended_at TEXT,                -- NULL while one of its runs is running
        dropped_at TEXT,              -- set when the disk cap deleted the folder
        dropped_bytes INTEGER
    )
    """,
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        process_id TEXT NOT NULL,
        run INTEGER NOT NULL,         -- 1, then +1 per restart of the same process
        supervisor TEXT NOT NULL,     -- the supervisor instance that started it
        command TEXT NOT NULL,
        args TEXT NOT NULL,           -- JSON array
        signature TEXT NOT NULL,      -- JSON [command, *args]: what "the same command" means
        cwd TEXT NOT NULL,
        label TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        duration REAL,                -- seconds, set when it ended
        status TEXT NOT NULL,         -- running exited stopped crashed interrupted
        exit_code INTEGER,
        signal TEXT,
        log_id INTEGER REFERENCES logs(id)
    )
    """,
    # Covering indexes: stats and the cap's sum read the index alone, not the rows.
    "CREATE INDEX runs_by_signature ON runs (signature, cwd, started_at, status, duration)",
    "CREATE INDEX runs_by_label ON runs (label, started_at)",
    "CREATE INDEX runs_by_start ON runs (started_at)",
    "CREATE INDEX runs_by_process ON runs (process_id, id)",
    "CREATE INDEX runs_running ON runs (supervisor) WHERE status = 'running'",
    "CREATE INDEX runs_by_log ON runs (log_id)",
    "CREATE INDEX logs_droppable ON logs (ended_at) WHERE dropped_at IS NULL",
    # The bytes of kept logs of ended runs, kept up to date by triggers so that the disk
    # cap's "does everything fit?" is one row read, however many logs are kept.
    "CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 1), kept_bytes INTEGER NOT NULL)",
    "INSERT INTO totals VALUES (1, 0)",
    """
    CREATE TRIGGER logs_kept_insert AFTER INSERT ON logs
    WHEN NEW.dropped_at IS NULL AND NEW.ended_at IS NOT NULL
    BEGIN UPDATE totals SET kept_bytes = kept_bytes + NEW.bytes; END
    """,
    """
    CREATE TRIGGER logs_kept_update AFTER UPDATE OF bytes, ended_at, dropped_at ON logs
    BEGIN
        UPDATE totals SET kept_bytes = kept_bytes
            - (CASE WHEN OLD.dropped_at IS NULL AND OLD.ended_at IS NOT NULL
                    THEN OLD.bytes ELSE 0 END)
            + (CASE WHEN NEW.dropped_at IS NULL AND NEW.ended_at IS NOT NULL
                    THEN NEW.bytes ELSE 0 END);
    END
    """,
    """
    CREATE TRIGGER logs_kept_delete AFTER DELETE ON logs
    WHEN OLD.dropped_at IS NULL AND OLD.ended_at IS NOT NULL
    BEGIN UPDATE totals SET kept_bytes = kept_bytes - OLD.bytes; END
    """,
)

# Version 2. ``audit``: who asked for what, and what the policy said (no env values, no
# input bytes: ``detail`` holds a byte count for input, a signal name, a request id).
_V2: Migration = (
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,             -- ISO-8601 UTC
        action TEXT NOT NULL,         -- start restart stop signal send-input approve limit
        outcome TEXT NOT NULL,        -- allowed asked approved refused done
        process_id TEXT,
        command TEXT,                 -- the command as evaluated (shell-quoted)
        rule TEXT,                    -- rule id, or NULL for the default
        source TEXT,                  -- FILE:LINE or builtin
        actor TEXT NOT NULL,          -- client name/version, or person
        session TEXT,                 -- CLAUDE_CODE_SESSION_ID, else the MCP session
        pid INTEGER,                  -- the front-end's pid
        detail TEXT
    )
    """,
    "CREATE INDEX audit_by_time ON audit (at)",
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The file's schema version is newer than every migration this code has."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"schema version {found} was written by a newer process-mcp (this one knows up "
            f"to {known}); upgrade process-mcp, or move the file aside to start a new history"
        )
        self.found = found
        self.known = known


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to ``len(migrations)`` and return the version it had before.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so that this function owns
    the transaction. Raises :class:`SchemaTooNew` for a newer file, and re-raises whatever a
    failing step raised after rolling everything back.
    """
    target = len(migrations)
    found = user_version(conn)
    if found == target:
        return found  # the common case costs one read and takes no lock
    if found > target:
        raise SchemaTooNew(found, target)
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = user_version(conn)  # another process may have migrated meanwhile
        if found > target:
            raise SchemaTooNew(found, target)
        for step in migrations[found:]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
