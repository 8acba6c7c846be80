"""Which containment holds the managed trees: a cgroup each, or process groups.

Where cgroup v2 can be written (``cgroups.detect``), every run gets its own cgroup under
``process-mcp-<instance>/jobs/`` before its command runs (``cgroup_join.wrap``): a tree's
members are its cgroups' ``cgroup.procs``, a stop ends with ``cgroup.kill``, and the
sentinel kills ``jobs/`` if the server dies. Nothing forked inside can leave (setsid,
double fork, ``env -i``, pid hopping). Elsewhere, or with ``PROCESS_MCP_CGROUPS=0``, this
is off and the group design of ``ownership.py`` works alone, unchanged. Anything that
fails while setting up makes the server fall back to groups (logged once), never fail.

A process id has one cgroup per run (``<id>``, then ``<id>.1``, ``<id>.2`` after restarts):
what an ended run left (a daemon) is still part of the id's tree until it is gone, and a
new run never has to wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from pathlib import Path

from process_mcp.core.trees import (
    cgroup_join,
    cgroup_layout,
    cgroup_watch,
    cgroups,
    ending,
    proc,
)

logger = logging.getLogger(__name__)

CGROUP = "cgroup"
GROUP = "group"


class Cgroups:
    """The instance's cgroup subtree, its launcher, and the cgroups of each process id."""

    def __init__(self, probe: cgroups.Probe, instance_name: str, bin_dir: Path) -> None:
        """Nothing is created yet: the subtree is made at the first start (see ``place``), so
        a server killed before it ever started anything (no sentinel yet) leaves none."""
        assert probe.parent is not None
        self._probe, self._name = probe, instance_name
        self.layout = cgroup_layout.Layout(
            probe.parent / f"{cgroups.BASE_PREFIX}{cgroup_layout.job_name(instance_name)}"
        )
        self._created = False
        self._helper: Path | None = None  # the compiled launcher, once built
        self._jobs: dict[str, list[Path]] = {}
        self._runs: dict[str, int] = {}
        # Compiling takes up to ~0.6 s: never on the start path; /bin/sh serves until then.
        threading.Thread(
            target=self._build, args=(bin_dir,), name="cgroup-launcher", daemon=True
        ).start()

    @classmethod
    def create(cls, instance_name: str, state_dir: Path) -> Cgroups | None:
        """The instance's cgroups, or None (groups only) where they cannot be written.

        Sweeps first the cgroup subtrees of dead instances (server and sentinel both gone):
        what they left is killed and removed. Never raises."""
        probe = cgroups.detect()
        if not probe.available or probe.parent is None:
            logger.info("containment by process groups: %s", probe.reason)
            return None
        cgroup_layout.sweep(probe.parent)
        return cls(probe, instance_name, _launcher_dir(state_dir))

    def _build(self, bin_dir: Path) -> None:
        try:
            self._helper = cgroup_join.build_helper(bin_dir)
        except OSError as exc:  # the /bin/sh launcher stays
            logger.warning("cannot build the cgroup launcher in %s: %s", bin_dir, exc)

    def subtree(self) -> cgroup_layout.Layout:
        """The instance's ``base/jobs/``, made on the first call. Raises OSError naming it."""
        if not self._created:
            self.layout = cgroup_layout.Layout.create(self._probe, self._name)
            self._created = True
        return self.layout

    def place(self, process_id: str, argv: list[str]) -> list[str]:
        """A fresh cgroup for the next run of ``process_id``, and ``argv`` wrapped to join it
        before it runs (same pid). Raises OSError naming the cgroup if it cannot be made."""
        layout = self.subtree()
        self.discard_empty(process_id, current=True)  # the previous runs' emptied cgroups
        run = self._runs.get(process_id, -1) + 1
        job = layout.create_job(process_id if run == 0 else f"{process_id}.{run}")
        self._runs[process_id] = run
        self._jobs.setdefault(process_id, []).append(job)
        return cgroup_join.wrap(argv, job, helper=self._helper)

    def jobs(self, process_id: str) -> list[Path]:
        """The cgroups of ``process_id`` not yet removed (current run last)."""
        return list(self._jobs.get(process_id, ()))

    def members(self, process_id: str) -> list[int]:
        """Live pids of every run of ``process_id`` (cgroup.procs, no /proc scan), sorted."""
        return sorted({pid for job in self.jobs(process_id) for pid in cgroups.members(job)})

    def discard_empty(self, process_id: str | None = None, *, current: bool = False) -> None:
        """Delete the cgroups (of ``process_id``, or all) that hold no process any more;
        the current run's is kept unless ``current`` (its command may still be joining it)."""
        ids = [process_id] if process_id is not None else list(self._jobs)
        for key in ids:
            kept = []
            jobs = self._jobs.get(key, [])
            for job in jobs:
                if (job is jobs[-1] and not current) or cgroups.populated(job):
                    kept.append(job)
                    continue
                with contextlib.suppress(OSError):
                    cgroups.remove(job)
            if kept:
                self._jobs[key] = kept
            else:
                self._jobs.pop(key, None)

    def forget(self, process_id: str) -> None:
        """``process_id`` was removed: its (empty) cgroups go, its run count restarts."""
        self.discard_empty(process_id, current=True)
        self._runs.pop(process_id, None)

    def close(self) -> bool:
        """Kill what is left in jobs/, wait, delete the subtree; False if something
        survived (then the next server's sweep retries). Never raises."""
        try:
            return self.layout.close()
        except OSError as exc:
            logger.warning("cannot remove cgroup %s: %s", self.layout.base, exc)
            return False


