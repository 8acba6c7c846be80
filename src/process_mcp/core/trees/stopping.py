"""The server's side of ending trees: what ``stop``, ``remove`` and shutdown hand to ``ending.end``.

A managed tree is its process group plus what left the group (``setsid`` escapees, marked
daemons, their descendants: see ``ownership.py``), snapshotted *before* the first signal so
that parent links still lead to everything. While the leader's end is not yet published
(reaped and its output captured) the tree is not gone, and the wait for that is the
leader's pidfd event rather than polling, so that 1000 trees stopping together cost no
busy loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from process_mcp.core.trees import ending, proc
from process_mcp.core.trees.ownership import Ownership, Snapshot

KILL_WAIT = 10.0  # only a process stuck in the kernel (state D) outlasts SIGKILL this long


class Tree:
    """A group (``pgid``; None for loose processes) and members found outside it.

    ``look`` finds the members afresh (for ``look_again``); ``ended`` is set once the
    leader's end is published, and the tree counts as alive until then.
    """

    def __init__(
        self,
        pgid: int | None,
        members: list[proc.ProcInfo],
        look: Callable[[], list[proc.ProcInfo]] | None = None,
        ended: asyncio.Event | None = None,
    ) -> None:
        self.pgid = pgid
        self.members = list(members)
        self._look = look
        self._ended = ended

    def signal(self, sig: int) -> None:
        if self.pgid is not None:
            proc.signal_group(self.pgid, sig)
        proc.signal_each(self.members, sig)  # start times checked: a reused pid is spared

    def survivors(self) -> list[int]:
        if self.pgid is not None and self._ended is not None and not self._ended.is_set():
            return [self.pgid]  # the leader's end is not published yet; no /proc read needed
        pids = {info.pid for info in proc.alive(self.members)}
        if self.pgid is not None:
            pids.update(info.pid for info in proc.living_group(self.pgid))
        return sorted(pids)

    def look_again(self) -> None:
        if self._look is None:
            return
        known = {(info.pid, info.start_ticks) for info in self.members}
        self.members += [info for info in self._look() if (info.pid, info.start_ticks) not in known]

    async def pause(self, longest: float) -> None:
        if self._ended is not None and not self._ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), longest)
        else:
            await asyncio.sleep(min(ending.POLL, longest))


async def end_tree(
    ownership: Ownership,
    process_id: str,
    pgid: int,
    ended: asyncio.Event | None,
    grace: float,
    *,
    snapshot: Snapshot | None = None,
    look: Callable[[], Snapshot] | None = None,
) -> list[int]:
    """End the tree of ``process_id`` (leader ``pgid``) by the sequence of ``ending.py``.

    ``grace`` 0 kills at once (a forced stop). ``snapshot`` is the table to find the tree
    in before signalling (default: a fresh one), ``look`` what gives a fresh one afterwards
    (default: ``ownership.snapshot``). Returns the survivors: empty when the whole tree is
    verified gone and, if ``ended`` was given, the leader's end is published. Orphans of
    ours that died are reaped on return. Raises nothing of its own.
    """
    look = look or ownership.snapshot

    def members() -> list[proc.ProcInfo]:
        return look().members(process_id, pgid)

    # With no SIGTERM phase the look before SIGKILL is the only one needed.
    first = (snapshot or ownership.snapshot()).members(process_id, pgid) if grace > 0 else []
    try:
        return await ending.end(Tree(pgid, first, members, ended), grace, KILL_WAIT)
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


async def end_members(ownership: Ownership, members: list[proc.ProcInfo], grace: float) -> None:
    """End processes outside any running tree (strays) by the same sequence; they are gone
    on return unless stuck in the kernel. Raises nothing of its own."""
    if not members:
        return
    try:
        await ending.end(Tree(None, members), grace, KILL_WAIT)
    finally:
        ownership.reap_orphans()


async def end_all(
    ownership: Ownership, trees: list[tuple[str, int, asyncio.Event]], grace: float
) -> None:
    """End every running tree ``(process id, pgid, ended)`` and every stray of ours in
    parallel, under one ``grace``; one /proc scan finds them all. On return all of them are
    gone unless stuck in the kernel. Raises nothing of its own."""
    snapshot = ownership.snapshot()
    look = _shared(ownership)
    await asyncio.gather(
        *(
            end_tree(ownership, process_id, pgid, ended, grace, snapshot=snapshot, look=look)
            for process_id, pgid, ended in trees
        ),
        # escapees of ended processes and adopted orphans, under the same deadline
        end_members(ownership, ownership.strays(), grace),
    )


def _shared(ownership: Ownership) -> Callable[[], Snapshot]:
    """A snapshot source at most ``ending.POLL`` old: trees ending together share one scan."""
    taken: list[tuple[float, Snapshot]] = []

    def snapshot() -> Snapshot:
        now = time.monotonic()
        if not taken or now - taken[0][0] > ending.POLL:
            taken[:] = [(now, ownership.snapshot())]
        return taken[0][1]

    return snapshot
