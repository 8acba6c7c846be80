"""``top``: a live view of every process the supervisor holds, refreshed each second.

Keys: ↑/↓ (or k/j) select; l or Enter shows the selected process's log (following it,
any key but s/r goes back); s stops it; r restarts it; q quits. Drawn with ``curses``
(standard library): it owns the keyboard and the screen, which ``rich``'s live display
does not (it draws but reads no keys). Every row goes through the terminal filter
(``cli/terminal.py``) before curses sees it: labels, ids and log lines are agents' text.
"""

from __future__ import annotations

import contextlib
import curses
import os
import time
from typing import Any

from process_mcp.cli.link import Link, RequestFailed
from process_mcp.cli.render import age, outcome, size
from process_mcp.cli.terminal import log_line, visible
from process_mcp.supervisor.protocol import ops
from process_mcp.supervisor.protocol.documents import LogQueryArgs

REFRESH = 1.0  # seconds between two looks
HEADER = f"{'ID':<8}{'LABEL':<14}{'STATUS':<9}{'PID':>7} {'AGE/EXIT':<9}{'CPU':>5}{'MEM':>8} "
HEADER += f"{'PORTS':<12}LAST LINE"


def run_top() -> int:
    if not os.isatty(1):
        print("process-mcp: top needs a terminal; use `process-mcp ps` in scripts")
        return 2
    with Link.open() as link:
        return curses.wrapper(lambda screen: View(screen, link).loop())


class View:
    """The screen's state: the processes last seen, the selection, and the mode."""

    def __init__(self, screen: Any, link: Link) -> None:
        self.screen = screen
        self.link = link
        self.processes: list[dict[str, Any]] = []
        self.last_lines: dict[str, str] = {}
        self.selected = 0
        self.message = ""
        self.log_of: str | None = None  # showing this process's log instead of the list

    def loop(self) -> int:
        curses.curs_set(0)
        self.screen.timeout(int(REFRESH * 1000))
        next_look = 0.0
        while True:
            if time.monotonic() >= next_look:
                self.look()
                next_look = time.monotonic() + REFRESH
            self.draw()
            key = self.screen.getch()
            if key in (ord("q"), ord("Q")) and self.log_of is None:
                return 0
            if self.handle(key):
                next_look = 0.0

    def look(self) -> None:
        try:
            listed = self.link.call(ops.ListProcesses(all=True, facts=True)).processes
            self.processes = [p.public() for p in listed]
        except RequestFailed as exc:
            self.message = str(exc)
            return
        self.selected = min(self.selected, max(len(self.processes) - 1, 0))
        height = self.screen.getmaxyx()[0]
        for process in self.processes[: max(height - 3, 0)]:
            try:
                read = self.link.call(ops.ReadLog(process["id"], LogQueryArgs(last_lines=1)))
                lines = read.answer.lines
                self.last_lines[process["id"]] = log_line(lines[-1]) if lines else ""
            except RequestFailed:
                continue

    def handle(self, key: int) -> bool:
        """Act on a key; True when the view should look again at once."""
        if self.log_of is not None:
            if key == -1:
                return False
            self.log_of = None if key not in (ord("s"), ord("r")) else self.log_of
            if self.log_of is None:
                return True
        if key in (curses.KEY_DOWN, ord("j")):
            self.selected = min(self.selected + 1, max(len(self.processes) - 1, 0))
        elif key in (curses.KEY_UP, ord("k")):
            self.selected = max(self.selected - 1, 0)
        elif key in (ord("l"), 10, 13, curses.KEY_ENTER) and self.processes:
            self.log_of = self.current()["id"]
            return True
        elif key == ord("s") and self.processes:
            self.act(ops.Stop(self.current()["id"]), "stopping")
            return True
        elif key == ord("r") and self.processes:
            self.act(ops.Restart(self.current()["id"]), "restarting")
            return True
        return False

    def current(self) -> dict[str, Any]:
        return self.processes[self.selected]

    def act(self, request: ops.Stop | ops.Restart, doing: str) -> None:
        process = self.current()
        self.message = f"{doing} {process['id']}…"
        self.draw()
        try:
            record = self.link.call(request).record.public()
            self.message = f"{process['id']}: {record['status']} {outcome(record)}".rstrip()
        except RequestFailed as exc:
            self.message = f"{process['id']}: {exc}"

    def draw(self) -> None:
        screen = self.screen
        screen.erase()
        height, width = screen.getmaxyx()
        title = f"process-mcp top — {len(self.processes)} processes — "
        title += "↑↓ select  l log  s stop  r restart  q quit"
        _put(screen, 0, title, width, curses.A_BOLD)
        if self.log_of is not None:
            self.draw_log(height, width)
        else:
            _put(screen, 1, HEADER, width, curses.A_UNDERLINE)
            for row, process in enumerate(self.processes[: max(height - 3, 0)]):
                style = curses.A_REVERSE if row == self.selected else curses.A_NORMAL
                _put(screen, row + 2, self.line(process), width, style)
        _put(screen, height - 1, self.message, width, curses.A_DIM)
        screen.refresh()

    def draw_log(self, height: int, width: int) -> None:
        assert self.log_of is not None
        try:
            query = LogQueryArgs(last_lines=max(height - 3, 1))
            read = self.link.call(ops.ReadLog(self.log_of, query))
        except RequestFailed as exc:
            self.message = str(exc)
            return
        status = read.record.status if read.record is not None else "ended"
        _put(self.screen, 1, f"log of {self.log_of} ({status}) — any key: back", width, 0)
        for row, line in enumerate(read.answer.lines[-(height - 3) :]):
            _put(self.screen, row + 2, log_line(line), width, curses.A_NORMAL)

    def line(self, process: dict[str, Any]) -> str:
        facts = process.get("facts") or {}
        running = process["status"] == "running"
        ports = ",".join(str(p) for p in process.get("listeningPorts") or [])
        label = visible(process.get("label") or "")
        cpu = f"{facts['cpuPercent']:.0f}%" if running and "cpuPercent" in facts else ""
        when = age(process.get("startedAt")) if running else outcome(process)
        return (
            f"{visible(process['id']):<8}{label[:13]:<14}{process['status']:<9}"
            f"{process.get('pid') or '':>7} {when:<9}{cpu:>5}"
            f"{size(facts.get('memoryBytes')) if running else '':>8} {ports[:11]:<12}"
            f"{self.last_lines.get(process['id'], '')}"
        )


def _put(screen: Any, row: int, text: str, width: int, style: int) -> None:
    """Write ``text`` (controls shown as escapes) cut to the screen's width (curses raises
    on the last cell)."""
    with contextlib.suppress(curses.error):
        screen.addnstr(row, 0, visible(text.replace("\t", " ")), max(width - 1, 0), style)
