"""The linux backend: ``/proc``, pidfds, ``PR_SET_CHILD_SUBREAPER``, cgroup v2 (see
``core/trees/containment.py``). Its pieces live where they always did (``procfs.py``,
``subreaper.py``, ``spawn/reaping.py``, ``facts/listening.py``); this gathers them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from process_mcp.core.facts import listening as sockets
from process_mcp.core.spawn import reaping
from process_mcp.core.spawn.reaping import ExitStatus
from process_mcp.core.trees import procfs, subreaper
from process_mcp.core.trees.procinfo import ProcInfo


class LinuxBackend:
    name = "linux"
    table = procfs
    clock = "boot-ticks"
    cgroups = True
    sticky = False  # the subreaper and readable environments find what a group misses

    def spawn_clock(self) -> int:
        return procfs.boot_ticks()

    def start_window(self, pid: int, earliest: int) -> tuple[int, int]:
        # Bracketed by the boot clock instead of read from /proc/<pid>/stat: reading it
        # while the child is still exec'ing costs ~50 µs, 8% of a spawn.
        return earliest, procfs.boot_ticks()

    def watch_exit(self, pid: int, on_exit: Callable[[ExitStatus], None]) -> Callable[[], None]:
        return reaping.watch_exit_pidfd(pid, on_exit)

    def become_subreaper(self) -> bool:
        return subreaper.become_subreaper()

    def orphan_reaper(self, known: Callable[[], set[int]]) -> subreaper.OrphanReaper:
        return subreaper.OrphanReaper(known)

    def adopted(self, known: set[int]) -> list[ProcInfo]:
        return subreaper.adopted(known)

    def fd_cap(self) -> int:
        try:
            with open("/proc/sys/fs/nr_open") as handle:
                return int(handle.read())
        except (OSError, ValueError):
            return 1 << 20

    def listening_table(self) -> dict[int, int] | None:
        return sockets.listening_sockets()

    def ports_of(self, pids: Iterable[int], listening: dict[int, int] | None) -> set[int]:
        listening = sockets.listening_sockets() if listening is None else listening
        ports: set[int] = set()
        for pid in pids:
            ports.update(listening[i] for i in sockets.socket_inodes(pid) or () if i in listening)
        return ports

    def listens_on(self, members: Callable[[], list[int]], port: int, netns_pid: int) -> bool:
        listening = sockets.listening_sockets(netns_pid)
        wanted = {inode for inode, bound in listening.items() if bound == port}
        if not wanted:
            return False
        for pid in members():
            held = sockets.socket_inodes(pid)
            if held is None or held & wanted:
                return True  # a tree member we cannot look inside: the port does listen
        return False

    def sentinel_args(self) -> list[str]:
        return []
