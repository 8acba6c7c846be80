"""Live facts about running process trees: CPU, memory, process count, ports.

Costs drive the design:

* ``psutil.net_connections()`` maps sockets to pids by walking the fds of *every* process
  on the host (12-241 ms), and ``Process.net_connections()`` re-parses the whole socket
  table for each process. Instead, on linux, the TCP tables (``/proc/net/tcp`` and
  ``tcp6``) are read once for all managed processes and kept for ``ttl`` seconds (at most
  2 s), as a map of listening socket inode → port; a tree's ports are then found by
  reading only its own processes' ``/proc/<pid>/fd`` links (``socket:[inode]``). The posix
  backend has no host table to read, and asks each tree member (``core/platform``).
* Tree membership needs the host's process table (``Process.children`` scans all of
  ``/proc`` each call): it is read once, shared by every process of the call, and kept for
  ``ttl`` seconds too. The leader is always counted, even if newer than that snapshot.
  Where each tree has a cgroup (``track(pid, cgroup)``), membership is its
  ``cgroup.procs`` instead: no process table is read, and escapees are counted too. CPU
  then comes from the cgroup's ``cpu.stat`` (one read for the whole tree, processes that
  already exited included) and memory from ``memory.current`` where the memory controller
  is on (else the members' RSS).
* ``cpu_percent`` compares against the previous call on the *same* ``psutil.Process``
  object (the first call says 0.0), so those objects are kept between calls. They also
  remember the creation time, which guards against a reused pid.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from process_mcp.core import platform
from process_mcp.core.trees import cgroups, proc


def _lazy(name: str) -> ModuleType:
    """``name`` imported on first use (the standard library's ``LazyLoader``): the
    supervisor answers its first request before psutil (tens of ms to import) is needed,
    which is only when live facts are first asked for."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None, name
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


psutil = _lazy("psutil")


TTL = 2.0
FACTS_TTL = 1.0


@dataclass(frozen=True)
class TreeFacts:
    cpu_percent: float
    memory_bytes: int
    process_count: int
    listening_ports: list[int]

    def describe(self, last_output_at: float | None, log_bytes: int) -> dict[str, object]:
        """The live facts (``get-status``), camelCase; idle time counts from ``last_output_at``
        (``time.monotonic()``), or from the epoch of that clock when nothing was written."""
        idle = max(time.monotonic() - (last_output_at or 0.0), 0.0)
        return {
            "cpuPercent": self.cpu_percent,
            "memoryBytes": self.memory_bytes,
            "processCount": self.process_count,
            "listeningPorts": self.listening_ports,
            "idleSeconds": round(idle, 3),
            "logBytes": log_bytes,
        }


def _same(current: proc.ProcInfo | None, start_ticks: int | None) -> bool:
    """Alive (not a zombie) and, when ``start_ticks`` is given, not a reused pid."""
    if current is None or current.zombie:
        return False
    return start_ticks is None or current.start_ticks == start_ticks


class LiveFacts:
    """Facts about the trees of running managed processes, cheap enough for every call."""

    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = min(ttl, TTL)
        self._children: dict[int, list[proc.ProcInfo]] = {}
        self._groups: dict[int, list[proc.ProcInfo]] = {}
        self._table_at = float("-inf")
        self._listening: dict[int, int] | None = {}
        self._listening_at = float("-inf")
        self._procs: dict[int, psutil.Process] = {}
        self._tree_pids: dict[int, set[int]] = {}  # leader → pids whose Process objects we keep
        self._facts: dict[int, tuple[float, TreeFacts]] = {}
        self._cgroups: dict[int, Path] = {}  # leader → its tree's cgroup, where it has one
        self._cgroup_memory: set[int] = set()  # leaders whose cgroup has memory.current
        self._cpu_samples: dict[int, tuple[float, int]] = {}  # leader → (monotonic, usec)
        self._fresh: set[int] = set()  # Process objects with no CPU sample yet
        self.table_reads = 0  # how often the host's process table / socket tables were read
        self.socket_reads = 0

    # ---------------------------------------------------------- shared snapshots
    def _refresh_table(self) -> None:
        """Index the host's process table by parent and by group, at most once per ttl."""
        now = time.monotonic()
        if now - self._table_at <= self.ttl:
            return
        self._children, self._groups = {}, {}
        self.table_reads += 1
        for info in proc.process_table():
            if not info.zombie:
                self._children.setdefault(info.ppid, []).append(info)
                self._groups.setdefault(info.pgid, []).append(info)
        self._table_at = now

    def _listening_sockets(self) -> dict[int, int] | None:
        now = time.monotonic()
        if now - self._listening_at > self.ttl:
            self._listening, self._listening_at = platform.backend().listening_table(), now
            self.socket_reads += 1
        return self._listening

    # ------------------------------------------------------------------- facts
    def members(self, leader: int) -> list[int]:
        """The leader, its descendants and its process group's members, each checked to be
        still alive and the same process (start time) since the table was read; or, for a
        tree with a cgroup, the leader and the cgroup's members (no table read)."""
        cgroup = self._cgroups.get(leader)
        if cgroup is not None:
            members = set(cgroups.members(cgroup))
            if _same(proc.read_proc(leader), None):
                members.add(leader)
            return sorted(members)
        self._refresh_table()
        found: dict[int, proc.ProcInfo] = {info.pid: info for info in self._groups.get(leader, ())}
        seen, stack = {leader}, [leader]
        while stack:
            for child in self._children.get(stack.pop(), ()):
                if child.pid not in seen:
                    seen.add(child.pid)
                    found[child.pid] = child
                    stack.append(child.pid)
        pids = [leader] if _same(proc.read_proc(leader), None) else []
        for pid, info in found.items():
            if pid != leader and _same(proc.read_proc(pid), info.start_ticks):
                pids.append(pid)
        return sorted(pids)

    def listening_ports(self, leader: int, members: list[int] | None = None) -> list[int]:
        """TCP ports that any process of the tree listens on, ascending."""
        listening = self._listening_sockets()
        if listening == {}:
            return []
        pids = self.members(leader) if members is None else members
        return sorted(platform.backend().ports_of(pids, listening))

    def tree_facts(self, leader: int) -> TreeFacts:
        """CPU, memory, count and ports of a tree, at most ``FACTS_TTL`` old: CPU is a rate over
        the time since the previous sample anyway, and an agent polling get-status in a loop
        should cost the server next to nothing."""
        now = time.monotonic()
        cached = self._facts.get(leader)
        if cached is not None and now - cached[0] < FACTS_TTL:
            return cached[1]
        facts = self._measure(leader)
        self._facts[leader] = (now, facts)
        return facts

    def _measure(self, leader: int) -> TreeFacts:
        members = self.members(leader)
        if leader in self._cgroups:
            return self._measure_cgroup(leader, members)
        cpu, rss, counted = 0.0, 0, 0
        for pid in members:
            process = self._process(pid)
            if process is None:
                continue
            try:
                with process.oneshot():
                    cpu += self._cpu(pid, process)
                    rss += process.memory_info().rss
                counted += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self._procs.pop(pid, None)
        self._keep_only(leader, members)
        return TreeFacts(
            cpu_percent=round(cpu, 1),
            memory_bytes=rss,
            process_count=counted,
            listening_ports=self.listening_ports(leader, members),
        )

    def _measure_cgroup(self, leader: int, members: list[int]) -> TreeFacts:
        """A tree with a cgroup: CPU % from ``cpu.stat`` since the previous sample (the first
        since the tree started), memory from ``memory.current`` or the members' RSS."""
        cgroup = self._cgroups[leader]
        usage = cgroups.usage(cgroup, memory=leader in self._cgroup_memory)
        now = time.monotonic()
        cpu = 0.0
        if usage.cpu_usec is not None:
            then, before = self._cpu_samples.get(leader, (now, 0))
            elapsed = max(now - then, 0.01)
            cpu = (usage.cpu_usec - before) / 1e6 / elapsed * 100
            self._cpu_samples[leader] = (now, usage.cpu_usec)
        memory = usage.memory_bytes
        if memory is None:
            memory = sum(self._rss(pid) for pid in members)
        self._keep_only(leader, members)
        return TreeFacts(
            cpu_percent=round(max(cpu, 0.0), 1),
            memory_bytes=memory,
            process_count=len(members),
            listening_ports=self.listening_ports(leader, members),
        )

    def _rss(self, pid: int) -> int:
        process = self._process(pid)
        try:
            return process.memory_info().rss if process is not None else 0
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._procs.pop(pid, None)
            return 0

    def track(self, pid: int, cgroup: Path | None = None) -> None:
        """Note a new tree (and its cgroup, if it has one); nothing but one ``stat`` of the
        cgroup is done here, so spawning pays next to nothing for live facts."""
        self._tree_pids[pid] = set()
        if cgroup is not None:
            self._cgroups[pid] = cgroup
            self._cpu_samples[pid] = (time.monotonic(), 0)  # the cgroup is new: 0 µs so far
            if (cgroup / "memory.current").exists():
                self._cgroup_memory.add(pid)

    def _cpu(self, pid: int, process: psutil.Process) -> float:
        """CPU % since the previous sample; for a process seen for the first time, its
        average since it started (psutil's first sample would say 0.0)."""
        if pid not in self._fresh:
            return process.cpu_percent(None)
        self._fresh.discard(pid)
        times = process.cpu_times()
        age = max(time.time() - process.create_time(), 0.01)
        return (times.user + times.system) / age * 100

    def forget(self, leader: int) -> None:
        """The tree has ended: drop its Process objects (their pids may be reused)."""
        self._facts.pop(leader, None)
        self._cgroups.pop(leader, None)
        self._cgroup_memory.discard(leader)
        self._cpu_samples.pop(leader, None)
        for pid in self._tree_pids.pop(leader, ()):
            self._procs.pop(pid, None)
            self._fresh.discard(pid)

    def _process(self, pid: int) -> psutil.Process | None:
        process = self._procs.get(pid)
        if process is not None and process.is_running():
            return process
        try:
            process = psutil.Process(pid)
            process.cpu_percent(None)  # first call: 0.0, and the baseline for the next one
            self._fresh.add(pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._procs.pop(pid, None)
            return None
        self._procs[pid] = process
        return process

    def _keep_only(self, leader: int, members: list[int]) -> None:
        """Drop cached Process objects of this tree's pids that left it: O(tree), not O(all)."""
        current = set(members)
        for pid in self._tree_pids.get(leader, set()) - current:
            self._procs.pop(pid, None)
            self._fresh.discard(pid)
        self._tree_pids[leader] = current
