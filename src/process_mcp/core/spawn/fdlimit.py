"""File-descriptor budget: refuse a start cleanly instead of failing halfway through it.

Each running managed process keeps ``PER_PROCESS`` descriptors in the server (the read ends
of its stdout and stderr pipes, and its pidfd). While it is being spawned, ``Popen`` holds
``SPAWN_TRANSIENT`` more for a moment (/dev/null, both ends of two pipes, its exec-error
pipe). ``RESERVE`` keeps room for the server's own work (log segment writes, client I/O,
the sentinel, reading /proc). Before a start we check that that many descriptors can
really be allocated — by allocating them (``dup`` calls), which is exact whatever else the
process holds, where counting ``/proc/self/fd`` costs O(open fds). To keep that off most
spawns, a probe asks for up to ``PROBE_STARTS`` starts' worth and the budget then spends
that credit, ``PER_PROCESS`` per start, re-probing when it runs out; descriptors that the
rest of the server opens meanwhile come out of ``RESERVE``. Near the limit every start probes.

Children inherit the raised soft limit: Python cannot restore it between fork and exec
without ``preexec_fn``, which would make every spawn a full fork.
"""

from __future__ import annotations

import errno
import logging
import os
import resource

from process_mcp.core.errors import StartFailed

logger = logging.getLogger(__name__)
PER_PROCESS = 3
SPAWN_TRANSIENT = 7
RESERVE = 16
NEEDED = SPAWN_TRANSIENT + PER_PROCESS + RESERVE
PROBE_STARTS = 32


def raise_soft_limit(cap: int = 1 << 20) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one, or to ``cap`` when the hard one is
    unlimited (the OS backend's ceiling: fs.nr_open on Linux). Returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = cap if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            logger.warning("could not raise RLIMIT_NOFILE from %s to %s: %s", soft, target, exc)
    return soft, hard


class FdBudget:
    """Refuses a start (StartFailed, nothing spawned) when its descriptors cannot be allocated."""

    def __init__(self) -> None:
        self._credit = 0  # starts that fit without probing again

    def check(self, command: str) -> None:
        if self._credit > 0:
            self._credit -= 1
            return
        free, error = probe(NEEDED + PER_PROCESS * PROBE_STARTS)
        if free < NEEDED:
            raise StartFailed(describe_shortage(command, error, free))
        self._credit = (free - NEEDED) // PER_PROCESS


def probe(wanted: int) -> tuple[int, int | None]:
    """How many descriptors (up to ``wanted``) can be allocated now, and the errno that stopped
    the count (None when ``wanted`` were allocated)."""
    held: list[int] = []
    error = None
    try:
        held.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        while len(held) < wanted:
            held.append(os.dup(held[0]))
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            raise
        error = exc.errno
    finally:
        for fd in held:
            os.close(fd)
    return len(held), error


def describe_shortage(command: str, error: int | None, free: int | None = None) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = NEEDED
    if error == errno.ENFILE:
        return (
            f"cannot start {command!r}: the system-wide open-file table is full "
            f"({os.strerror(errno.ENFILE)}, fs.file-max); stop processes you no longer need "
            "or raise fs.file-max"
        )
    left = f"only {free} are free" if free is not None else "too few are free"
    return (
        f"cannot start {command!r}: the server is at its open-file limit RLIMIT_NOFILE "
        f"(soft {soft}, hard {hard}): a start needs {needed} free descriptors and {left} "
        f"(each running process keeps {PER_PROCESS}). Stop processes you no longer need, or "
        "restart the server with a higher limit (ulimit -n, or LimitNOFILE= under systemd)"
    )
