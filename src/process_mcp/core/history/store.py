"""Every run's record and log, kept across supervisor restarts and reboots (SPEC §11).

Where. ``STATE_DIR/history.sqlite3`` holds the records; each run's log stays the log store's
own segment files, in ``STATE_DIR/runs/<log-key>/`` (a folder per run, or shared by the runs
of one process if the caller asks), outside any supervisor's instance folder so that it
outlives the supervisor. The database stores the folder's name and its size.

Runs. A process id may run several times (``restart``): a run is (process id, run number),
numbered from 1 per process and supervisor. Statuses are the record's (``running``,
``exited``, ``stopped``, ``crashed``) plus ``interrupted``: the run was still ``running``
when its supervisor died, so how it ended is unknown.

Disk cap. :meth:`History.enforce_cap` deletes whole log folders of ended runs, oldest end
first, until the logs kept plus the live ones fit; records are kept and say how many bytes
of log were dropped. A log any of whose runs is running is never dropped.

Durability and concurrency. WAL journal with ``synchronous=NORMAL``: a commit survives the
process dying at any point; after a power cut the last commits may be lost, never the file.
Readers never wait for a writer; writers (from this or another process) take turns, waiting
up to ``BUSY_TIMEOUT`` for one another. One connection per :class:`History`, guarded by a
lock, so methods may be called from any thread.

Cost. Every method is one short transaction on indexed columns: well under a millisecond
on a local disk when no other process is writing. It can still wait (up to
``BUSY_TIMEOUT``) for another process's write, and :meth:`History.enforce_cap` and
:meth:`History.mark_interrupted` touch the filesystem: from an event loop, call them in a
worker thread (``asyncio.to_thread``). :meth:`History.log_snapshot` reads the whole log:
always in a worker thread.

Failure. A database that cannot be opened, is not a database, or comes from a newer
process-mcp raises :class:`HistoryError` naming the file and the fix;
:meth:`History.open_or_disabled` turns that into a disabled history (``enabled`` false,
``problem`` set) whose methods do nothing, so a supervisor can go on without memory.
A write that fails later raises :class:`HistoryError` too; the caller logs it and goes on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from process_mcp.core.history import schema
from process_mcp.core.history.logread import folder_bytes, snapshot_from_disk
from process_mcp.core.records import utc_now

if TYPE_CHECKING:
    from process_mcp.core.logs.blocks import LogSnapshot
    from process_mcp.core.logs.store import LogStore

logger = logging.getLogger(__name__)

DB_NAME = "history.sqlite3"
RUNS_DIR = "runs"
BUSY_TIMEOUT = 5.0  # seconds a write waits for another process's write
MEDIAN_OVER = 101  # medianSeconds is over this many newest ended runs: bounded cost
ENDED = ("exited", "stopped", "crashed")
_RUN_COLUMNS = (
    "runs.id, process_id, run, supervisor, command, args, cwd, label, started_at, "
    "runs.ended_at, duration, status, exit_code, signal, runs.log_id, logs.dir, logs.bytes, "
    "logs.dropped_bytes"
)
_RUN_FROM = "runs LEFT JOIN logs ON logs.id = runs.log_id"


class HistoryError(Exception):
    """The history database cannot be used; the message names the file and what to do."""


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
class Run:
    """One run as recorded. ``id`` is the database's run id (unique in this history);
    ``process_id`` is the agent-facing id, which a later supervisor may reuse."""

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


def _seconds(started_at: str, ended_at: str) -> float | None:
    try:
        delta = datetime.fromisoformat(ended_at) - datetime.fromisoformat(started_at)
    except ValueError:
        return None
    return max(delta.total_seconds(), 0.0)


def _signature(command: str, args: list[str] | tuple[str, ...]) -> str:
    return json.dumps([command, *args], separators=(",", ":"), ensure_ascii=False)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class History:
    """The history of one state directory (see module docstring). Thread-safe."""

    def __init__(self, path: Path, runs_dir: Path | None = None) -> None:
        """Open (creating if needed) the database at ``path`` and migrate it.
        Raises :class:`HistoryError` if it cannot be used."""
        self.path = Path(path)
        self.runs_dir = Path(runs_dir) if runs_dir is not None else self.path.parent / RUNS_DIR
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Private whatever the umask: SQLite gives its -wal and -shm files the database
            # file's mode, so creating that one 0600 first covers all three.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(self.path, 0o600)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._error("cannot be opened", exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            schema.migrate(conn)
        except schema.SchemaTooNew as exc:
            conn.close()
            raise HistoryError(f"history database {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            conn.close()
            raise self._error("cannot be used", exc) from exc
        self._conn = conn

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> History:
        return cls(Path(state_dir) / DB_NAME)

    @classmethod
    def disabled(cls, problem: str, path: Path | None = None) -> History:
        """A history that records nothing and finds nothing, saying why in ``problem``."""
        self = cls.__new__(cls)
        self.path = Path(path) if path is not None else Path(os.devnull)
        self.runs_dir = self.path.parent / RUNS_DIR
        self.problem = problem
        self._lock = threading.Lock()
        self._conn = None
        return self

    @classmethod
    def open_or_disabled(cls, state_dir: Path) -> History:
        """The state directory's history, or a disabled one (logged) if it cannot be used."""
        path = Path(state_dir) / DB_NAME
        try:
            return cls(path)
        except HistoryError as exc:
            logger.warning("%s; going on without history", exc)
            return cls.disabled(str(exc), path)

    @property
    def enabled(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- plumbing
    def _error(self, what: str, exc: BaseException) -> HistoryError:
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
            fix = "it is damaged: move it aside or delete it, and a new history starts"
        elif "readonly" in str(exc) or isinstance(exc, PermissionError):
            fix = "make it and its folder writable by this user, or set PROCESS_MCP_STATE_DIR"
        else:
            fix = "check the disk and the file's permissions, or set PROCESS_MCP_STATE_DIR"
        return HistoryError(f"history database {self.path} {what} ({exc}); {fix}")

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection | None]:
        """The connection (None when disabled), inside a transaction when ``write``."""
        with self._lock:
            conn = self._conn
            if conn is None:
                yield None
                return
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

    def _run_from_row(self, row: tuple[Any, ...]) -> Run:
        log_dir = None if row[15] is None else self.runs_dir / row[15]
        return Run(
            id=row[0],
            process_id=row[1],
            run=row[2],
            supervisor=row[3],
            command=row[4],
            args=tuple(json.loads(row[5])),
            cwd=row[6],
            label=row[7],
            started_at=row[8],
            ended_at=row[9],
            duration=row[10],
            status=row[11],
            exit_code=row[12],
            signal=row[13],
            log_id=row[14],
            log_dir=log_dir,
            log_bytes=row[16] or 0,
            log_dropped_bytes=row[17],
        )

    def _select(self, conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[Run]:
        rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} {where}", params)
        return [self._run_from_row(row) for row in rows]

    def _select_in(self, conn: sqlite3.Connection, column: str, ids: tuple[int, ...]) -> list[Run]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self._select(conn, f"WHERE {column} IN ({marks}) ORDER BY runs.id", ids)

    # ---------------------------------------------------------------- writing
    def record_start(
        self,
        process_id: str,
        *,
        command: str,
        args: list[str] | tuple[str, ...],
        cwd: str,
        label: str | None,
        supervisor: str,
        started_at: str | None = None,
        share_log_of: int | None = None,
        log_dir: str | None = None,
    ) -> Run | None:
        """Record that ``process_id`` started (again); None when disabled.

        The run number is 1 + the highest this supervisor recorded for ``process_id``. The
        returned run's ``log_dir`` is where its log store must write: a new folder, or with
        ``share_log_of`` (a run id) that run's folder, for a store kept across restarts
        (unless the disk cap dropped it: then a new folder). ``log_dir`` names a new folder
        (under ``runs_dir``; unique, or the write fails) when the caller chose it, e.g. to
        spawn before recording. The folder itself is not created (the log store makes it
        on first output)."""
        with self._db(write=True) as conn:
            if conn is None:
                return None
            (last,) = conn.execute(
                "SELECT MAX(run) FROM runs WHERE process_id = ? AND supervisor = ?",
                (process_id, supervisor),
            ).fetchone()
            log_id = None
            if share_log_of is not None:
                found = conn.execute(  # a log the cap dropped is not shared: start afresh
                    "SELECT log_id FROM runs JOIN logs ON logs.id = runs.log_id"
                    " WHERE runs.id = ? AND logs.dropped_at IS NULL",
                    (share_log_of,),
                ).fetchone()
                log_id = found[0] if found else None
            if log_id is None:
                log_id = conn.execute("INSERT INTO logs DEFAULT VALUES").lastrowid
                name = log_dir or f"{log_id:06d}-{process_id}"
                conn.execute("UPDATE logs SET dir = ? WHERE id = ?", (name, log_id))
            else:  # running again: not droppable until this run ends
                conn.execute("UPDATE logs SET ended_at = NULL WHERE id = ?", (log_id,))
            run_id = conn.execute(
                "INSERT INTO runs (process_id, run, supervisor, command, args, signature, cwd,"
                " label, started_at, status, log_id) VALUES (?,?,?,?,?,?,?,?,?,'running',?)",
                (
                    process_id,
                    (last or 0) + 1,
                    supervisor,
                    command,
                    json.dumps(list(args), ensure_ascii=False),
                    _signature(command, args),
                    cwd,
                    label,
                    started_at or utc_now(),
                    log_id,
                ),
            ).lastrowid
            return self._select(conn, "WHERE runs.id = ?", (run_id,))[0]

    def record_end(
        self,
        run_id: int,
        *,
        status: str,
        exit_code: int | None,
        signal: str | None,
        ended_at: str | None = None,
        log: LogFacts | None = None,
    ) -> None:
        """Record how run ``run_id`` ended. ``log`` (see :meth:`LogFacts.of`) lets a later
        reader number the lines as they were; without it the folder's size is measured
        on disk (a few ``stat`` calls)."""
        if not self.enabled:
            return
        if status not in ENDED:
            raise ValueError(f"status {status!r} is not an end; give one of {', '.join(ENDED)}")
        ended_at = ended_at or utc_now()
        measured = None
        if log is None:
            found = self.get(run_id)
            measured = folder_bytes(found.log_dir) if found and found.log_dir else 0
        with self._db(write=True) as conn:
            assert conn is not None
            row = conn.execute(
                "SELECT started_at, log_id FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise HistoryError(f"history has no run with id {run_id}; record its start first")
            started_at, log_id = row
            conn.execute(
                "UPDATE runs SET ended_at = ?, duration = ?, status = ?, exit_code = ?,"
                " signal = ? WHERE id = ?",
                (ended_at, _seconds(started_at, ended_at), status, exit_code, signal, run_id),
            )
            if log is not None:
                conn.execute(
                    "UPDATE logs SET bytes = ?, first_line = ?, last_line = ?,"
                    " trimmed_bytes = ?, cut_lines = ?, ended_at = ? WHERE id = ?",
                    (
                        log.bytes,
                        log.first_line,
                        log.last_line,
                        log.trimmed_bytes,
                        log.cut_lines,
                        ended_at,
                        log_id,
                    ),
                )
            else:
                conn.execute(
                    "UPDATE logs SET bytes = ?, ended_at = ? WHERE id = ?",
                    (measured, ended_at, log_id),
                )

    def forget(self, run_id: int) -> None:
        """Erase run ``run_id`` as if never started: for a start recorded before the spawn,
        when the spawn then failed. Its log row goes too unless another run shares it (a
        failed restart): then that log is droppable again, as it was before."""
        with self._db(write=True) as conn:
            if conn is None:
                return
            row = conn.execute("SELECT log_id FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            (log_id,) = row
            (others,) = conn.execute(
                "SELECT COUNT(*) FROM runs WHERE log_id = ?", (log_id,)
            ).fetchone()
            if not others:
                conn.execute("DELETE FROM logs WHERE id = ?", (log_id,))
                return
            conn.execute(
                "UPDATE logs SET ended_at = (SELECT COALESCE(MAX(ended_at), ?) FROM runs"
                " WHERE log_id = ?) WHERE id = ? AND NOT EXISTS"
                " (SELECT 1 FROM runs WHERE log_id = ? AND status = 'running')",
                (utc_now(), log_id, log_id, log_id),
            )

    def drop_log(self, run_id: int) -> Run | None:
        """Record that run ``run_id``'s log folder was deleted on purpose (``remove``):
        every run of that log keeps its record, marked with the bytes dropped, as the disk
        cap marks them. Deletes the folder if it is still there. Returns the run as now
        recorded (None when disabled or unknown). Touches the filesystem."""
        found = self.get(run_id)
        if found is None or found.log_id is None or found.log_dropped:
            return found
        size = max(found.log_bytes, folder_bytes(found.log_dir) if found.log_dir else 0)
        if found.log_dir is not None:
            shutil.rmtree(found.log_dir, ignore_errors=True)
        with self._db(write=True) as conn:
            assert conn is not None
            conn.execute(
                "UPDATE logs SET dropped_at = ?, dropped_bytes = ?, bytes = 0,"
                " ended_at = COALESCE(ended_at, ?) WHERE id = ?",
                (utc_now(), size, utc_now(), found.log_id),
            )
            return self._select(conn, "WHERE runs.id = ?", (run_id,))[0]

    def running_supervisors(self) -> list[str]:
        """Supervisor instances that have runs still marked ``running`` (a cheap, indexed
        query): the caller checks which are dead and calls :meth:`mark_interrupted`."""
        with self._db() as conn:
            if conn is None:
                return []
            rows = conn.execute("SELECT DISTINCT supervisor FROM runs WHERE status = 'running'")
            return [row[0] for row in rows]

    def mark_interrupted(self, supervisor: str) -> list[Run]:
        """Runs ``supervisor`` left ``running`` become ``interrupted`` (it died; how they
        ended is unknown), and their logs become droppable, sized on disk. Call it only for
        a supervisor known to be dead. Returns the runs marked. Touches the filesystem."""
        with self._db() as conn:
            if conn is None:
                return []
            left = self._select(conn, "WHERE supervisor = ? AND status = 'running'", (supervisor,))
        sizes = {run.log_id: folder_bytes(run.log_dir) for run in left if run.log_dir}
        now = utc_now()
        with self._db(write=True) as conn:
            assert conn is not None
            conn.execute(
                "UPDATE runs SET status = 'interrupted' WHERE supervisor = ?"
                " AND status = 'running'",
                (supervisor,),
            )
            for log_id, size in sizes.items():
                conn.execute(
                    "UPDATE logs SET bytes = ?, ended_at = ? WHERE id = ? AND NOT EXISTS"
                    " (SELECT 1 FROM runs WHERE log_id = ? AND status = 'running')",
                    (size, now, log_id, log_id),
                )
            return self._select_in(conn, "runs.id", tuple(run.id for run in left))

    def enforce_cap(self, cap_bytes: int, live_bytes: int = 0) -> list[Run]:
        """Delete the log folders of ended runs, oldest end first, until the logs kept plus
        ``live_bytes`` (the caller's running logs, whose size only it knows) fit in
        ``cap_bytes``. Records are kept, marked with the bytes dropped. Returns the runs
        whose log was dropped (empty when everything fits: then it is one row read).

        The folders are deleted inside the write transaction before it commits: if the
        process dies in between, the folder is gone but still counted, and the next call
        drops it again and records it — never a folder left on disk but forgotten."""
        with self._db(write=True) as conn:
            if conn is None:
                return []
            (kept,) = conn.execute("SELECT kept_bytes FROM totals").fetchone()
            excess = kept + live_bytes - cap_bytes
            if excess <= 0:
                return []
            victims: list[tuple[int, str | None, int]] = []
            rows = conn.execute(
                "SELECT id, dir, bytes FROM logs WHERE dropped_at IS NULL"
                " AND ended_at IS NOT NULL ORDER BY ended_at"
            )
            for log_id, directory, size in rows:
                if excess <= 0:
                    break
                victims.append((log_id, directory, size))
                excess -= size
            now = utc_now()
            for log_id, directory, size in victims:
                if directory:
                    shutil.rmtree(self.runs_dir / directory, ignore_errors=True)
                conn.execute(
                    "UPDATE logs SET dropped_at = ?, dropped_bytes = ?, bytes = 0 WHERE id = ?",
                    (now, size, log_id),
                )
            ids = tuple(victim[0] for victim in victims)
            dropped = self._select_in(conn, "runs.log_id", ids)
        for run in dropped:
            logger.info(
                "disk cap: dropped the log of run %d of %s (%s, %d bytes)",
                run.run,
                run.process_id,
                run.command,
                run.log_dropped_bytes or 0,
            )
        return dropped

    # ---------------------------------------------------------------- reading
    def get(self, run_id: int) -> Run | None:
        with self._db() as conn:
            if conn is None:
                return None
            found = self._select(conn, "WHERE runs.id = ?", (run_id,))
            return found[0] if found else None

    def find(self, process_id: str) -> Run | None:
        """The latest run recorded under ``process_id`` (by any supervisor), e.g. for
        ``get-log`` of a process a previous supervisor ran."""
        with self._db() as conn:
            if conn is None:
                return None
            found = self._select(
                conn, "WHERE process_id = ? ORDER BY runs.id DESC LIMIT 1", (process_id,)
            )
            return found[0] if found else None

    def runs(self, match: str | None = None, limit: int = 20) -> list[Run]:
        """The newest runs first; with ``match``, those whose label or command equals it,
        or whose command contains it (``process-mcp history [LABEL|CMD]``)."""
        with self._db() as conn:
            if conn is None:
                return []
            if match is None:
                return self._select(
                    conn, "ORDER BY started_at DESC, runs.id DESC LIMIT ?", (limit,)
                )
            return self._select(
                conn,
                "WHERE label = ? OR command = ? OR command LIKE ? ESCAPE '\\'"
                " ORDER BY started_at DESC, runs.id DESC LIMIT ?",
                (match, match, f"%{_like_escape(match)}%", limit),
            )

    def stats(
        self,
        command: str,
        args: list[str] | tuple[str, ...],
        cwd: str,
        exclude: int | None = None,
    ) -> dict[str, Any] | None:
        """``{runs, failures, medianSeconds}`` of earlier runs of the same command and
        arguments in the same folder, or None when there were none. ``failures`` counts
        crashed runs; ``medianSeconds`` is over the newest ``MEDIAN_OVER`` ended runs (None
        when none has ended). ``exclude`` leaves out a run id (the one just started)."""
        with self._db() as conn:
            if conn is None:
                return None
            key = (_signature(command, args), cwd, -1 if exclude is None else exclude)
            count, failures = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(status = 'crashed'), 0) FROM runs"
                " WHERE signature = ? AND cwd = ? AND id != ?",
                key,
            ).fetchone()
            if not count:
                return None
            durations = [
                row[0]
                for row in conn.execute(
                    "SELECT duration FROM runs WHERE signature = ? AND cwd = ? AND id != ?"
                    " AND duration IS NOT NULL ORDER BY started_at DESC LIMIT ?",
                    (*key, MEDIAN_OVER),
                )
            ]
        median = round(statistics.median(durations), 3) if durations else None
        return {"runs": count, "failures": failures, "medianSeconds": median}

    def log_snapshot(self, run: Run) -> LogSnapshot | None:
        """The stored lines of ``run``'s log, numbered as they were, for ``run_query``;
        None when the run has no log folder or the disk cap dropped it. Reads the whole
        log: call it in a worker thread."""
        if run.log_dir is None or run.log_dropped:
            return None
        with self._db() as conn:
            if conn is None:
                return None
            row = conn.execute(
                "SELECT first_line, trimmed_bytes, cut_lines FROM logs WHERE id = ?",
                (run.log_id,),
            ).fetchone()
        first_line, trimmed, cut = row if row else (None, None, None)
        return snapshot_from_disk(run.log_dir, first_line or 1, trimmed or 0, cut or 0)
