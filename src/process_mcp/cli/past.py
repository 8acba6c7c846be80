"""``history``: past runs from the SQLite history, read directly: it answers even when no
supervisor runs, and costs it nothing. The database is opened read-only (never created,
written or migrated), so an intact history on a read-only disk or in a file this user may
not write is read; one whose schema is older than this process-mcp is said to be so."""

from __future__ import annotations

import argparse
import json

from process_mcp.cli.render import command_line, duration, outcome, show_table
from process_mcp.core.history.store import DB_NAME, History, HistoryError, PastRun
from process_mcp.core.settings import state_dir

COLUMNS = ["ID", "LABEL", "STATUS", "EXIT", "STARTED", "TOOK", "CWD", "COMMAND"]


def history(options: argparse.Namespace) -> int:
    try:
        runs = _read(options.match, max(options.limit, 1))
    except HistoryError as exc:
        print(f"process-mcp: no history: {exc}")
        return 1
    if options.json:
        print(json.dumps([run.public() for run in runs]))
        return 0
    if not runs:
        print("no runs" + (f" matching {options.match!r}" if options.match else ""))
        return 0
    rows = []
    for run in runs:
        shown = {"command": run.command, "args": list(run.args), "shell": False}
        rows.append(
            [
                run.process_id,
                run.label or "",
                run.status,
                outcome({"exitCode": run.exit_code, "signal": run.signal}),
                run.started_at[:19].replace("T", " "),
                duration(run.duration),
                run.cwd,
                command_line(shown),
            ]
        )
    show_table(COLUMNS, rows, status_column=2)
    return 0


def _read(match: str | None, limit: int) -> list[PastRun]:
    """The newest runs (none when no history was ever written); raises HistoryError."""
    where = state_dir()
    if not (where / DB_NAME).exists():
        return []
    with History.in_state_dir(where, read_only=True) as store:
        return store.runs(match, limit=limit)
