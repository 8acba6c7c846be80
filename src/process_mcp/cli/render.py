"""Turning records into what a person reads: rows of short cells, shown as a ``rich``
table on a terminal and as aligned plain text elsewhere (no ``rich`` import then). Every
cell passes :func:`~process_mcp.cli.terminal.visible` on both paths: a record holds what
an agent wrote, and no control character in it reaches the terminal."""

from __future__ import annotations

import shlex
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from process_mcp.cli.terminal import visible

PS_COLUMNS = ["ID", "LABEL", "STATUS", "PID", "AGE/EXIT", "CPU", "MEM", "PORTS", "OWNER", "CWD"]
PS_COLUMNS += ["COMMAND"]
STATUS_STYLE = {
    "running": "green",
    "exited": "dim",
    "stopped": "yellow",
    "crashed": "bold red",
    "interrupted": "red",
}


def age(started_at: str | None, now: datetime | None = None) -> str:
    """``12s``, ``5m``, ``3h``, ``2d`` since an ISO-8601 time (empty when unknown)."""
    if not started_at:
        return ""
    try:
        then = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = max(((now or datetime.now(UTC)) - then).total_seconds(), 0)
    return duration(seconds)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"


def size(count: int | None) -> str:
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return ""


def command_line(process: dict[str, Any]) -> str:
    """The command as typed; the supervisor's ``list`` sends it cut (ending in ``…``)."""
    if "commandLine" in process:
        return str(process["commandLine"])
    if process.get("shell"):
        return str(process["command"])
    return shlex.join([process["command"], *process.get("args", [])])


def outcome(process: dict[str, Any]) -> str:
    """What ended it: ``exit 1``, ``SIGTERM`` (empty while running)."""
    if process.get("signal"):
        return str(process["signal"])
    if process.get("exitCode") is not None:
        return f"exit {process['exitCode']}"
    return ""


def ps_row(process: dict[str, Any], home: str = "") -> list[str]:
    facts = process.get("facts") or {}
    running = process["status"] == "running"
    cwd = process.get("cwd", "")
    if home and (cwd == home or cwd.startswith(home + "/")):
        cwd = "~" + cwd[len(home) :]
    ports = process.get("listeningPorts") or facts.get("listeningPorts") or []
    return [
        process["id"],
        process.get("label") or "",
        process["status"],
        str(process.get("pid") or ""),
        age(process.get("startedAt")) if running else outcome(process),
        f"{facts['cpuPercent']:.0f}%" if running and "cpuPercent" in facts else "",
        size(facts.get("memoryBytes")) if running else "",
        ",".join(str(port) for port in ports),
        process.get("owner", ""),
        cwd,
        command_line(process),
    ]


def show_table(
    columns: list[str], rows: list[list[str]], out: TextIO | None = None, status_column: int = -1
) -> None:
    """A table: ``rich`` on a terminal (status coloured), aligned plain text otherwise;
    every cell shown through :func:`visible` (controls as escapes, on both paths)."""
    out = out or sys.stdout
    rows = [[visible(cell) for cell in row] for row in rows]
    if out.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold" if column == "COMMAND" else "ellipsis")
        for row in rows:  # Text, not markup: a label or command may hold "[...]"
            table.add_row(
                *(
                    Text(cell, style=STATUS_STYLE.get(cell, "") if i == status_column else "")
                    for i, cell in enumerate(row)
                )
            )
        Console(file=out).print(table)
        return
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    for row in [columns, *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        print("  ".join([*cells, row[-1]]).rstrip(), file=out)
