"""Every run's record and log, kept across supervisor restarts and reboots.

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

Modules. Opening, transactions, the read-only and the disabled modes are
:mod:`.database`'s (durability and concurrency are said there); :class:`PastRun` and the
row mapping :mod:`.rows`'; deleting log folders (the disk cap, ``remove``) :mod:`.pruning`'s.
This class is the runs: their writes and reads. Thread-safe.

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
import sqlite3
import statistics
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from process_mcp.core.history import pruning
from process_mcp.core.history.database import DB_NAME, Database, HistoryError
from process_mcp.core.history.logread import folder_bytes, snapshot_from_disk
from process_mcp.core.history.rows import ENDED, LogFacts, PastRun, select_runs, select_runs_in
from process_mcp.core.records import utc_now

if TYPE_CHECKING:
    from process_mcp.core.logs.blocks import LogSnapshot

logger = logging.getLogger(__name__)

RUNS_DIR = "runs"
MEDIAN_OVER = 101  # medianSeconds is over this many newest ended runs: bounded cost

__all__ = ["DB_NAME", "RUNS_DIR", "History", "HistoryError", "LogFacts", "PastRun"]


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


class History(Database):
    """The history of one state directory (see module docstring). Thread-safe."""

    def __init__(self, path: Path, runs_dir: Path | None = None, *, read_only: bool = False):
        """Open the database at ``path`` (see :class:`Database`); run logs live in
        ``runs_dir`` (default: ``runs`` beside it). Raises :class:`HistoryError`."""
        super().__init__(path, read_only=read_only)
        self.runs_dir = Path(runs_dir) if runs_dir is not None else self.path.parent / RUNS_DIR

    def _disabled_init(self) -> None:
        self.runs_dir = self.path.parent / RUNS_DIR

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, read_only: bool = False) -> History:
        return cls(Path(state_dir) / DB_NAME, read_only=read_only)

    @classmethod
    def open_or_disabled(cls, state_dir: Path) -> History:
        """The state directory's history, or a disabled one (logged) if it cannot be used."""
        path = Path(state_dir) / DB_NAME
        try:
            return cls(path)
        except HistoryError as exc:
            logger.warning("%s; going on without history", exc)
            return cls.disabled(str(exc), path)

    def _select(
        self, conn: sqlite3.Connection, where: str, params: tuple[Any, ...] = ()
    ) -> list[PastRun]:
        return select_runs(conn, self.runs_dir, where, params)

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
    ) -> PastRun | None:
        """Record that ``process_id`` started (again); None when disabled.

        The run number is 1 + the highest this supervisor recorded for ``process_id``. The
        returned run's ``log_dir`` is where its log store must write: a new folder, or with
        ``share_log_of`` (a run id) that run's folder, for a store kept across restarts
        (unless the disk cap dropped it: then a new folder). ``log_dir`` names a new folder
        (under ``runs_dir``; unique, or the write fails) when the caller chose it, e.g. to
        spawn before recording. The folder itself is not created (the log store makes it
        on first output)."""
        with self.connection(write=True) as conn:
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
        with self.connection(write=True) as conn:
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
        with self.connection(write=True) as conn:
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

    def drop_log(self, run_id: int) -> PastRun | None:
        """See :func:`.pruning.drop_log` (``remove``). Touches the filesystem."""
        return pruning.drop_log(self, self.runs_dir, run_id)

    def running_supervisors(self) -> list[str]:
        """Supervisor instances that have runs still marked ``running`` (a cheap, indexed
        query): the caller checks which are dead and calls :meth:`mark_interrupted`."""
        with self.connection() as conn:
            if conn is None:
                return []
            rows = conn.execute("SELECT DISTINCT supervisor FROM runs WHERE status = 'running'")
            return [row[0] for row in rows]

    def mark_interrupted(self, supervisor: str) -> list[PastRun]:
        """Runs ``supervisor`` left ``running`` become ``interrupted`` (it died; how they
        ended is unknown), and their logs become droppable, sized on disk. Call it only for
        a supervisor known to be dead. Returns the runs marked. Touches the filesystem."""
        with self.connection() as conn:
            if conn is None:
                return []
            left = self._select(conn, "WHERE supervisor = ? AND status = 'running'", (supervisor,))
        sizes = {run.log_id: folder_bytes(run.log_dir) for run in left if run.log_dir}
        now = utc_now()
        with self.connection(write=True) as conn:
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
            return select_runs_in(conn, self.runs_dir, "runs.id", tuple(run.id for run in left))

    def enforce_cap(self, cap_bytes: int, live_bytes: int = 0) -> list[PastRun]:
        """See :func:`.pruning.enforce_cap` (the disk cap). Touches the filesystem."""
        return pruning.enforce_cap(self, self.runs_dir, cap_bytes, live_bytes)

    # ---------------------------------------------------------------- reading
    def get(self, run_id: int) -> PastRun | None:
        with self.connection() as conn:
            if conn is None:
                return None
            found = self._select(conn, "WHERE runs.id = ?", (run_id,))
            return found[0] if found else None

    def find(self, process_id: str) -> PastRun | None:
        """The latest run recorded under ``process_id`` (by any supervisor), e.g. for
        ``get-log`` of a process a previous supervisor ran."""
        with self.connection() as conn:
            if conn is None:
                return None
            found = self._select(
                conn, "WHERE process_id = ? ORDER BY runs.id DESC LIMIT 1", (process_id,)
            )
            return found[0] if found else None

    def runs(self, match: str | None = None, limit: int = 20) -> list[PastRun]:
        """The newest runs first; with ``match``, those whose label or command equals it,
        or whose command contains it (``process-mcp history [LABEL|CMD]``)."""
        with self.connection() as conn:
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

    def ended_under(self, folder: str | None, limit: int) -> list[PastRun]:
        """The newest ended runs whose cwd is ``folder`` or below it (None: any), newest
        first, at most ``limit`` (for ``list`` asked for more ended processes than the
        supervisor still holds)."""
        with self.connection() as conn:
            if conn is None:
                return []
            if folder is None:
                where, params = "WHERE runs.ended_at IS NOT NULL", ()
            else:
                below = f"{_like_escape(folder.rstrip('/'))}/%"
                where = "WHERE runs.ended_at IS NOT NULL AND (cwd = ? OR cwd LIKE ? ESCAPE '\\')"
                params = (folder, below)
            return self._select(conn, f"{where} ORDER BY runs.id DESC LIMIT ?", (*params, limit))

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
        with self.connection() as conn:
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

    def log_snapshot(self, run: PastRun) -> LogSnapshot | None:
        """The stored lines of ``run``'s log, numbered as they were, for ``run_query``;
        None when the run has no log folder or the disk cap dropped it. Reads the whole
        log: call it in a worker thread."""
        if run.log_dir is None or run.log_dropped:
            return None
        with self.connection() as conn:
            if conn is None:
                return None
            row = conn.execute(
                "SELECT first_line, trimmed_bytes, cut_lines FROM logs WHERE id = ?",
                (run.log_id,),
            ).fetchone()
        first_line, trimmed, cut = row if row else (None, None, None)
        return snapshot_from_disk(run.log_dir, first_line or 1, trimmed or 0, cut or 0)
