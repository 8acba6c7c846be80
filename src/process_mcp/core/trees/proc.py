"""Finding and signalling every process of a managed tree.

A process group misses descendants that called ``setsid``; a parent/child walk misses
double-forked orphans. Used together (snapshot the descendants *before* signalling, then
signal the group and every snapshot member) they catch both. The host's process table is
read straight from ``/proc/<pid>/stat``: one pass gives ppid, pgid and state for every
process, where ``psutil.process_iter`` costs several times more for the same fields.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start_ticks: int

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def read_proc(pid: int) -> ProcInfo | None:
    """Parse ``/proc/<pid>/stat``; ``None`` when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    return ProcInfo(
        pid=pid,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        start_ticks=int(fields[19]),
    )


def process_table() -> list[ProcInfo]:
    table = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (info := read_proc(int(name))) is not None:
            table.append(info)
    return table


def descendants(root: int, table: list[ProcInfo] | None = None) -> list[ProcInfo]:
    """Every live process below ``root`` by parent links (not including ``root``)."""
    children = _children_map(process_table() if table is None else table)
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            found.append(child)
            stack.append(child.pid)
    return found


def _children_map(table: list[ProcInfo]) -> dict[int, list[ProcInfo]]:
    """Parent pid → children, memoised per table: shutdown asks it once per managed tree."""
    key = id(table)
    cached = _CHILDREN_CACHE.get(key)
    if cached is not None and cached[0] is table:
        return cached[1]
    children: dict[int, list[ProcInfo]] = {}
    for info in table:
        children.setdefault(info.ppid, []).append(info)
    _CHILDREN_CACHE.clear()
    _CHILDREN_CACHE[key] = (table, children)
    return children


_CHILDREN_CACHE: dict[int, tuple[list[ProcInfo], dict[int, list[ProcInfo]]]] = {}


def group_members(pgid: int, table: list[ProcInfo] | None = None) -> list[ProcInfo]:
    table = process_table() if table is None else table
    return [info for info in table if info.pgid == pgid and not info.zombie]


def group_exists(pgid: int) -> bool:
    """Cheap first check (one syscall); zombies still count, so confirm with the table."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(group_members(pgid))


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def signal_each(members: list[ProcInfo], sig: int) -> None:
    """Signal snapshot members that are still the same process (start time checked)."""
    for member in members:
        current = read_proc(member.pid)
        if current is None or current.start_ticks != member.start_ticks or current.zombie:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member.pid, sig)


def alive(members: list[ProcInfo]) -> list[ProcInfo]:
    """Snapshot members still running (same start time, not a zombie)."""
    survivors = []
    for member in members:
        current = read_proc(member.pid)
        if current and current.start_ticks == member.start_ticks and not current.zombie:
            survivors.append(member)
    return survivors


def kill_tree(pgid: int, members: list[ProcInfo], sig: int = signal.SIGKILL) -> None:
    signal_group(pgid, sig)
    signal_each(members, sig)
