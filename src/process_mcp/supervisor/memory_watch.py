"""``[limits] memory``: a tree over the person's limit is stopped, with the reason said.

Every ``INTERVAL`` seconds (only while a memory limit is set and something runs) each
running tree's memory is read — ``memory.current`` of its cgroup where the memory
controller is on, else the summed RSS of the whole tree (``core/facts/live.py``). A tree
at or over the limit is stopped as ``stop`` does (SIGTERM, grace, SIGKILL) after its
record's ``reason`` is set to ``memory limit 4G exceeded (4.3G)``, so its status, its exit
event and the audit all say why. Where the cgroup v2 memory controller is on, each tree's
``memory.max`` is also set to the limit, so the kernel holds the line between samples;
a tree the kernel's OOM killer ends there is found by its ``memory.events`` and gets the
same reason if the tree still runs at the next sample (a tree whose every process the
kernel killed ends as ``crashed`` by SIGKILL before that).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from process_mcp.core import ProcessManager, ProcessRecord
from process_mcp.core.policy import Policy

logger = logging.getLogger(__name__)
INTERVAL = 2.0  # seconds between two samples


def human(size: int) -> str:
    """``4G``, ``4.3G``, ``512M``: the way the limit is written in the file."""
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale:
            value = size / scale
            return (
                f"{value:.0f}{unit}"
                if value >= 100 or value == int(value)
                else f"{value:.1f}{unit}"
            )
    return f"{size}B"


class MemoryWatch:
    """Samples the trees of ``manager`` against the limit of ``policy_of(record)`` (the
    person's file, tightened by the project's of the record's folder, so it is asked once
    per folder each round: a start among hundreds of running processes costs no more than
    among a few); ``stopped`` is called with each record it stops (for the audit)."""

    def __init__(
        self,
        manager: ProcessManager,
        policy_of: Callable[[ProcessRecord], Policy | None],
        stopped: Callable[[ProcessRecord], None],
        interval: float = INTERVAL,
    ) -> None:
        self.manager = manager
        self._policy_of = policy_of
        self._stopped = stopped
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._capped: dict[str, int] = {}  # job cgroup -> memory.max written
        self._stopping: set[str] = set()

    def wake(self) -> asyncio.Task[None]:
        """Start sampling (a start happened); a no-op while it already runs. Returns the
        sampling task, which ends once no running tree has a memory limit."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._task

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            watched = 0
            policies: dict[str, Policy | None] = {}  # by folder: one look per folder a round
            for record in [record for record in self.manager.records() if record.running]:
                if record.cwd not in policies:
                    policies[record.cwd] = self._policy_of(record)
                policy = policies[record.cwd]
                limit = None if policy is None else policy.limits.memory
                if limit is not None and policy is not None:
                    watched += 1
                    try:
                        self._check(record, limit, policy.limits.memory_text or human(limit))
                    except Exception:  # one tree's facts must not end the watch of all
                        logger.exception("memory limit: checking %s failed", record.id)
            if not watched:
                return  # woken again by the next start
            await asyncio.sleep(self._interval)

    def _check(self, record: ProcessRecord, limit: int, limit_text: str) -> None:
        if record.id in self._stopping:
            return
        self._cap(record, limit)
        facts = self.manager.live_facts(record.id) or {}
        used = int(facts.get("memoryBytes") or 0)  # type: ignore[call-overload]
        if used < limit and not self._oom_killed(record):
            return
        shown = human(used) if used >= limit else "killed by the kernel at the limit"
        record.reason = f"memory limit {limit_text} exceeded ({shown})"
        logger.warning("%s: %s; stopping its tree", record.id, record.reason)
        self._stopping.add(record.id)
        asyncio.get_running_loop().create_task(self._stop(record))

    async def _stop(self, record: ProcessRecord) -> None:
        try:
            await self.manager.stop(record.id)
            self._stopped(record)
        except Exception as exc:  # the tree ended meanwhile, or was removed
            logger.info("memory limit: stopping %s: %r", record.id, exc)
        finally:
            self._stopping.discard(record.id)

    def _jobs(self, record: ProcessRecord) -> list[Path]:
        cgroups = self.manager.ownership.cgroups
        if cgroups is None or "memory" not in cgroups.layout.controllers:
            return []
        return cgroups.jobs(record.id)[-1:]

    def _cap(self, record: ProcessRecord, limit: int) -> None:
        for job in self._jobs(record):
            if self._capped.get(str(job)) == limit:
                continue
            try:
                (job / "memory.max").write_text(str(limit))
                self._capped[str(job)] = limit
            except OSError as exc:
                logger.debug("memory.max of %s: %s", job, exc)
                self._capped[str(job)] = limit  # sampling stays the rule

    def _oom_killed(self, record: ProcessRecord) -> bool:
        for job in self._jobs(record):
            with contextlib.suppress(OSError, ValueError):
                for line in (job / "memory.events").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        return False
