"""1000 concurrently running processes under one server: ``list`` time, server RSS,
file descriptors per process, and the time to stop them all (stdin EOF → server exited,
every tree gone).

Goals: list ≤ 20 ms, RSS ≤ 150 MB, ≤ 3 fds per process, stop all ≤ 2 s.
Run: ``uv run python benchmarks/scale.py [count]``
"""

from __future__ import annotations

import statistics
import sys
import time

import psutil
from _harness import RawServer, machine, table


def main(count: int) -> None:
    server = RawServer(PROCESS_MCP_STOP_GRACE="5")
    proc = psutil.Process(server.proc.pid)
    fds_before, rss_before = proc.num_fds(), proc.memory_info().rss
    started = time.perf_counter()
    pids = [
        server.call("start", {"command": "sleep", "args": ["600"]})["pid"] for _ in range(count)
    ]
    start_s = time.perf_counter() - started
    list_ms = []
    for _ in range(20):
        t = time.perf_counter()
        listed = server.call("list", {})
        list_ms.append((time.perf_counter() - t) * 1000)
    assert sum(p["status"] == "running" for p in listed["processes"]) == count
    rss = proc.memory_info().rss
    fds_per = (proc.num_fds() - fds_before) / count
    t = time.perf_counter()
    assert server.proc.stdin is not None
    server.proc.stdin.close()
    server.proc.wait(timeout=120)
    while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids):
        time.sleep(0.01)
    stop_s = time.perf_counter() - t
    print(f"{count} running `sleep 600` processes under one server ({machine()})")
    print(
        table(
            ["measure", "value", "goal"],
            [
                [f"start {count} (sequential calls)", f"{start_s:.2f} s", "-"],
                ["list, median of 20", f"{statistics.median(list_ms):.1f} ms", "≤ 20 ms"],
                [
                    "server RSS",
                    f"{rss / 2**20:.0f} MB (idle {rss_before / 2**20:.0f} MB)",
                    "≤ 150 MB",
                ],
                ["fds per process", f"{fds_per:.2f}", "≤ 3"],
                ["stop all (stdin EOF → all gone)", f"{stop_s:.2f} s", "≤ 2 s"],
            ],
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
