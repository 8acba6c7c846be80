"""``logs`` and ``logs -f``: print a log, then what the process writes, until it ends.

Following is driven by the supervisor's ``output`` events (asked for every
``FOLLOW_INTERVAL`` at most), each answered by reading from the cursor on: nothing is
polled while the process is quiet, and nothing is printed twice (a line not yet ended by
a newline is printed once it is complete)."""

from __future__ import annotations

import sys
from typing import Any

from process_mcp.person.link import Link

FOLLOW_INTERVAL = 0.01  # seconds: the latency floor of ``-f``
PAGE = 1000  # lines per read while catching up
QUIET_LOOK = 1.0  # seconds: look anyway this often (an event lost to a reconnect, say)


def print_log(answer: dict[str, Any], complete_only: bool = False) -> int:
    """Print the answer's lines (only the newline-ended ones with ``complete_only``) and
    any notice on stderr; returns how many lines were printed."""
    lines = answer["lines"]
    if complete_only and answer.get("pending_lines"):
        lines = lines[: len(lines) - answer["pending_lines"]]
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")
    out.flush()
    if answer.get("omitted_lines"):
        print(f"process-mcp: {answer['omitted_lines']} older lines left out", file=sys.stderr)
    if answer.get("lost_bytes"):
        print(f"process-mcp: {answer['lost_bytes']} bytes could not be stored", file=sys.stderr)
    return len(lines)


def follow(link: Link, process_id: str, query: dict[str, Any]) -> int:
    """Print the newest lines of ``query``, then every new line until the process ends
    (0) or the person presses Ctrl-C (130)."""
    link.request("follow_output", {"on": True, "interval": FOLLOW_INTERVAL})
    first = link.request("read_log", {"id": process_id, "query": query})
    print_log(first["answer"], complete_only=True)
    cursor = first["answer"]["next_cursor"]
    extra = {k: v for k, v in query.items() if k in ("grep", "stream")}
    while True:
        read = link.request(
            "read_log", {"id": process_id, "query": {"since": cursor, **extra, "limit": PAGE}}
        )
        answer, record = read["answer"], read["record"]
        ended = record["status"] != "running"  # set once its output is drained
        print_log(answer, complete_only=not ended)
        cursor = answer["next_cursor"]
        if len(answer["lines"]) >= PAGE:
            continue  # a full page: there is more at once
        if ended:
            return 0
        link.next_event(QUIET_LOOK)  # output, or its end; either way, read again
