"""cgroup v2 containment: each managed tree in a cgroup of its own. Linux only, stdlib only.

A cgroup holds every process forked inside it, whatever it does to its session, group,
parent or environment, and ``cgroup.kill`` ends them all in one write, including those
forked during the kill. So a tree placed in a cgroup before its first instruction (see
``cgroup_join.py``) cannot escape a stop, nor a supervisor SIGKILL once the sentinel
writes ``jobs/cgroup.kill``.

Layout, under the supervisor's own cgroup (the hierarchy root when running there as root)::

    process-mcp-<name>/          base, tagged with its owner (xattr user.pmcp.owner)
        jobs/                    one write to jobs/cgroup.kill ends every managed tree
            <id>/                one per managed tree

The supervisor and the sentinel are never under ``jobs/``. Controllers are enabled in
base/ and jobs/ only where the parent already offers them (best effort: never touches
the parent's ``subtree_control``); without them CPU time still comes from ``cpu.stat``.

Writes use ``os.open``/``os.write`` so EACCES, EBUSY, EROFS surface as ``OSError``
(a buffered ``open().write()`` can lose them at close).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from process_mcp.core import settings

DISABLE_VAR = settings.CGROUPS
OWNER_XATTR = "user.pmcp.owner"
BASE_PREFIX = "process-mcp-"
_KILL_WAIT = 5.0  # SIGKILL acts at once; only a process stuck in the kernel lasts this long


@dataclass(frozen=True)
class Probe:
    """Whether cgroup containment is available, and where (``parent`` holds our bases)."""

    available: bool
    reason: str  # why not, or where: always shown to the person as is
    parent: Path | None = None
    has_kill: bool = False  # cgroup.kill (kernel 5.14+); else freeze + SIGKILL each


@dataclass(frozen=True)
class Usage:
    cpu_usec: int | None
    memory_bytes: int | None  # memory.current, with the memory controller only
    pids: list[int]


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)


def find_mount(mountinfo: str, cgroup_path: str) -> tuple[Path, str] | None:
    """The cgroup2 mount point that shows ``cgroup_path`` (from /proc/self/cgroup's ``0::``
    line), and that path relative to it. The mount with the longest matching root wins."""
    best: tuple[Path, str] | None = None
    best_root = ""
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields = head.split()
        if not sep or len(fields) < 5 or tail.split()[:1] != ["cgroup2"]:
            continue
        root, point = _unescape(fields[3]), _unescape(fields[4])
        prefix = root.rstrip("/") + "/"
        if cgroup_path != root and not cgroup_path.startswith(prefix):
            continue
        if best is None or len(root) > len(best_root):
            best, best_root = (Path(point), cgroup_path[len(root) :].strip("/")), root
    return best


def own_cgroup() -> Path | None:
    """The directory of the cgroup this process is in, or None without cgroup v2."""
    try:
        with open("/proc/self/cgroup") as handle:
            lines = handle.read().splitlines()
        with open("/proc/self/mountinfo") as handle:
            mountinfo = handle.read()
    except OSError:
        return None
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    if path is None or path.endswith(" (deleted)"):
        return None
    found = find_mount(mountinfo, path)
    return found[0] / found[1] if found else None


def detect(env: dict[str, str] | None = None) -> Probe:
    """Probe for a writable cgroup v2 subtree under our own cgroup (one mkdir + rmdir).

    ``PROCESS_MCP_CGROUPS=0`` turns containment off whatever the machine offers."""
    env = os.environ if env is None else env
    if not settings.env_flag(env, DISABLE_VAR, True):
        return Probe(False, f"turned off by {DISABLE_VAR}={env[DISABLE_VAR]}")
    own = own_cgroup()
    if own is None:
        return Probe(False, "no cgroup v2 hierarchy (cgroup2 not mounted or v1 only)")
    if _read(own / "cgroup.type") in ("threaded", "domain threaded"):
        return Probe(False, f"{own} is a threaded cgroup, which cannot hold process trees")
    probe = own / f"{BASE_PREFIX}{os.getpid()}-probe"
    try:
        os.mkdir(probe)
    except FileExistsError:
        pass
    except OSError as exc:
        return Probe(False, f"cannot create cgroups in {own}: {os.strerror(exc.errno or 0)}")
    try:
        has_kill = (probe / "cgroup.kill").exists()
        has_freeze = (probe / "cgroup.freeze").exists()
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(probe)
    if not os.access(own / "cgroup.procs", os.W_OK):
        return Probe(False, f"cannot move processes under {own}: cgroup.procs not writable")
    if not has_kill and not has_freeze:
        return Probe(False, "kernel has neither cgroup.kill nor cgroup.freeze (before 5.2)")
    return Probe(True, f"cgroup v2 under {own}", parent=own, has_kill=has_kill)


def write(path: Path, value: str) -> None:
    """One unbuffered write, so the kernel's error (EBUSY, EACCES, EINVAL) is raised."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path | str) -> str | None:
    """The file's text, stripped; None if it cannot be read (raw reads: a text-mode
    ``open`` costs twice as much, and cgroup files are read on every list)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode().strip()


def _keyed(path: Path | str, key: str) -> int | None:
    """The value of ``key`` in a flat-keyed file (cgroup.events, cpu.stat)."""
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


def populated(cgroup: Path) -> bool:
    """True while any process is in ``cgroup`` or below (zombies no longer count).
    A cgroup that is gone is not populated."""
    return _keyed(cgroup / "cgroup.events", "populated") == 1


def members(cgroup: Path | str) -> list[int]:
    """Every pid in ``cgroup`` and its descendant cgroups (a job may make sub-cgroups),
    once each (the kernel may list a pid twice if it moved or was reused meanwhile).
    Zombies are not listed."""
    text = _read(f"{cgroup}/cgroup.procs") or ""
    pids = list(dict.fromkeys(int(pid) for pid in text.split()))
    try:
        subdirs = [entry.path for entry in os.scandir(cgroup) if entry.is_dir()]
    except OSError:
        subdirs = []
    for subdir in subdirs:
        pids.extend(members(subdir))
    return pids


def usage(cgroup: Path, *, memory: bool = True) -> Usage:
    """CPU time (cpu.stat, always there), memory (memory.current, only where the memory
    controller is on: pass ``memory=False`` when it is known to be off, which saves a
    failing open per call) and the processes of ``cgroup``, subtree included."""
    value = _read(f"{cgroup}/memory.current") if memory else None
    return Usage(
        cpu_usec=_keyed(f"{cgroup}/cpu.stat", "usage_usec"),
        memory_bytes=int(value) if value else None,
        pids=members(cgroup),
    )


def signal_members(cgroup: Path, sig: int) -> int:
    """Send ``sig`` to every process in ``cgroup`` and below (the TERM of a stop); returns
    how many. Each pid is held by a pidfd opened while listed and signalled only if it is
    still listed afterwards, so a pid that exits and is reused outside the cgroup in between
    is never hit."""
    pidfds: dict[int, int] = {}
    for pid in members(cgroup):
        with contextlib.suppress(OSError):
            pidfds[pid] = os.pidfd_open(pid)
    sent = 0
    try:
        for pid in set(members(cgroup)) & pidfds.keys():
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfds[pid], sig)
                sent += 1
    finally:
        for pidfd in pidfds.values():
            os.close(pidfd)
    return sent


def kill(cgroup: Path, *, use_kill_file: bool = True) -> None:
    """SIGKILL every process in ``cgroup`` and below, including any forked meanwhile.

    ``cgroup.kill`` does it in the kernel; without it (before 5.14) the cgroup is frozen
    first (a frozen task cannot fork, but still takes SIGKILL), each member is killed, and
    it is thawed. Does not wait: see :func:`wait_empty`."""
    if use_kill_file and (cgroup / "cgroup.kill").exists():
        write(cgroup / "cgroup.kill", "1")
        return
    write(cgroup / "cgroup.freeze", "1")
    try:
        _wait_for(cgroup, "frozen", 1, 1.0)
        for pid in members(cgroup):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    finally:
        write(cgroup / "cgroup.freeze", "0")


class _Events:
    """An open ``cgroup.events``: re-read with pread, and waited on with poll(POLLPRI), which
    is how the kernel flags a change (POLLIN/EPOLLIN is always ready on it, so an event loop
    reader would spin)."""

    def __init__(self, cgroup: Path) -> None:
        self.fd = os.open(cgroup / "cgroup.events", os.O_RDONLY | os.O_CLOEXEC)
        self._poller = select.poll()
        self._poller.register(self.fd, select.POLLPRI | select.POLLERR)

    def value(self, key: str) -> int | None:
        for line in os.pread(self.fd, 4096, 0).decode().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
        return None

    def wait(self, timeout: float) -> None:
        self._poller.poll(max(timeout, 0.0) * 1000)

    def close(self) -> None:
        os.close(self.fd)


def _wait_for(cgroup: Path, key: str, value: int, timeout: float) -> bool:
    try:
        events = _Events(cgroup)
    except FileNotFoundError:
        return key == "populated" and value == 0  # a cgroup that is gone is empty
    deadline = time.monotonic() + timeout
    try:
        while events.value(key) != value:  # read, then poll: no change can slip between
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            events.wait(left)
        return True
    finally:
        events.close()


def wait_empty(cgroup: Path, timeout: float) -> bool:
    """Block until nothing is left in ``cgroup`` (``populated 0``); False on timeout.
    Blocks the calling thread: from the event loop use ``cgroup_watch.wait_empty_async``."""
    return _wait_for(cgroup, "populated", 0, timeout)


def kill_and_wait(cgroup: Path, timeout: float = _KILL_WAIT) -> bool:
    """SIGKILL the whole cgroup and wait until it is empty; False if something outlived
    ``timeout`` (a process stuck in uninterruptible sleep)."""
    if not populated(cgroup):
        return True
    kill(cgroup)
    return wait_empty(cgroup, timeout)


def remove(cgroup: Path) -> None:
    """Delete ``cgroup`` and its sub-cgroups, bottom-up. They must be empty (EBUSY otherwise:
    kill and wait first). A cgroup already gone is fine."""
    for directory, _subdirs, _files in os.walk(cgroup, topdown=False):
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(directory)
