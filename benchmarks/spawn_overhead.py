"""What tree ownership costs a spawn: spawn + reap of ``true``, with and without it, against a
plain ``subprocess.Popen`` measured in the same run.

    uv run python benchmarks/spawn_overhead.py [--spawns 2000]

Rows:
* plain Popen — ``Popen(start_new_session=True)`` with stdin /dev/null and two pipes, the
  baseline every Python supervisor pays;
* without — the server's own ``launch.start_session_leader`` (the same Popen, after its checks);
* with — what ``ProcessManager.start`` adds for ownership: the descriptor check (``dup``
  probe), the ownership mark in the environment, the start-time bracket, the record appended
  to ``processes.jsonl`` and the lines to the sentinel (a real sentinel is running). The
  server writes those in a batch 20 ms after a start, so the sentinel wakes once per batch:
  one row flushes after every spawn (the worst case: starts more than 20 ms apart), the
  other every 20 spawns (a burst of starts);
* with cgroup — the batched row plus cgroup placement, where cgroups are
  writable: a fresh cgroup made for the run, the argv wrapped by the launcher that joins
  it before exec (compiled C, or ``/bin/sh``), and the emptied cgroup removed after the
  reap. Skipped where cgroups are not available (or ``PROCESS_MCP_CGROUPS=0``).

Methods are interleaved in rounds of 100, in a new random order each round, so that load
from elsewhere hits them alike; the table
gives the median and mean per spawn+reap and the overhead against the plain row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _harness import machine, table

from process_mcp.core.spawn import launch
from process_mcp.core.trees import cgroup_join
from process_mcp.core.trees.ownership import Ownership

ROUND = 100


def plain() -> None:
    proc = subprocess.Popen(
        ["true"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
        bufsize=0,
    )
    _finish(proc)


def without() -> None:
    env = launch.build_env(None)
    _finish(launch.start_session_leader(["true"], "/", env))


def with_ownership(
    ownership: Ownership, counter: list[int], flush_every: int, ended: list[int]
) -> None:
    env = launch.build_env(None)
    earliest = ownership.before_spawn("true")
    counter[0] += 1
    ownership.mark(env, f"b{counter[0]}")
    proc = launch.start_session_leader(["true"], "/", env)
    ownership.adopt(f"b{counter[0]}", proc.pid, "true", [], earliest)
    _finish(proc)
    # Released only after their batch was written, as for a process that outlives the
    # 20 ms batch delay (one that ends sooner is never written at all).
    ended.append(proc.pid)
    if counter[0] % flush_every == 0:
        ownership.flush()  # the server does this in a batch 20 ms after a start
        for pid in ended:
            ownership.release(pid)
        ended.clear()


def with_cgroup(
    ownership: Ownership, counter: list[int], ended: list[int], helper: Path | None
) -> None:
    cgroups = ownership.cgroups
    assert cgroups is not None
    env = launch.build_env(None)
    earliest = ownership.before_spawn("true")
    counter[0] += 1
    process_id = f"b{counter[0]}"
    ownership.mark(env, process_id)
    job = cgroups.subtree().create_job(process_id)
    argv = cgroup_join.wrap(["true"], job, helper=helper)
    proc = launch.start_session_leader(argv, "/", env)
    ownership.adopt(process_id, proc.pid, "true", [], earliest)
    _finish(proc)
    os.rmdir(job)
    ended.append(proc.pid)
    if counter[0] % 20 == 0:
        ownership.flush()
        for pid in ended:
            ownership.release(pid)
        ended.clear()


def _finish(proc: subprocess.Popen[bytes]) -> None:
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


async def run(spawns: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        state = Path(scratch)
        ownership = Ownership(state / "bench-instance", state, stop_grace=1.0)
        counter, ended = [0], []
        methods: dict[str, Callable[[], None]] = {
            "plain Popen (baseline)": plain,
            "server spawn, without ownership": without,
            "with ownership, sentinel woken per spawn": lambda: with_ownership(
                ownership, counter, 1, ended
            ),
            "with ownership, sentinel batched (20/write)": lambda: with_ownership(
                ownership, counter, 20, ended
            ),
        }
        if ownership.cgroups is not None:
            helper = cgroup_join.build_helper(state / "bin")
            methods["batched + cgroup, compiled launcher"] = lambda: with_cgroup(
                ownership, counter, ended, helper
            )
            methods["batched + cgroup, /bin/sh launcher"] = lambda: with_cgroup(
                ownership, counter, ended, None
            )
        samples: dict[str, list[float]] = {name: [] for name in methods}
        for method in methods.values():  # warm-up: imports, page cache, the sentinel's start
            for _ in range(20):
                method()
        order = list(methods.items())
        for _ in range(max(1, spawns // ROUND)):
            random.shuffle(order)  # no method always runs right after another
            for name, method in order:
                for _ in range(ROUND):
                    started = time.perf_counter()
                    method()
                    samples[name].append((time.perf_counter() - started) * 1e6)
        await ownership.close()

    base = statistics.median(samples["plain Popen (baseline)"])
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        rows.append(
            [
                name,
                len(values),
                f"{median:.0f}",
                f"{statistics.fmean(values):.0f}",
                f"{(median / base - 1) * 100:+.1f}%",
            ]
        )
    print(f"spawn + reap of `true` ({machine()})")
    print(table(["method", "spawns", "median µs", "mean µs", "vs plain (median)"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spawns", type=int, default=2000, help="spawns per method")
    asyncio.run(run(parser.parse_args().spawns))


if __name__ == "__main__":
    main()
