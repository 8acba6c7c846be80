"""What each OS backend provides (``linux.py``, ``posix.py``), documented once.

A backend answers for the whole process: the process table (through ``table``, a module
with ``procfs.py``'s functions, so that the sentinel can load the same file by its path),
how a leader's start is pinned against pid reuse, exit detection, orphan adoption, ports,
cgroups and what the sentinel needs to run the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from process_mcp.core.spawn.reaping import ExitStatus
    from process_mcp.core.trees.procinfo import ProcInfo


class OrphanReaper(Protocol):
    def ensure_running(self) -> None: ...
    def reap_now(self) -> int: ...
    def close(self) -> None: ...


class Backend(Protocol):
    name: str
    table: ModuleType  # read_stat, pids, scan, environ_value, STATE..START, ZOMBIE_STATES
    clock: str  # the unit of start times: "boot-ticks" (linux) or "epoch-us" (posix)
    cgroups: bool  # whether cgroup v2 containment may be tried
    sticky: bool  # whether trees are swept about once a second to keep sticky members

    def spawn_clock(self) -> int:
        """Read right before a spawn: the lower bound of the leader's start time."""

    def start_window(self, pid: int, earliest: int) -> tuple[int, int]:
        """The (earliest, latest) start time of leader ``pid``, just spawned and not yet
        reaped (so its pid cannot name another process), in ``clock`` units."""

    def watch_exit(self, pid: int, on_exit: Callable[[ExitStatus], None]) -> Callable[[], None]:
        """Call ``on_exit`` once our child ``pid`` is reaped; returns a release function.
        Never ``waitpid(-1)``: only that pid's status is taken."""

    def become_subreaper(self) -> bool:
        """Adopt orphans of our descendants, where the OS can; whether it did."""

    def orphan_reaper(self, known: Callable[[], set[int]]) -> OrphanReaper:
        """What reaps adopted orphans that died (a no-op without a subreaper)."""

    def adopted(self, known: set[int]) -> list[ProcInfo]:
        """Orphans re-parented to us that we did not start ([] without a subreaper)."""

    def fd_cap(self) -> int:
        """The highest RLIMIT_NOFILE to ask for when the hard limit is unlimited."""

    def listening_table(self) -> dict[int, int] | None:
        """Socket inode → port of the host's listening TCP sockets, when one cheap read can
        say (it then also tells when anything changed); None when the OS has no such read
        and ports are found per process (:meth:`ports_of` with ``listening`` None)."""

    def ports_of(self, pids: Iterable[int], listening: dict[int, int] | None) -> set[int]:
        """TCP ports that any of ``pids`` listens on. Failures other than a process being
        gone are logged, not swallowed."""

    def listens_on(self, members: Callable[[], list[int]], port: int, netns_pid: int) -> bool:
        """Whether one of ``members()`` holds a socket listening on TCP ``port`` (a member
        we may not look inside counts as listening). ``members`` is called only when needed
        (linux first reads whether anyone listens there); ``netns_pid``: whose network
        namespace."""

    def sentinel_args(self) -> list[str]:
        """Extra arguments for the sentinel program, so it reads the same table."""
