"""Reading ``/proc``: the one ``/proc/<pid>/stat`` parser and the one environment reader.

Standard library only, and nothing but ``os``: the sentinel (``sentinel_program.py``, run as
``python -I -S``) loads this file by its path, and must stay up in milliseconds. The server
imports it as ``process_mcp.core.trees.procfs`` (``proc.py`` wraps its tuples in ``ProcInfo``).
"""

from __future__ import annotations

import os
import time

# Fields of a parsed stat, in the order read_stat returns them.
STATE, PPID, PGID, SID, START = range(5)
ZOMBIE_STATES = ("Z", "X")

Stat = tuple[str, int, int, int, int]  # state, ppid, pgid, sid, start ticks


def read_stat(pid: int) -> Stat | None:
    """``(state, ppid, pgid, sid, start_ticks)`` of ``pid``; None when it is gone.

    ``start_ticks`` is the start time in clock ticks since boot: with the pid it names one
    process for good, where a pid alone may be reused. Never raises.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])


def pids() -> list[int]:
    """Every pid in ``/proc`` at the time of the call (some may be gone when read)."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def scan() -> dict[int, Stat]:
    """pid → parsed stat of every process that could be read; one pass over ``/proc``."""
    table = {}
    for pid in pids():
        stat = read_stat(pid)
        if stat is not None:
            table[pid] = stat
    return table


def environ_value(pid: int, prefix: bytes) -> bytes | None:
    """The rest of ``pid``'s first environment entry starting with ``prefix`` (``b"NAME="``).

    None when there is no such entry, or the environment cannot be read (the process is
    gone, or belongs to another user). Never raises.
    """
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = b"\0" + handle.read()
    except OSError:
        return None
    start = environ.find(b"\0" + prefix)
    if start < 0:
        return None
    start += 1 + len(prefix)
    end = environ.find(b"\0", start)
    return environ[start : end if end >= 0 else len(environ)]


def boot_ticks() -> int:
    """Now, in the unit of ``/proc/<pid>/stat``'s start time (clock ticks since boot)."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))
