"""The supervisor's cgroup subtree: ``base/jobs/<job>``, its owner tag, and the sweep of a
dead owner's subtree. See ``cgroups.py`` for the file operations.

``base`` is named ``process-mcp-<name>`` and created in the probe's parent (the supervisor's
own cgroup). It is tagged with the xattr ``user.pmcp.owner = "<pid>:<start ticks>"`` (the
owner's start time in /proc clock ticks since boot; cgroupfs does not outlive a boot, so
no boot id is needed): a later server that finds a base whose owner is gone or is another
process kills what is left in it and removes it (:func:`sweep`). Without user xattrs
(kernels before 5.7) the pid in the name stands in, and a base is swept only once that pid
no longer exists, never while a reused pid holds it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path

from process_mcp.core.trees import cgroups, proc
from process_mcp.core.trees.cgroups import BASE_PREFIX, OWNER_XATTR, Probe

CONTROLLERS = ("cpu", "memory", "pids")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def owner_tag(pid: int | None = None) -> str:
    """``"<pid>:<start ticks>"`` of ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    info = proc.read_proc(pid)
    return f"{pid}:{info.start_ticks if info else 0}"


def job_name(key: str) -> str:
    """A cgroup directory name for any ``key``: letters, digits, ``_`` and ``-`` are kept,
    anything else becomes ``_xx`` hex, so no name can clash with an interface file (those
    all contain a dot), ``.``/``..`` or a path."""
    if not key:
        raise ValueError("a job cgroup needs a non-empty key")
    return _UNSAFE.sub(lambda m: "".join(f"_{b:02x}" for b in m[0].encode()), key)


class Layout:
    """``base/`` and ``base/jobs/``; the supervisor and the sentinel are never below jobs/."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.jobs = base / "jobs"
        self.controllers: tuple[str, ...] = ()  # enabled for each job (cpu, memory, pids)

    @classmethod
    def create(cls, probe: Probe, name: str) -> Layout:
        """Make (or take back, if already ours) ``process-mcp-<name>/jobs`` under the probe's
        parent, tag its owner, and enable the controllers the parent offers.

        Raises ``OSError`` naming the directory if it cannot be made (the caller falls
        back to process-group containment)."""
        if not probe.available or probe.parent is None:
            raise ValueError(f"cgroups are not available here: {probe.reason}")
        layout = cls(probe.parent / f"{BASE_PREFIX}{job_name(name)}")
        try:
            os.mkdir(layout.base)
        except FileExistsError:
            if _owner(layout.base) not in (None, owner_tag()):
                raise OSError(
                    errno.EEXIST, f"cgroup {layout.base} belongs to another server"
                ) from None
        with contextlib.suppress(OSError):
            os.setxattr(layout.base, OWNER_XATTR, owner_tag().encode())
        with contextlib.suppress(FileExistsError):
            os.mkdir(layout.jobs)
        layout.controllers = _enable(layout.base, layout.jobs)
        return layout

    def job(self, key: str) -> Path:
        return self.jobs / job_name(key)

    def create_job(self, key: str) -> Path:
        """A fresh, empty cgroup for one managed tree. A leftover of the same key that is
        empty is reused; one that still holds processes is an error (stop it first)."""
        path = self.job(key)
        try:
            os.mkdir(path)
        except FileExistsError:
            if cgroups.populated(path):
                raise OSError(
                    errno.EBUSY, f"cgroup {path} still holds processes; stop them first"
                ) from None
        return path

    def remove_job(self, key: str, timeout: float = 5.0) -> bool:
        """Kill whatever is left in the job's cgroup, wait, delete it. False (and the
        directory kept) if something outlived ``timeout``."""
        path = self.job(key)
        if not cgroups.kill_and_wait(path, timeout):
            return False
        cgroups.remove(path)
        return True

    def usage(self, key: str) -> cgroups.Usage:
        """Processes, CPU time and (with the memory controller) memory of one job."""
        return cgroups.usage(self.job(key), memory="memory" in self.controllers)

    def kill_all(self) -> None:
        """SIGKILL every managed tree at once (what the sentinel does on the server's death)."""
        cgroups.kill(self.jobs)

    def close(self, timeout: float = 5.0) -> bool:
        """Kill every job, wait, and delete the whole subtree; False if something survived
        ``timeout`` (the directories are kept for the next server's sweep)."""
        if not cgroups.kill_and_wait(self.jobs, timeout):
            return False
        cgroups.remove(self.base)
        return True


def _enable(base: Path, jobs: Path) -> tuple[str, ...]:
    """Turn on cpu/memory/pids for jobs/<job> where base's parent offers them. base/ and
    jobs/ hold no process, so the no-internal-process rule cannot refuse it (EBUSY)."""
    offered = set((_read(base / "cgroup.controllers") or "").split())
    enabled: list[str] = []
    for name in CONTROLLERS:
        if name not in offered:
            continue
        try:
            cgroups.write(base / "cgroup.subtree_control", f"+{name}")
            cgroups.write(jobs / "cgroup.subtree_control", f"+{name}")
        except OSError:
            continue
        enabled.append(name)
    return tuple(enabled)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _owner(base: Path) -> str | None:
    try:
        return os.getxattr(base, OWNER_XATTR).decode()
    except OSError:
        return None


def _owner_alive(base: Path) -> bool:
    tag = _owner(base)
    if tag is not None:
        pid, _, _ticks = tag.partition(":")
        return pid.isdigit() and owner_tag(int(pid)) == tag
    # No xattr: the pid in the name (process-mcp-<pid>-<random>); keep it while that pid
    # exists, whoever it is now.
    digits = base.name[len(BASE_PREFIX) :].split("-")[0]
    return not digits.isdigit() or proc.read_proc(int(digits)) is not None


def sweep(parent: Path, timeout: float = 5.0) -> list[Path]:
    """Kill and delete every ``process-mcp-*`` subtree in ``parent`` whose owner is dead
    (a server and its sentinel both SIGKILLed). Returns the bases removed; a base whose
    processes outlive ``timeout`` is kept for the next sweep."""
    removed: list[Path] = []
    try:
        entries = [Path(e.path) for e in os.scandir(parent) if e.is_dir()]
    except OSError:
        return removed
    for base in entries:
        if not base.name.startswith(BASE_PREFIX) or _owner_alive(base):
            continue
        if cgroups.kill_and_wait(base, timeout):
            with contextlib.suppress(OSError):
                cgroups.remove(base)
                removed.append(base)
    return removed
