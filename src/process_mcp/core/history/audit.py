"""The audit trail: who started, stopped, restarted, signalled or sent input to what, and
what the policy said — a table of the history database (schema version 2).

Guarantees: one row per event, in order; never an environment value or a byte of input
(input is recorded as its byte count); a failing write is logged and never fails the
operation it records (the audit observes, it does not decide). Rows are handed to a writer
thread, so a write waiting for the database (another process holding its lock) never holds
up the supervisor's event loop; ``flush`` waits for what is queued. Rows are kept for
``KEEP_DAYS`` days (trimmed at most once an hour).
"""

from __future__ import annotations

import logging
import queue
import re
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from process_mcp.core.history.database import BUSY_TIMEOUT, DB_NAME, Database, HistoryError
from process_mcp.core.records import utc_now

logger = logging.getLogger(__name__)
KEEP_DAYS = 90
_COLUMNS = "at, action, outcome, process_id, command, rule, source, actor, session, pid, detail"
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Actor:
    """Who asked: ``name`` is the MCP client's ``clientInfo`` name/version, or ``person``;
    ``session`` its ``CLAUDE_CODE_SESSION_ID``, else the MCP session; ``pid`` the
    front-end's process."""

    name: str
    session: str | None = None
    pid: int | None = None


PERSON = Actor("person")


@dataclass(frozen=True)
class AuditEntry:
    at: str
    action: str
    outcome: str
    process_id: str | None
    command: str | None
    rule: str | None
    source: str | None
    actor: str
    session: str | None
    pid: int | None
    detail: str | None

    def public(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def _iso(moment: datetime) -> str:
    """As ``utc_now`` writes it, so rows compare as text."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_since(text: str) -> timedelta:
    """``30s``, ``15m``, ``1h``, ``2d``, ``1w`` as a duration; ValueError otherwise."""
    match = _SINCE.match(text)
    if match is None:
        raise ValueError(f"--since {text!r}: give a number and a unit s, m, h, d or w, e.g. 1h")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class AuditLog:
    """Appends and reads audit rows in ``STATE_DIR/history.sqlite3`` (its own :class:`Database`,
    thread-safe). ``enabled`` is false when the database cannot be used (``problem`` says
    why); every method is then a no-op."""

    def __init__(self, state_dir: Path, create: bool = True) -> None:
        """Open the history database for the audit: read-write (created and migrated) when
        ``create``, else read-only (the person's ``audit`` command: nothing written or
        migrated), as :class:`Database` opens it."""
        self.path = Path(state_dir) / DB_NAME
        self.problem: str | None = None
        self._db: Database | None = None
        self._trimmed_at: datetime | None = None
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._queued = 0
        self._written = 0
        self._done = threading.Condition()
        try:
            self._db = Database(self.path, read_only=not create)
        except HistoryError as exc:
            self.problem = f"audit unavailable: {exc}"
            logger.warning("%s", self.problem)

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        """Write what is queued, then close."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=BUSY_TIMEOUT * 2)
            self._writer = None
        if self._db is not None:
            self._db.close()

    def flush(self, timeout: float = BUSY_TIMEOUT * 2) -> bool:
        """Wait until every queued row is written (or failed); False on timeout."""
        with self._done:
            target = self._queued
            return self._done.wait_for(lambda: self._written >= target, timeout)

    def record(
        self,
        action: str,
        outcome: str,
        actor: Actor,
        *,
        process_id: str | None = None,
        command: str | None = None,
        rule: str | None = None,
        source: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Queue one row for the writer thread; never blocks, never raises."""
        if self._db is None:
            return
        row = (utc_now(), action, outcome, process_id, command, rule, source, actor.name)
        with self._done:
            self._queued += 1
        self._queue.put((*row, actor.session, actor.pid, detail))
        if self._writer is None:
            self._writer = threading.Thread(target=self._write, name="audit", daemon=True)
            self._writer.start()

    def _write(self) -> None:
        assert self._db is not None
        while (row := self._queue.get()) is not None:
            try:
                with self._db.connection(write=True) as conn:
                    if conn is not None:
                        conn.execute(
                            f"INSERT INTO audit ({_COLUMNS}) VALUES ({', '.join('?' * 11)})", row
                        )
                        self._trim(conn)
            except HistoryError as exc:
                logger.warning("audit: could not record %s %s: %s", row[1], row[2], exc)
            with self._done:
                self._written += 1
                self._done.notify_all()

    def _trim(self, conn: sqlite3.Connection) -> None:
        """Rows older than ``KEEP_DAYS`` go, at most once an hour."""
        now = datetime.now(UTC)
        if self._trimmed_at is not None and now - self._trimmed_at < timedelta(hours=1):
            return
        self._trimmed_at = now
        cutoff = _iso(now - timedelta(days=KEEP_DAYS))
        conn.execute("DELETE FROM audit WHERE at < ?", (cutoff,))

    def entries(self, since: timedelta | None = None, limit: int = 1000) -> list[AuditEntry]:
        """Rows newer than ``since`` ago (all when None), oldest first, at most ``limit``
        (the newest ones)."""
        if self._db is None:
            return []
        where, params = "", ()
        if since is not None:
            cutoff = _iso(datetime.now(UTC) - since)
            where, params = "WHERE at >= ?", (cutoff,)
        try:
            with self._db.connection() as conn:
                if conn is None:
                    return []
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM audit {where} ORDER BY id DESC LIMIT ?",
                    (*params, limit),
                ).fetchall()
        except HistoryError as exc:
            logger.warning("audit: could not read: %s", exc)
            return []
        return [AuditEntry(*row) for row in reversed(rows)]
