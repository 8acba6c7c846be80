"""Owning whole process trees, beyond what a process group gives.

Four mechanisms, each covering what the previous ones miss:

1. **Ownership mark.** Each managed process's environment carries
   ``PROCESS_MCP_OWNER_<server token>=<process id>`` (the trick of Jenkins'
   ProcessTreeKiller). Every descendant inherits it — ``setsid`` escapees and double-forked
   daemons included — so a scan of ``/proc/*/environ`` finds a tree even when neither group
   nor parent links lead to it any more. The variable *name* holds the token, so a
   process-mcp running under another one marks its children with its own token *and* keeps
   the outer one: both servers find them.
2. **Subreaper** (``subreaper.py``, linux backend): orphans re-parent to the server, which
   reaps them. Where there is none (posix backend: macOS sends orphans to launchd, and
   hides the environment, so the mark too, of restricted binaries), a tree is also its
   leader's *session* and its **sticky** members: every process once seen in the tree,
   remembered by pid and start time (so a reused pid is never taken) until it dies; a
   sweep about once a second keeps that memory fresh and tells the sentinel.
3. **Sentinel** (``sentinel.py``): ends every tree when the server dies, even by SIGKILL.
4. **Instance ledger** (``instances.py``): if server and sentinel die together, the next
   server ends what they left.

Where cgroup v2 is writable, a cgroup per run (``containment.py``) comes first: its members
are the tree, whatever they did to their group, session, parent or environment, and stop,
shutdown and the sentinel end it by ``cgroup.kill``; the mechanisms above then only serve
the sentinel's and the ledger's sweeps. Elsewhere they hold alone, unchanged.

Plus the descriptor budget (``fdlimit.py``). All of this costs a spawn no extra fork or
exec: on the start path a descriptor probe (amortised), one environment entry and two
reads of the boot clock; the ledger entry and the line to the sentinel follow in a batch 20 ms
later (one write each per batch). A tree started in those 20 ms is still found by its mark.
The leader's start time is not read from ``/proc/<pid>/stat``
(reading it while the child is still exec'ing costs ~50 µs, 8% of a spawn) but bracketed
by the boot clock read before and after the spawn, in the same clock ticks: the child
holds its pid from before ``Popen`` returns until we reap it, so no other process with that
pid can have started inside that window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from process_mcp.core import platform
from process_mcp.core.spawn import fdlimit
from process_mcp.core.trees import instances, proc, sentinel_program
from process_mcp.core.trees.containment import CGROUP, GROUP, Cgroups
from process_mcp.core.trees.sentinel import BATCH_DELAY, Sentinel

logger = logging.getLogger(__name__)
_SENTINEL_GRACE_CAP = 2.0  # the sentinel must be done within 5 s of a server SIGKILL
STICKY_INTERVAL = 1.0  # seconds between sweeps that refresh sticky members (posix)

Sticky = dict[str, dict[int, int]]  # process id -> pid -> start of each member once seen


@dataclass(frozen=True)
class Snapshot:
    """One read of the process table plus the ownership marks, shared by all trees."""

    table: list[proc.ProcInfo]
    marked: dict[str, list[proc.ProcInfo]]  # process id -> live processes carrying its mark
    sticky: Sticky | None = field(default=None)  # None: no sticky membership (linux)

    def members(self, process_id: str, pgid: int) -> list[proc.ProcInfo]:
        """Everything of one tree but its leader: its group and session, its marked and
        sticky processes, and their descendants, as of this snapshot (none of them a
        zombie). With sticky membership, what is found is remembered for the next look."""
        roots = [
            *proc.group_members(pgid, self.table),
            *proc.session_members(pgid, self.table),
            *self.marked.get(process_id, []),
            *self._still_sticky(process_id),
        ]
        found = self._with_descendants(roots, pgid)
        if self.sticky is not None:
            self.sticky[process_id] = {info.pid: info.start_ticks for info in found}
        return found

    def all_marked(self) -> list[proc.ProcInfo]:
        """Every live process carrying one of our marks or remembered as a sticky member of
        a tree, with its descendants."""
        roots = [info for infos in self.marked.values() for info in infos]
        for process_id in list(self.sticky or ()):
            roots += self._still_sticky(process_id)
        return self._with_descendants(roots)

    def _still_sticky(self, process_id: str) -> list[proc.ProcInfo]:
        """The remembered members of ``process_id`` still in the table as the same process."""
        remembered = (self.sticky or {}).get(process_id)
        if not remembered:
            return []
        by_pid = self._by_pid()
        return [
            info
            for pid, start in list(remembered.items())
            if (info := by_pid.get(pid)) is not None and info.start_ticks == start
        ]

    def _by_pid(self) -> dict[int, proc.ProcInfo]:
        cached = self.__dict__.get("_index")
        if cached is None:
            cached = {info.pid: info for info in self.table}
            object.__setattr__(self, "_index", cached)
        return cached

    def _with_descendants(
        self, roots: list[proc.ProcInfo], leader: int | None = None
    ) -> list[proc.ProcInfo]:
        found: dict[int, proc.ProcInfo] = {}
        for info in roots:
            found.setdefault(info.pid, info)
        for pid in [*list(found), *([leader] if leader is not None else [])]:
            for child in proc.descendants(pid, self.table):
                found.setdefault(child.pid, child)
        if leader is not None:
            found.pop(leader, None)  # the leader is watched by its pidfd, as before
        return [info for info in found.values() if not info.zombie]


class Ownership:
    """The server-wide part of tree ownership; the manager calls it around each spawn."""

    def __init__(self, instance_dir: Path, state_dir: Path, stop_grace: float) -> None:
        """Become subreaper, raise the fd limit, end what dead servers left, open the ledger.

        The sentinel starts with the first :meth:`adopt`. Raises OSError when the instance
        directory cannot be written.
        """
        self.os = platform.backend()
        self.token = secrets.token_hex(8)
        self.mark_name = sentinel_program.owner_var(self.token)
        self._needle = f"{self.mark_name}=".encode()
        self.os.become_subreaper()
        self.nofile = fdlimit.raise_soft_limit(self.os.fd_cap())
        self._fd_budget = fdlimit.FdBudget()
        instances.end_leftovers(state_dir, instance_dir, grace=min(stop_grace, 1.0))
        self.ledger = instances.InstanceLedger(instance_dir, self.token)
        # A cgroup per run where the kernel lets us; None: groups only.
        self.cgroups = Cgroups.create(instance_dir.name, state_dir) if self.os.cgroups else None
        self.sentinel = Sentinel(
            self.token,
            instance_dir,
            min(stop_grace, _SENTINEL_GRACE_CAP),
            cgroup=self.cgroups.layout.base if self.cgroups else None,
            extra_args=self.os.sentinel_args(),
        )
        self._leaders: set[int] = set()
        self._pending: dict[int, tuple[str, tuple[int, int], str, list[str]]] = {}
        self._flush_timer: asyncio.TimerHandle | None = None
        self.reaper = self.os.orphan_reaper(self._known_children)
        self._sticky: Sticky | None = {} if self.os.sticky else None
        self._trees: dict[int, str] = {}  # leader pid -> process id, while its tree may live
        self._told: set[tuple[int, int]] = set()  # loose members the sentinel knows
        self._sweeper: asyncio.Task[None] | None = None
        # posix: each process's mark, read once (see _cached_mark); None: read every time.
        self._marks: dict[tuple[int, int], str | None] | None = {} if self.os.sticky else None
        logger.info("platform %s, containment %s", self.os.name, self.containment)

    def before_spawn(self, command: str) -> int:
        """The lower bound of the next leader's start time (clock ticks since boot).

        Raises StartFailed when the start would run the server out of descriptors.
        """
        self._fd_budget.check(command)
        return self.os.spawn_clock()

    def mark(self, env: dict[str, str], process_id: str) -> None:
        """Put ``process_id``'s ownership mark into ``env`` (the child's environment)."""
        env[self.mark_name] = process_id

    @property
    def containment(self) -> str:
        """``"cgroup"`` when every run has its own cgroup, else ``"group"``."""
        return CGROUP if self.cgroups is not None else GROUP

    def placer(self, process_id: str) -> Callable[[list[str]], list[str]] | None:
        """What puts the next run of ``process_id`` into a fresh cgroup of its own before it
        runs (an argv in, the wrapped argv out; raises OSError); None without cgroups."""
        if self.cgroups is None:
            return None
        # The sentinel runs before the first run does (one spawn per server, not per start):
        # a SIGKILL of the server right after a start still ends that run's cgroup.
        self.sentinel.ensure()
        cgroups = self.cgroups
        return lambda argv: cgroups.place(process_id, argv)

    def current_cgroup(self, process_id: str) -> Path | None:
        """The cgroup of the current run of ``process_id``; None without cgroups."""
        jobs = self.cgroups.jobs(process_id) if self.cgroups is not None else []
        return jobs[-1] if jobs else None

    def adopt(
        self, process_id: str, pid: int, command: str, args: list[str], earliest: int
    ) -> None:
        """Enter a freshly spawned leader (pgid == pid) in the ledger and tell the sentinel.

        ``earliest``: what :meth:`before_spawn` returned. Both follow within ``BATCH_DELAY``
        (:meth:`flush`); until then the tree is found by its mark. Never raises.
        """
        start_ticks = self.os.start_window(pid, earliest)
        self._leaders.add(pid)
        self._trees[pid] = process_id
        self._pending[pid] = (process_id, start_ticks, command, args)
        if self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(BATCH_DELAY, self.flush)
        self.reaper.ensure_running()
        if self._sticky is not None and (self._sweeper is None or self._sweeper.done()):
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_sticky())

    def flush(self) -> None:
        """Write the pending ledger entries and tell the sentinel (else done ``BATCH_DELAY`` after
        the first start of a batch, off the start path: one write per batch, not per spawn)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        pending, self._pending = self._pending, {}
        for pid, (process_id, start_ticks, command, args) in pending.items():
            self.ledger.add(process_id, pid, start_ticks, command, args)
            self.sentinel.register(pid, start_ticks)
        self.sentinel.flush()

    def leader_reaped(self, pid: int) -> None:
        """Leader ``pid`` was reaped: it is no longer a known child (its tree may live on)."""
        self._leaders.discard(pid)

    def release(self, pid: int) -> None:
        """The tree of leader ``pid`` is gone: the sentinel forgets it. Never raises."""
        self._leaders.discard(pid)
        self._trees.pop(pid, None)
        if self._pending.pop(pid, None) is None:
            self.sentinel.unregister(pid)

    def forget(self, process_id: str) -> None:
        """``process_id`` was removed (its tree is gone): its empty cgroups are deleted,
        its sticky members forgotten."""
        if self._sticky is not None:
            self._sticky.pop(process_id, None)
        if self.cgroups is not None:
            self.cgroups.forget(process_id)

    def snapshot(self) -> Snapshot:
        """One scan of the process table: the table and who carries which of our marks (and,
        without a subreaper, the sticky members remembered so far). Never raises.

        A scan takes longer than a process that forks and exits every few milliseconds
        lives: by the time its mark is read it is gone, and its child was not listed yet.
        Such a child is re-parented to us (the subreaper), so the scan ends with a fresh
        look at our own adopted children (one read, then one per child): what a stop
        finds there it signals about a millisecond later, and a child of ours keeps its
        pid until we reap it."""
        table = proc.process_table()
        marked: dict[str, list[proc.ProcInfo]] = {}
        me = os.getpid()
        seen: set[int] = set()
        cache = self._marks
        if cache is not None:  # keep what this table still shows
            self._marks = cache = {
                key: cache[key] for info in table if (key := (info.pid, info.start_ticks)) in cache
            }
        for info in table:
            if info.zombie or info.pid == me:
                continue
            process_id = self._cached_mark(info, cache)
            if process_id is not None:
                marked.setdefault(process_id, []).append(info)
                seen.add(info.pid)
        for info in self.os.adopted(self._known_children()):
            if info.zombie or info.pid in seen:
                continue
            process_id = self._mark_of(info.pid)
            if process_id is not None:
                marked.setdefault(process_id, []).append(info)
                table.append(info)
        return Snapshot(table, marked, self._sticky)

    def tree_pids(self, process_id: str, leader: int, leader_unreaped: bool) -> list[int]:
        """Live pids of one tree, sorted: its group, marked escapees and descendants (one
        /proc scan), or with cgroups the members of its cgroups (no scan); plus the leader
        itself while it is not yet reaped (and not a zombie)."""
        pids: set[int] = set()
        if self.cgroups is not None:  # the leader may still be joining its cgroup
            pids.update(self.cgroups.members(process_id))
        else:
            pids.update(member.pid for member in self.snapshot().members(process_id, leader))
        info = proc.read_proc(leader)
        if leader_unreaped and info and not info.zombie:
            pids.add(leader)
        return sorted(pids)

    def strays(self, snapshot: Snapshot | None = None) -> list[proc.ProcInfo]:
        """Every process of ours found by its mark or as an adopted orphan (with descendants):
        what leaving no process behind must end besides the running trees' groups.

        ``snapshot``: the table to look in (default: a fresh one). Never raises."""
        snapshot = snapshot or self.snapshot()
        found = {info.pid: info for info in snapshot.all_marked()}
        for orphan in self.os.adopted(self._known_children()):
            if not orphan.zombie:
                found.setdefault(orphan.pid, orphan)
                for child in proc.descendants(orphan.pid, snapshot.table):
                    found.setdefault(child.pid, child)
        return [info for info in found.values() if not info.zombie]

    def reap_orphans(self) -> int:
        """Reap adopted orphans that have died (see ``subreaper.py``); returns how many
        (always 0 without a subreaper)."""
        return self.reaper.reap_now()

    async def close(self) -> None:
        """Clean exit (every tree already ended): dismiss the sentinel, reap, close the ledger."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self._pending.clear()
        self.reaper.close()
        if self.cgroups is not None:  # before the sentinel goes: it covers a crash until then
            self.cgroups.close()
        await self.sentinel.close()
        self.ledger.close()

    def _known_children(self) -> set[int]:
        known = set(self._leaders)
        if self.sentinel.pid is not None:
            known.add(self.sentinel.pid)
        return known

    def _cached_mark(
        self, info: proc.ProcInfo, cache: dict[tuple[int, int], str | None] | None
    ) -> str | None:
        """:meth:`_mark_of`, remembered per process (pid and start time) where reading an
        environment is dear (posix: one ``sysctl`` or file per process). Safe: a process
        that carried our mark is ours for good, even after an ``exec`` with a clean
        environment; one that did not cannot gain it (the token is secret), but for our own
        leader before its ``exec``, which its group finds anyway."""
        if cache is None:
            return self._mark_of(info.pid)
        key = (info.pid, info.start_ticks)
        if key not in cache:
            cache[key] = self._mark_of(info.pid)
        return cache[key]

    def _mark_of(self, pid: int) -> str | None:
        """The process id in ``pid``'s ownership mark; None when it carries none of ours
        (or its environment cannot be read)."""
        value = self.os.table.environ_value(pid, self._needle)
        return None if value is None else value.decode(errors="replace")

    async def _sweep_sticky(self) -> None:
        """While trees run (posix): about once a second (less often when a sweep is dear,
        so that sweeps take at most a fifth of the time), look at every tree (in a worker
        thread), so its members are remembered while a group, session, mark or parent link
        still leads to them, and tell the sentinel those that left group and session."""
        pause = STICKY_INTERVAL
        while self._trees:
            await asyncio.sleep(pause)
            began = time.monotonic()
            try:
                loose = await asyncio.to_thread(self._loose_members, dict(self._trees))
            except Exception:  # never let the sweep die: the next one retries
                logger.exception("sticky membership sweep failed")
                continue
            # At most about a fifth of a core, however many processes the host runs.
            pause = max(STICKY_INTERVAL, 4 * (time.monotonic() - began))
            for member in loose - self._told:
                self._told.add(member)
                self.sentinel.member(*member)

    def _loose_members(self, trees: dict[int, str]) -> set[tuple[int, int]]:
        """(pid, start) of every member of ``trees`` (leader → process id) outside its
        leader's group and session, as of one fresh snapshot (remembered as sticky)."""
        snapshot = self.snapshot()
        loose = set()
        for leader, process_id in trees.items():
            for info in snapshot.members(process_id, leader):
                if leader not in (info.pgid, info.sid):
                    loose.add((info.pid, info.start_ticks))
        return loose