def _launcher_dir(state_dir: Path) -> Path:
    """Where the compiled launcher is kept: the user's cache (built once per machine and
    source version, whatever the state directory), else the state directory."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    directory = Path(cache) / "process-mcp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return state_dir / "bin"
    return directory if os.access(directory, os.W_OK) else state_dir / "bin"


class CgroupTrees:
    """A target of ``ending.py``: whole cgroups, plus leaders whose end is not yet published.

    SIGTERM/SIGCONT go to each member (by pidfd, so a reused pid is spared); SIGKILL is one
    write to each ``cgroup.kill``, which also catches what forks meanwhile. Each signal also
    goes to the leaders' process groups: a leader stopped right after its start may still
    be in its launcher, which joins the cgroup before it runs anything (so before it forks).
    Survivors are the cgroups' members; the wait between looks is the cgroup's
    ``populated 0`` event."""

    def __init__(self, cgroup_dirs: list[Path], groups: dict[int, asyncio.Event | None]) -> None:
        self._dirs = cgroup_dirs
        self._groups = list(groups)  # a leader still in its launcher is not yet in its cgroup
        self._unpublished = {pgid: ended for pgid, ended in groups.items() if ended is not None}

    def signal(self, sig: int) -> None:
        for pgid in self._groups:
            proc.signal_group(pgid, sig)
        for directory in self._dirs:
            with contextlib.suppress(OSError):
                if sig == signal.SIGKILL:
                    cgroups.kill(directory)
                else:
                    cgroups.signal_members(directory, sig)

    def survivors(self) -> list[int]:
        """The cgroups' members, and the leaders whose end is not yet published."""
        for pgid in [pgid for pgid, ended in self._unpublished.items() if ended.is_set()]:
            del self._unpublished[pgid]
        pids = {pid for directory in self._dirs for pid in cgroups.members(directory)}
        return sorted(pids | self._unpublished.keys())

    def look_again(self) -> None:
        """Nothing to do: a cgroup holds everything forked in it."""

    async def pause(self, longest: float) -> None:
        busy = [directory for directory in self._dirs if cgroups.populated(directory)]
        waits = [cgroup_watch.wait_empty_async(directory, longest) for directory in busy]
        waits += [ended.wait() for ended in self._unpublished.values()]
        if not waits:
            await asyncio.sleep(min(ending.POLL, longest))
            return
        tasks = [asyncio.ensure_future(wait) for wait in waits]
        _done, pending = await asyncio.wait(tasks, timeout=longest)
        for task in pending:
            task.cancel()
