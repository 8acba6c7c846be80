"""The server as a child subreaper: orphans of managed trees come back to it, and it reaps them.

Without ``PR_SET_CHILD_SUBREAPER`` a double-forked daemon re-parents to init and no parent
link leads to it any more. With it, the orphan re-parents to the server, where ``stop`` and
shutdown find it (by its ownership mark, see ``ownership.py``) — and where it stays a zombie
once dead until the server reaps it.

Reaping never uses ``waitpid(-1)``: that would steal the exit status of managed leaders,
whose pidfd watchers must get it. Only a specific zombie pid is waited for, and only when
it is (a) not a known child (managed leaders, the sentinel) and (b) in another session
than the server: managed processes and their descendants all live in sessions of their
own, while a helper some other code of the server might spawn (``subprocess.run``) stays
in the server's session and keeps its status for its own ``wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
from collections.abc import Callable

from process_mcp.core.trees import procfs
from process_mcp.core.trees.procinfo import ProcInfo, from_stat

logger = logging.getLogger(__name__)
PR_SET_CHILD_SUBREAPER = 36
REAP_INTERVAL = 0.5


def become_subreaper() -> bool:
    """Make this process the reaper of orphaned descendants. False when the kernel refused."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
            return True
        error = ctypes.get_errno()
    except (OSError, AttributeError) as exc:
        error = getattr(exc, "errno", 0) or 0
    logger.warning(
        "prctl(PR_SET_CHILD_SUBREAPER) failed (%s): double-forked daemons re-parent to init; "
        "they are still found by their ownership mark",
        os.strerror(error) if error else "unavailable",
    )
    return False


def children() -> list[int]:
    """Our direct children, from every thread's ``children`` file (an orphan may be given to
    any thread of the subreaper); a /proc scan where that file does not exist."""
    me = os.getpid()
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{me}/task")
        for task in tasks:
            with open(f"/proc/{me}/task/{task}/children", "rb") as handle:
                found.extend(int(pid) for pid in handle.read().split())
    except OSError:
        return [pid for pid, stat in procfs.scan().items() if stat[1] == me]
    return found


def adopted(known: set[int]) -> list[ProcInfo]:
    """Children that we did not start: orphans re-parented to us (see module docstring)."""
    own_session = os.getsid(0)
    found = []
    for pid in children():
        if pid in known:
            continue
        stat = procfs.read_stat(pid)  # linux only: the table without the seam
        info = None if stat is None else from_stat(pid, stat)
        if info is not None and info.sid != own_session:
            found.append(info)
    return found


def reap_adopted(known: set[int]) -> int:
    """Reap the adopted children that have died. Returns how many."""
    reaped = 0
    for info in adopted(known):
        if info.zombie:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(info.pid, os.WNOHANG)[0]:
                    reaped += 1
    return reaped


class OrphanReaper:
    """Reaps dead adopted orphans every ``REAP_INTERVAL`` seconds while processes run.

    A timer rather than a SIGCHLD handler: the handler is process-wide and would fight any
    other code (or a second manager) that installs one; half a second of zombie is harmless.
    """

    def __init__(self, known: Callable[[], set[int]]) -> None:
        self._known = known
        self._timer: asyncio.TimerHandle | None = None

    def ensure_running(self) -> None:
        """Start the timer (idempotent); it reaps until :meth:`close`."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(REAP_INTERVAL, self._tick)

    def reap_now(self) -> int:
        """Reap dead adopted orphans now; returns how many."""
        return reap_adopted(self._known())

    def close(self) -> None:
        """Stop the timer and reap once more (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.reap_now()

    def _tick(self) -> None:
        self.reap_now()
        self._timer = asyncio.get_running_loop().call_later(REAP_INTERVAL, self._tick)
