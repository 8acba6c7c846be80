"""The posix backend: POSIX calls and psutil only, for macOS and any POSIX system.

What replaces each Linux mechanism:

* process table: one ``psutil.process_iter`` pass plus ``getpgid``/``getsid``
  (``posix_table.py``, which the sentinel loads too);
* start identity: the leader's exact start time, read once right after the spawn (it is our
  unreaped child, so its pid cannot name another process meanwhile);
* exit detection: ``SIGCHLD`` and ``waitpid(pid, WNOHANG)`` of the watched pids
  (``spawn/reaping.py``), no pidfd;
* no subreaper: orphans go to init (launchd), so a tree's members are also its session and
  *sticky* members (see ``Ownership``), and the sentinel's pipe-EOF kill plus the sweeps
  carry the guarantee;
* no cgroups: containment is ``"group"``;
* ports: psutil's per-process connections, for tree members only (there is no cheap host
  table without root on macOS), so the port watch polls trees instead of waiting for the
  host's socket table to change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

import psutil

from process_mcp.core.platform import posix_table
from process_mcp.core.spawn import reaping
from process_mcp.core.spawn.reaping import ExitStatus
from process_mcp.core.trees.procinfo import ProcInfo

logger = logging.getLogger(__name__)
OPEN_MAX = 10240  # macOS refuses a higher soft limit when the hard one is unlimited


class _NoReaper:
    """Without a subreaper no orphan comes back to us: nothing to reap."""

    def ensure_running(self) -> None:
        return

    def reap_now(self) -> int:
        return 0

    def close(self) -> None:
        return


class PosixBackend:
    name = "posix"
    table = posix_table
    clock = "epoch-us"
    cgroups = False
    sticky = True

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def spawn_clock(self) -> int:
        return 0  # unused: the start is read exactly after the spawn

    def start_window(self, pid: int, earliest: int) -> tuple[int, int]:
        stat = posix_table.read_stat(pid)
        if stat is None:  # cannot happen to an unreaped child; match nothing rather than guess
            return 0, 0
        start = stat[posix_table.START]
        return start, start

    def watch_exit(self, pid: int, on_exit: Callable[[ExitStatus], None]) -> Callable[[], None]:
        return reaping.watch_exit_waitpid(pid, on_exit)

    def become_subreaper(self) -> bool:
        logger.info(
            "platform posix: no subreaper; orphans are found by group, session, mark and "
            "sticky membership, and ended by sweeps and the sentinel"
        )
        return False

    def orphan_reaper(self, known: Callable[[], set[int]]) -> _NoReaper:
        return _NoReaper()

    def adopted(self, known: set[int]) -> list[ProcInfo]:
        return []

    def fd_cap(self) -> int:
        return OPEN_MAX

    def listening_table(self) -> dict[int, int] | None:
        return None

    def ports_of(self, pids: Iterable[int], listening: dict[int, int] | None) -> set[int]:
        ports: set[int] = set()
        for pid in pids:
            ports.update(self._listening(pid) or ())
        return ports

    def listens_on(self, members: Callable[[], list[int]], port: int, netns_pid: int) -> bool:
        for pid in members():
            held = self._listening(pid)
            if held is None or port in held:
                return True  # a tree member we may not look inside: the port does listen
        return False

    def sentinel_args(self) -> list[str]:
        return ["--posix", os.path.dirname(os.path.dirname(os.path.abspath(psutil.__file__)))]

    def _listening(self, pid: int) -> set[int] | None:
        """TCP ports ``pid`` listens on; empty when it is gone, None when the OS refuses
        to say (logged once per kind of failure: never silently no ports)."""
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return set()
        except (psutil.AccessDenied, OSError) as exc:
            self._warn(type(exc).__name__, f"cannot read the sockets of pid {pid}: {exc!r}")
            return None
        return {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN and c.laddr}

    def _warn(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning("port discovery: %s (ports of such processes count as unknown)", message)
