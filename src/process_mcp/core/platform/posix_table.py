"""The process table without ``/proc``: ``psutil`` plus ``os.getpgid``/``os.getsid``.

The posix twin of ``core/trees/procfs.py``, with the same functions and the same tuples,
so that the tree code and the sentinel use either unchanged. Start times are integer
microseconds since the epoch (psutil's ``create_time``): exact on macOS (the kernel's
``p_starttime``); on Linux psutil adds the boot time, which is stable while the clock is
not stepped. psutil reads whatever its platform offers (``sysctl`` on macOS, ``/proc`` on
Linux); this module itself touches no Linux-only interface.

Standard library and psutil only, no package import: the sentinel (run as
``python -I -S``) loads this file by its path, with psutil's folder put on ``sys.path``.
"""

from __future__ import annotations

import os

import psutil

STATE, PPID, PGID, SID, START = range(5)
ZOMBIE_STATES = ("Z", "X")

Stat = tuple[str, int, int, int, int]  # state, ppid, pgid, sid, start (µs since the epoch)

_STATES = {psutil.STATUS_ZOMBIE: "Z", psutil.STATUS_DEAD: "X", psutil.STATUS_STOPPED: "T"}
_ATTRS = ["ppid", "status", "create_time"]
_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError)


def _groups(pid: int) -> tuple[int, int]:
    """``(pgid, sid)``; ``(-1, -1)`` when the kernel will not say (a zombie on macOS)."""
    try:
        return os.getpgid(pid), os.getsid(pid)
    except OSError:
        return -1, -1


def _stat(ppid: int, status: str, created: float, pid: int) -> Stat:
    pgid, sid = _groups(pid)
    return _STATES.get(status, "S"), ppid, pgid, sid, round(created * 1_000_000)


def read_stat(pid: int) -> Stat | None:
    """``(state, ppid, pgid, sid, start_us)`` of ``pid``; None when it is gone. Never raises."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            return _stat(process.ppid(), process.status(), process.create_time(), pid)
    except _GONE:
        return None


def pids() -> list[int]:
    """Every pid at the time of the call (some may be gone when read)."""
    return psutil.pids()


def scan() -> dict[int, Stat]:
    """pid → stat of every process that could be read; one pass over the process table."""
    table = {}
    for process in psutil.process_iter(_ATTRS):
        info = process.info
        if info["ppid"] is None or info["create_time"] is None:
            continue  # vanished or unreadable mid-scan
        status = info["status"] or ""
        table[process.pid] = _stat(info["ppid"], status, info["create_time"], process.pid)
    return table


def environ_value(pid: int, prefix: bytes) -> bytes | None:
    """The rest of ``pid``'s first environment entry starting with ``prefix`` (``b"NAME="``).

    None when there is no such entry or the environment cannot be read: the process is
    gone, belongs to another user, or the OS hides it (macOS does, for restricted binaries
    such as Apple's ``/bin/sleep``). Never raises."""
    name, _, _ = prefix.partition(b"=")
    try:
        environ = psutil.Process(pid).environ()
    except _GONE:
        return None
    value = environ.get(name.decode(errors="replace"))
    return None if value is None else value.encode(errors="replace")
