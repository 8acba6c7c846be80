"""Facts for every managed tree with 1000 processes: from the cgroup files vs today's /proc.

    uv run python benchmarks/cgroup_facts.py [--processes 1000] [--rounds 10]

Two shapes, each with ``--processes`` sleeping processes: one process per tree, and ten
trees of many processes. Each tree runs in its own job cgroup (placed by the compiled
launcher, else ``sh``). One "list" is the facts of every tree:

* /proc (today) — ``LiveFacts``: the host's process table (parent and group links) and
  the socket tables, read once per list, then CPU %, RSS and listening ports per member
  through psutil;
* /proc: members only — the part a cgroup replaces: the process table, and the parent and
  group walk per tree;
* cgroup: members only — ``cgroup.procs`` of each tree (and a look for sub-cgroups);
* cgroup: members, CPU time, memory — membership and count from ``cgroup.procs``, CPU
  time from ``cpu.stat``, ``memory.current`` where the memory controller is on (RSS per
  member otherwise, from ``/proc/<pid>/statm``); no host scan.

Times are per list (all trees), median and p90 over ``--rounds``. Needs a writable cgroup
v2 subtree; everything is killed and removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _harness import machine, percentile, table

from process_mcp.core.facts.live import LiveFacts
from process_mcp.core.trees import cgroup_join, cgroups
from process_mcp.core.trees.cgroup_layout import Layout

PAGE = os.sysconf("SC_PAGE_SIZE")


def start(layout: Layout, helper: Path | None, trees: int, per_tree: int) -> dict[int, Path]:
    """``trees`` job cgroups of ``per_tree`` sleeping processes each: leader pid → cgroup."""
    script = f"i=1; while [ $i -lt {per_tree} ]; do sleep 3600 & i=$((i+1)); done; exec sleep 3600"
    jobs: dict[int, Path] = {}
    for index in range(trees):
        job = layout.create_job(f"t{index}")
        argv = ["/bin/sh", "-c", script] if per_tree > 1 else ["sleep", "600"]
        proc = subprocess.Popen(
            cgroup_join.wrap(argv, job, helper=helper),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        jobs[proc.pid] = job
    total = trees * per_tree
    deadline = time.monotonic() + 120
    while sum(len(cgroups.members(job)) for job in jobs.values()) < total:
        if time.monotonic() > deadline:
            raise SystemExit("the processes did not all start within 120 s")
        time.sleep(0.1)
    return jobs


def cgroup_list(jobs: dict[int, Path], memory: bool) -> int:
    counted = 0
    for job in jobs.values():
        used = cgroups.usage(job, memory=memory)
        if used.memory_bytes is None:
            rss = 0
            for pid in used.pids:
                try:
                    with open(f"/proc/{pid}/statm", "rb") as handle:
                        rss += int(handle.read().split()[1]) * PAGE
                except OSError:
                    pass
        counted += len(used.pids)
    return counted


def proc_list(facts: LiveFacts, jobs: dict[int, Path]) -> int:
    facts._facts.clear()  # no cached answers, and the host's tables read once per list
    facts._table_at = facts._listening_at = float("-inf")
    return sum(facts.tree_facts(leader).process_count for leader in jobs)


def proc_members(facts: LiveFacts, jobs: dict[int, Path]) -> int:
    facts._table_at = float("-inf")
    return sum(len(facts.members(leader)) for leader in jobs)


def measure(rounds: int, jobs: dict[int, Path], memory: bool) -> dict[str, list[float]]:
    facts = LiveFacts()
    methods = {
        "/proc (today): members, CPU %, RSS, ports": lambda: proc_list(facts, jobs),
        "/proc: members only": lambda: proc_members(facts, jobs),
        "cgroup: members only": lambda: sum(len(cgroups.members(j)) for j in jobs.values()),
        "cgroup: members, CPU time, memory": lambda: cgroup_list(jobs, memory),
    }
    samples: dict[str, list[float]] = {name: [] for name in methods}
    proc_list(facts, jobs)  # warm-up: psutil objects exist, as on a long-running server
    for _ in range(rounds):
        for name, run in methods.items():
            started = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    probe = cgroups.detect()
    if not probe.available:
        raise SystemExit(f"cgroup v2 is not writable here: {probe.reason}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        helper = cgroup_join.build_helper(Path(scratch))
        for trees, per_tree in ((args.processes, 1), (10, args.processes // 10)):
            layout = Layout.create(probe, f"facts-{os.getpid()}")
            try:
                jobs = start(layout, helper, trees, per_tree)
                for name, values in measure(
                    args.rounds, jobs, "memory" in layout.controllers
                ).items():
                    rows.append(
                        [
                            f"{trees} trees x {per_tree}",
                            name,
                            f"{statistics.median(values):.1f}",
                            f"{percentile(values, 0.9):.1f}",
                        ]
                    )
            finally:
                layout.close(timeout=30)
    print(f"facts of every tree, {args.processes} processes ({machine()}; {probe.reason})")
    print(table(["shape", "source", "median ms", "p90 ms"], rows))


if __name__ == "__main__":
    main()
