"""Deleting run log folders: the disk cap (:func:`enforce_cap`) and ``remove``
(:func:`drop_log`). A folder's record stays, marked with the bytes dropped; a log any of
whose runs is running is never dropped. Both touch the filesystem: call them in a worker
thread from an event loop."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from process_mcp.core.history.database import Database
from process_mcp.core.history.logread import folder_bytes
from process_mcp.core.history.rows import PastRun, select_runs, select_runs_in
from process_mcp.core.records import utc_now

logger = logging.getLogger("process_mcp.core.history.store")


def drop_log(db: Database, runs_dir: Path, run_id: int) -> PastRun | None:
    """Record that run ``run_id``'s log folder was deleted on purpose (``remove``): every
    run of that log keeps its record, marked with the bytes dropped, as the disk cap marks
    them. Deletes the folder if it is still there. Returns the run as now recorded (None
    when disabled or unknown)."""
    with db.connection() as conn:
        if conn is None:
            return None
        found = next(iter(select_runs(conn, runs_dir, "WHERE runs.id = ?", (run_id,))), None)
    if found is None or found.log_id is None or found.log_dropped:
        return found
    size = max(found.log_bytes, folder_bytes(found.log_dir) if found.log_dir else 0)
    if found.log_dir is not None:
        shutil.rmtree(found.log_dir, ignore_errors=True)
    with db.connection(write=True) as conn:
        assert conn is not None
        conn.execute(
            "UPDATE logs SET dropped_at = ?, dropped_bytes = ?, bytes = 0,"
            " ended_at = COALESCE(ended_at, ?) WHERE id = ?",
            (utc_now(), size, utc_now(), found.log_id),
        )
        return select_runs(conn, runs_dir, "WHERE runs.id = ?", (run_id,))[0]


def enforce_cap(db: Database, runs_dir: Path, cap_bytes: int, live_bytes: int = 0) -> list[PastRun]:
    """Delete the log folders of ended runs, oldest end first, until the logs kept plus
    ``live_bytes`` (the caller's running logs, whose size only it knows) fit in
    ``cap_bytes``. Returns the runs whose log was dropped (empty when everything fits:
    then it is one row read).

    The folders are deleted inside the write transaction before it commits: if the process
    dies in between, the folder is gone but still counted, and the next call drops it
    again and records it — never a folder left on disk but forgotten."""
    with db.connection(write=True) as conn:
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
                shutil.rmtree(runs_dir / directory, ignore_errors=True)
            conn.execute(
                "UPDATE logs SET dropped_at = ?, dropped_bytes = ?, bytes = 0 WHERE id = ?",
                (now, size, log_id),
            )
        ids = tuple(victim[0] for victim in victims)
        dropped = select_runs_in(conn, runs_dir, "runs.log_id", ids)
    for run in dropped:
        logger.info(
            "disk cap: dropped the log of run %d of %s (%s, %d bytes)",
            run.run,
            run.process_id,
            run.command,
            run.log_dropped_bytes or 0,
        )
    return dropped
