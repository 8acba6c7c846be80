"""The server's side of ending trees: what ``stop``, ``remove`` and shutdown hand to ``ending.end``.

A managed tree is its process group plus what left the group (``setsid`` escapees, marked
daemons, their descendants: see ``ownership.py``), snapshotted *before* the first signal so
that parent links still lead to everything. While a leader's end is not yet published
(reaped and its output captured) its tree is not gone; the wait for that is the leader's
pidfd event, not polling. Shutdown ends every tree as one target: one scan finds them all,
one look before SIGKILL serves them all, and 1000 trees cost no busy loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from process_mcp.core.trees import ending, proc
from process_mcp.core.trees.containment import CgroupTrees
from process_mcp.core.trees.ownership import Ownership

KILL_WAIT = 10.0  # only a process stuck in the kernel (state D) outlasts SIGKILL this long

Members = list[proc.ProcInfo]


class Trees:
    """A target of ``ending.py``: process groups, and members found outside them.

    ``groups`` maps each pgid to the event set once its leader's end is published (None: not
    watched, e.g. it has already ended). ``look`` finds the members afresh for ``look_again``.
    """

    def __init__(
        self,
        groups: dict[int, asyncio.Event | None],
        members: Members,
        look: Callable[[], Members] | None = None,
    ) -> None:
        self._groups = list(groups)
        self._unpublished = deque((g, ended) for g, ended in groups.items() if ended is not None)
        self._members: dict[tuple[int, int], proc.ProcInfo] = {}
        self._add(members)
        self._look = look

    def signal(self, sig: int) -> None:
        for pgid in self._groups:
            proc.signal_group(pgid, sig)
        proc.signal_each(list(self._members.values()), sig)  # a reused pid is spared

    def survivors(self) -> list[int]:
        while self._unpublished and self._unpublished[0][1].is_set():
            self._unpublished.popleft()
        if self._unpublished:  # leaders still ending: no /proc read needed to know
            return sorted(pgid for pgid, ended in self._unpublished if not ended.is_set())
        pids = {info.pid for info in proc.alive(list(self._members.values()))}
        table = None  # read once for all the groups that remain
        for pgid in self._groups:
            if proc.group_known(pgid):
                table = table if table is not None else proc.process_table()
                pids.update(info.pid for info in proc.group_members(pgid, table))
        return sorted(pids)

    def look_again(self) -> bool:
        return self._look is not None and self._add(self._look())

    async def pause(self, longest: float) -> None:
        if self._unpublished:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._unpublished[0][1].wait(), longest)
        else:
            await asyncio.sleep(min(ending.POLL, longest))

    def _add(self, members: Members) -> bool:
        """Add ``members`` (live, as found); whether any of them was new."""
        added = False
        for info in members:
            key = (info.pid, info.start_ticks)
            if key not in self._members:
                self._members[key] = info
                added = True
        return added


async def end_tree(
    ownership: Ownership, process_id: str, pgid: int, ended: asyncio.Event | None, grace: float
) -> list[int]:
    """End the tree of ``process_id`` (leader ``pgid``) by the sequence of ``ending.py``.

    ``grace`` 0 kills at once (a forced stop, or leftovers). Returns the survivors: empty
    when the whole tree (escapees included) is verified gone by a look after the signals
    and, if ``ended`` was given, the leader's end is published. Orphans of ours that died
    are reaped on return. Raises nothing of its own.
    """

    if ownership.cgroups is not None:
        return await _end_in_cgroups(ownership, process_id, {pgid: ended}, grace)

    def look() -> Members:
        return ownership.snapshot().members(process_id, pgid)

    # With no SIGTERM phase, the look before SIGKILL is the only one needed.
    first = look() if grace > 0 else []
    try:
        return await ending.end(Trees({pgid: ended}, first, look), grace, KILL_WAIT)
    finally:
        ownership.reap_orphans()


async def end_leftovers(ownership: Ownership, process_id: str, pid: int) -> list[int]:
    """SIGKILL what still runs of the tree of ``process_id`` after its leader ``pid`` ended.

    Returns the survivors (empty: verified gone, and the sentinel told to forget the tree).
    Raises nothing of its own.
    """
    survivors = await end_tree(ownership, process_id, pid, None, 0)
    if not survivors:
        ownership.release(pid)
    return survivors


async def end_all(
    ownership: Ownership, trees: dict[str, tuple[int, asyncio.Event]], grace: float
) -> list[int]:
    """End every running tree (process id → its pgid and end event) and every stray of
    ours (``Ownership.strays``) as one target, under one ``grace``.

    Returns the survivors: empty when all of them are verified gone. Raises nothing of its
    own.
    """

    groups: dict[int, asyncio.Event | None] = {pgid: ended for pgid, ended in trees.values()}
    if ownership.cgroups is not None:
        return await _end_in_cgroups(ownership, None, groups, grace)

    def look() -> Members:
        snapshot = ownership.snapshot()
        found = ownership.strays(snapshot)
        for process_id, (pgid, _) in trees.items():
            found += snapshot.members(process_id, pgid)
        return found

    first = look() if grace > 0 else []
    try:
        return await ending.end(Trees(groups, first, look), grace, KILL_WAIT)
    finally:
        ownership.reap_orphans()


async def _end_in_cgroups(
    ownership: Ownership,
    process_id: str | None,
    groups: dict[int, asyncio.Event | None],
    grace: float,
) -> list[int]:
    """The same sequence where each run has a cgroup: the target is the cgroups
    of ``process_id`` (None: all of jobs/, i.e. every managed tree), so nothing forked in
    them is missed and SIGKILL is ``cgroup.kill``. Emptied cgroups are deleted on return."""
    cgroups = ownership.cgroups
    assert cgroups is not None
    dirs = [cgroups.layout.jobs] if process_id is None else cgroups.jobs(process_id)
    try:
        return await ending.end(CgroupTrees(dirs, groups), grace, KILL_WAIT)
    finally:
        cgroups.discard_empty(process_id)
        ownership.reap_orphans()
