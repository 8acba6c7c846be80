"""Which TCP ports each running managed tree listens on, known before anyone asks.

``list`` shows every process's listening ports, and must cost the same for 300 processes
as for 3: no ``/proc`` read per process on its path. So the answer is kept here, refreshed
in the background: about once a second the host's listening sockets are read (two small
files, whatever the number of processes); only when that set of sockets changed — a
server started or stopped listening somewhere — are the managed trees walked (one read of
the process table, then the fd links of their members) to attribute each socket to its
tree, in a worker thread. A port therefore shows up in ``list`` about a second after it
starts listening, and disappears as soon as its socket closes or its process ends.

``tree_listens_on`` asks the same of one tree at once, through the backend (``wait``'s
port condition: a stale server on the port elsewhere does not count).

Where the OS backend has no such host table (posix: macOS lists sockets per process
only), the trees are walked every interval instead, asking each member for its sockets:
the cost grows with the number of tree members, not with the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from process_mcp.core import platform
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.core.trees import proc

logger = logging.getLogger(__name__)
INTERVAL = 1.0


def ports_by_tree(leaders: list[int], listening: dict[int, int] | None) -> dict[int, list[int]]:
    """Leader → ascending TCP ports that its tree (descendants and process group) listens
    on, among ``listening`` (inode → port; None: ask each member, see the module
    docstring); leaders listening on nothing are left out. Reads the process table once
    and each member's sockets; safe in a worker thread."""
    if listening == {} or not leaders:
        return {}
    backend = platform.backend()
    table = proc.process_table()
    found: dict[int, list[int]] = {}
    for leader in leaders:
        members = {leader}
        members.update(info.pid for info in proc.descendants(leader, table) if not info.zombie)
        members.update(info.pid for info in proc.group_members(leader, table))
        ports = backend.ports_of(members, listening)
        if ports:
            found[leader] = sorted(ports)
    return found


class PortWatch:
    """Listening ports of the tracked trees (by leader pid), refreshed in the background
    while any tree is tracked. Use it from one event loop."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._leaders: set[int] = set()
        self._ports: dict[int, list[int]] = {}
        self._sockets: dict[int, int] | None = None  # what the last attribution saw
        self._tasks = BackgroundTasks()
        self._loop: asyncio.Task[None] | None = None
        self.scans = 0  # how often the trees were walked (the costly part)

    def ports(self, leader: int) -> list[int]:
        """The tree's ports as last seen (a new list; empty when none or untracked)."""
        return list(self._ports.get(leader, ()))

    def table(self) -> dict[int, list[int]]:
        """Leader → ports of every tree listening on something, as last seen (read-only:
        for callers that look up many trees at once)."""
        return self._ports

    def track(self, leader: int) -> None:
        """Watch a new tree; starts the background refresh if needed (needs a running loop)."""
        self._leaders.add(leader)
        if self._loop is None or self._loop.done():
            self._loop = self._tasks.spawn(self._run())

    def forget(self, leader: int) -> None:
        """The tree has ended: it listens on nothing any more."""
        self._leaders.discard(leader)
        self._ports.pop(leader, None)

    async def refresh(self) -> None:
        """Read the listening sockets; when they changed since the last attribution, walk
        the tracked trees again (in a worker thread). Raises nothing but cancellation."""
        sockets = platform.backend().listening_table()
        if sockets is not None and sockets == self._sockets:
            return
        leaders = sorted(self._leaders)
        self.scans += 1
        found = await asyncio.to_thread(ports_by_tree, leaders, sockets)
        self._sockets = sockets
        self._ports = {leader: ports for leader, ports in found.items() if leader in self._leaders}

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None

    async def _run(self) -> None:
        while self._leaders:
            began = time.monotonic()
            try:
                await self.refresh()
            except OSError as exc:  # the table unreadable for a moment: next time
                logger.warning("listening ports not refreshed: %s", exc)
            # Where each refresh walks the trees (posix), at most about a fifth of a core.
            await asyncio.sleep(max(self.interval, 4 * (time.monotonic() - began)))


def tree_pids(root: int) -> list[int]:
    """The root, its descendants, and its process group (members that left the tree)."""
    table = proc.process_table()
    pids = {root}
    pids.update(info.pid for info in proc.descendants(root, table) if not info.zombie)
    pids.update(info.pid for info in proc.group_members(root, table))
    return sorted(pids)


def tree_listens_on(root: int, port: int) -> bool:
    """True when a process of ``root``'s tree holds a socket listening on TCP ``port``
    (a member the OS will not let us look inside counts as listening)."""
    return platform.backend().listens_on(lambda: tree_pids(root), port, root)
