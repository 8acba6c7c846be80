"""``logs`` and ``logs -f``: print a log, then what the process writes, until it ends.

Following is driven by the supervisor's ``output`` events (asked for every
``FOLLOW_INTERVAL`` at most), each answered by reading from the cursor on: nothing is
polled while the process is quiet, and nothing is printed twice (a line not yet ended by
a newline is printed once it is complete). Each page read while catching up ends at the
last line it returns (the supervisor's ``next_cursor``), so a burst bigger than one
answer is printed whole, each line once.

Every line passes the terminal filter (``cli/terminal.py``) unless ``--raw``: on a
terminal the log is read as written and only SGR colours are kept; elsewhere (or with
``--grep``, which matches the cleaned text) the supervisor's cleaned text is filtered."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from process_mcp.cli.link import Link
from process_mcp.cli.terminal import SGR_RESET, log_line
from process_mcp.supervisor.protocol import ops
from process_mcp.supervisor.protocol.documents import LogAnswerDoc, LogQueryArgs

FOLLOW_INTERVAL = 0.01  # seconds: the latency floor of ``-f``
PAGE = 1000  # lines per read while catching up
PAGE_BYTES = 1024 * 1024  # bytes per read while catching up (the supervisor's most)
QUIET_LOOK = 1.0  # seconds: look anyway this often (an event lost to a reconnect, say)


@dataclass
class LogView:
    """How log lines reach the person: ``raw`` asks the supervisor for the text as written,
    ``show`` turns a line into what is printed; ``tinted`` once a colour was printed (the
    terminal's colours are reset when the command ends)."""

    raw: bool
    show: Callable[[str], str]
    tinted: bool = False

    @classmethod
    def choose(cls, raw: bool, grep: bool, out: TextIO | None = None) -> LogView:
        """``--raw``: everything as written. A terminal without ``--grep`` (and without
        ``NO_COLOR``): as written, colours kept, every other escape removed. Else the
        cleaned text. Controls left in a line are shown as escapes (``\\x07``)."""
        if raw:
            return cls(True, str)
        out = out or sys.stdout
        if not grep and out.isatty() and not os.environ.get("NO_COLOR"):
            return cls(True, lambda line: log_line(line, colours=True))
        return cls(False, log_line)

    def finish(self, out: TextIO | None = None) -> None:
        """Reset the terminal's colours if a printed line set one."""
        if self.tinted:
            (out or sys.stdout).write(SGR_RESET)
            (out or sys.stdout).flush()


PLAIN = LogView(False, log_line)


def print_log(answer: LogAnswerDoc, complete_only: bool = False, view: LogView = PLAIN) -> int:
    """Print the answer's lines through ``view`` (only the newline-ended ones with
    ``complete_only``) and any notice on stderr; returns how many lines were printed."""
    lines = answer.lines
    if complete_only and answer.pending_lines:
        lines = lines[: len(lines) - answer.pending_lines]
    out = sys.stdout
    for line in lines:
        shown = view.show(line)
        if not view.tinted and view.raw and "\x1b[" in shown:
            view.tinted = True
        out.write(shown + "\n")
    out.flush()
    if answer.omitted_lines:
        print(f"process-mcp: {answer.omitted_lines} older lines left out", file=sys.stderr)
    if answer.lost_bytes:
        print(f"process-mcp: {answer.lost_bytes} bytes could not be stored", file=sys.stderr)
    return len(lines)


def follow(
    link: Link, process_id: str, query: LogQueryArgs, redact: bool = False, view: LogView = PLAIN
) -> int:
    """Print the newest lines of ``query``, then every new line until the process ends
    (0) or the person presses Ctrl-C (130). Each line is printed once: a page's cursor is
    the last line it holds, and the next page starts after it."""
    link.call(ops.FollowOutput(True, FOLLOW_INTERVAL))
    first = link.call(ops.ReadLog(process_id, query, redact))
    print_log(first.answer, complete_only=True, view=view)
    cursor = first.answer.next_cursor
    newer = LogQueryArgs(
        grep=query.grep, stream=query.stream, raw=query.raw, limit=PAGE, max_bytes=PAGE_BYTES
    )
    while True:
        read = link.call(ops.ReadLog(process_id, dataclasses.replace(newer, since=cursor), redact))
        answer, record = read.answer, read.record
        ended = record is None or record.status != "running"  # set once its output is drained
        print_log(answer, complete_only=not ended, view=view)
        cursor = answer.next_cursor
        if cursor < answer.last_stored:
            continue  # the page ended before the log does: there is more at once
        if ended:
            return 0
        link.next_event(QUIET_LOOK)  # output, or its end; either way, read again
