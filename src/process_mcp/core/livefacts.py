"""Live facts about running process trees (SPEC §7.5): CPU, memory, process count, ports.

Costs (notes/supervision.md §3) drive the design:

* ``psutil.net_connections()`` maps sockets to pids by walking the fds of *every* process
  on the host (12-241 ms), and ``Process.net_connections()`` re-parses the whole socket
  table for each process. Instead the TCP tables (``/proc/net/tcp`` and ``tcp6``) are read
  once for all managed processes and kept for ``ttl`` seconds (at most 2 s), as a map of
  listening socket inode → port; a tree's ports are then found by reading only its own
  processes' ``/proc/<pid>/fd`` links (``socket:[inode]``).
* Tree membership needs the host's process table (``Process.children`` scans all of
  ``/proc`` each call): it is read once, shared by every process of the call, and kept for
  ``ttl`` seconds too. The leader is always counted, even if newer than that snapshot.
* ``cpu_percent`` compares against the previous call on the *same* ``psutil.Process``
  object (the first call says 0.0), so those objects are kept between calls. They also
  remember the creation time, which guards against a reused pid.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import psutil

from process_mcp.core import tree

TTL = 2.0
_TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"


@dataclass(frozen=True)
class TreeFacts:
    cpu_percent: float
    memory_bytes: int
    process_count: int
    listening_ports: list[int]


def read_listening_sockets() -> dict[int, int]:
    """Inode → port of every listening TCP socket (IPv4 and IPv6) in our network namespace."""
    found: dict[int, int] = {}
    for table in _TCP_TABLES:
        try:
            with open(table) as handle:
                next(handle, None)  # header
                for row in handle:
                    fields = row.split()
                    if len(fields) > 9 and fields[3] == _LISTEN:
                        found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
        except OSError:
            continue  # no IPv6, or /proc/net hidden: fewer ports, not a failure
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets ``pid`` holds open (empty when gone or not ours to read)."""
    inodes = set()
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return inodes
    for name in names:
        with contextlib.suppress(OSError):
            target = os.readlink(f"{directory}/{name}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


class LiveFacts:
    """Facts about the trees of running managed processes, cheap enough for every call."""

    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = min(ttl, TTL)
        self._table: list[tree.ProcInfo] = []
        self._table_at = float("-inf")
        self._listening: dict[int, int] = {}
        self._listening_at = float("-inf")
        self._procs: dict[int, psutil.Process] = {}

    # ---------------------------------------------------------- shared snapshots
    def _process_table(self) -> list[tree.ProcInfo]:
        now = time.monotonic()
        if now - self._table_at > self.ttl:
            self._table, self._table_at = tree.process_table(), now
        return self._table

    def _listening_sockets(self) -> dict[int, int]:
        now = time.monotonic()
        if now - self._listening_at > self.ttl:
            self._listening, self._listening_at = read_listening_sockets(), now
        return self._listening

    # ------------------------------------------------------------------- facts
    def members(self, leader: int) -> list[int]:
        """The leader, its descendants and its process group's members (live ones)."""
        table = self._process_table()
        pids = {leader}
        pids.update(info.pid for info in tree.descendants(leader, table) if not info.zombie)
        pids.update(info.pid for info in tree.group_members(leader, table))
        return sorted(pid for pid in pids if tree.read_proc(pid) is not None)

    def listening_ports(self, leader: int, members: list[int] | None = None) -> list[int]:
        """TCP ports that any process of the tree listens on, ascending."""
        listening = self._listening_sockets()
        if not listening:
            return []
        ports = set()
        for pid in self.members(leader) if members is None else members:
            ports.update(listening[i] for i in socket_inodes(pid) if i in listening)
        return sorted(ports)

    def tree_facts(self, leader: int) -> TreeFacts:
        members = self.members(leader)
        cpu, rss, counted = 0.0, 0, 0
        for pid in members:
            process = self._process(pid)
            if process is None:
                continue
            try:
                with process.oneshot():
                    cpu += process.cpu_percent(None)
                    rss += process.memory_info().rss
                counted += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self._procs.pop(pid, None)
        self._forget_except(members)
        return TreeFacts(
            cpu_percent=round(cpu, 1),
            memory_bytes=rss,
            process_count=counted,
            listening_ports=self.listening_ports(leader, members),
        )

    def track(self, pid: int) -> None:
        """Start measuring CPU at spawn, so the first ``get-status`` shows a real figure."""
        self._process(pid)

    def _process(self, pid: int) -> psutil.Process | None:
        process = self._procs.get(pid)
        if process is not None and process.is_running():
            return process
        try:
            process = psutil.Process(pid)
            process.cpu_percent(None)  # first call: 0.0, and the baseline for the next one
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._procs.pop(pid, None)
            return None
        self._procs[pid] = process
        return process

    def _forget_except(self, keep: list[int]) -> None:
        """Drop cached Process objects of pids that are gone (they may be reused)."""
        for pid in list(self._procs):
            if pid not in keep and not self._procs[pid].is_running():
                del self._procs[pid]
