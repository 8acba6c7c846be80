"""What the history hands out: :class:`PastRun` (one recorded run) and :class:`LogFacts`
(what a live log store knows when its run ends), and the one query that maps rows to runs
by column name."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from process_mcp.core.records import END_STATUSES

if TYPE_CHECKING:
    from process_mcp.core.logs.store import LogStore

ENDED = END_STATUSES  # a run's end statuses, as a record's

# Every column is named as the PastRun field it fills.
_RUN_SELECT = (
    "SELECT runs.id AS id, process_id, run, supervisor, command, args, cwd, label,"
    " started_at, runs.ended_at AS ended_at, duration, status, exit_code, signal,"
    " runs.log_id AS log_id, logs.dir AS log_dir, logs.bytes AS log_bytes,"
    " logs.dropped_bytes AS log_dropped_bytes"
    " FROM runs LEFT JOIN logs ON logs.id = runs.log_id"
)


@dataclass(frozen=True, slots=True)
class LogFacts:
    """What the live log store knows when a run ends, so a later reader numbers lines as
    they were (``first_line`` > 1 when the per-process cap dropped old lines)."""

    bytes: int
    first_line: int
    last_line: int
    trimmed_bytes: int
    cut_lines: int

    @classmethod
    def of(cls, store: LogStore) -> LogFacts:
        return cls(
            bytes=store.size,
            first_line=store.first_line,
            last_line=store.last_line,
            trimmed_bytes=store.dropped_bytes,
            cut_lines=store.cut_lines,
        )


@dataclass(frozen=True, slots=True)
class PastRun:
    """One run as recorded (not to be confused with the core's live ``Run``). ``id`` is
    the database's run id (unique in this history); ``process_id`` is the agent-facing
    id, which a later supervisor may reuse."""

    id: int
    process_id: str
    run: int
    supervisor: str
    command: str
    args: tuple[str, ...]
    cwd: str
    label: str | None
    started_at: str
    ended_at: str | None
    duration: float | None
    status: str
    exit_code: int | None
    signal: str | None
    log_id: int | None
    log_dir: Path | None
    log_bytes: int
    log_dropped_bytes: int | None  # set when the disk cap deleted this run's log

    @property
    def log_dropped(self) -> bool:
        return self.log_dropped_bytes is not None

    def public(self) -> dict[str, Any]:
        """The run as a person or an agent sees it (camelCase, small)."""
        out: dict[str, Any] = {
            "id": self.process_id,
            "run": self.run,
            "status": self.status,
            "command": self.command,
            "args": list(self.args),
            "cwd": self.cwd,
            "label": self.label,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "seconds": None if self.duration is None else round(self.duration, 3),
            "exitCode": self.exit_code,
            "signal": self.signal,
            "logBytes": self.log_bytes,
        }
        if self.log_dropped:
            out["logDroppedBytes"] = self.log_dropped_bytes
        return out

    @classmethod
    def from_row(cls, row: sqlite3.Row, runs_dir: Path) -> PastRun:
        """The run a row of the run query holds, by column name."""
        values = {name: row[name] for name in _FIELDS}
        values["args"] = tuple(json.loads(values["args"]))
        values["log_dir"] = None if values["log_dir"] is None else runs_dir / values["log_dir"]
        values["log_bytes"] = values["log_bytes"] or 0
        return cls(**values)


_FIELDS = tuple(field.name for field in fields(PastRun))


def select_runs(
    conn: sqlite3.Connection, runs_dir: Path, where: str, params: tuple[Any, ...] = ()
) -> list[PastRun]:
    """The runs ``where`` (SQL after the FROM: a WHERE, ORDER BY, LIMIT) selects."""
    cursor = conn.execute(f"{_RUN_SELECT} {where}", params)
    cursor.row_factory = sqlite3.Row
    return [PastRun.from_row(row, runs_dir) for row in cursor]


def select_runs_in(
    conn: sqlite3.Connection, runs_dir: Path, column: str, ids: tuple[int, ...]
) -> list[PastRun]:
    """The runs whose ``column`` is one of ``ids``, in run order."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return select_runs(conn, runs_dir, f"WHERE {column} IN ({marks}) ORDER BY runs.id", ids)
