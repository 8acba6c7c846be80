"""``history``: past runs from the SQLite history, read directly (same user, read-only
queries): it answers even when no supervisor runs, and costs it nothing."""

from __future__ import annotations

import argparse
import json

from process_mcp.core.history.store import History
from process_mcp.core.settings import Settings
from process_mcp.person.render import command_line, duration, outcome, show_table

COLUMNS = ["ID", "LABEL", "STATUS", "EXIT", "STARTED", "TOOK", "CWD", "COMMAND"]


def history(options: argparse.Namespace) -> int:
    settings = Settings.from_env()
    store = History.open_or_disabled(settings.state_dir)
    try:
        if not store.enabled:
            print(f"process-mcp: no history: {store.problem}")
            return 1
        runs = store.runs(options.match, limit=max(options.limit, 1))
    finally:
        store.close()
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
