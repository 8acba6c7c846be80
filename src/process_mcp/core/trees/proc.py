"""Finding and signalling every process of a managed tree.

A process group misses descendants that called ``setsid``; a parent/child walk misses
double-forked orphans. Used together (snapshot the descendants *before* signalling, then
signal the group and every snapshot member) they catch both. The host's process table
comes from the OS backend (``core/platform``): on linux straight from ``/proc/<pid>/stat``
(``procfs.py``: one pass gives ppid, pgid and state for every process, where
``psutil.process_iter`` costs several times more), on posix from psutil.
"""

from __future__ import annotations

import contextlib
import os

from process_mcp.core import platform
from process_mcp.core.trees.procinfo import ZOMBIE_STATES, ProcInfo, from_stat

__all__ = ["ZOMBIE_STATES", "ProcInfo", "descendants", "process_table", "read_proc"]


def read_proc(pid: int) -> ProcInfo | None:
    """One process's line of the table; ``None`` when it is gone. Never raises."""
    stat = platform.backend().table.read_stat(pid)
    return None if stat is None else from_stat(pid, stat)


def process_table() -> list[ProcInfo]:
    """Every process that could be read, in one pass over the table."""
    return [from_stat(pid, stat) for pid, stat in platform.backend().table.scan().items()]


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
    """Live members of group ``pgid`` in ``table`` (default: a fresh one)."""
    table = process_table() if table is None else table
    return [info for info in table if info.pgid == pgid and not info.zombie]


def session_members(sid: int, table: list[ProcInfo]) -> list[ProcInfo]:
    """Live members of session ``sid`` in ``table``: a managed leader's session holds
    whatever left its group without calling ``setsid`` (``setpgid``, a shell's job)."""
    return [info for info in table if info.sid == sid and not info.zombie]


def group_known(pgid: int) -> bool:
    """One syscall: whether any process, zombies included, is in group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, only not ours to signal
    return True


def group_exists(pgid: int) -> bool:
    """Whether group ``pgid`` has a live member: the cheap check first, since zombies still
    count for it, then the table."""
    return group_known(pgid) and bool(group_members(pgid))


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to group ``pgid``; a group that is gone, or not ours, is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def signal_each(members: list[ProcInfo], sig: int) -> None:
    """Signal snapshot members that are still the same process (start time checked, so a
    reused pid is spared) and not zombies. Never raises."""
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
