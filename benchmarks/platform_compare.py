"""The linux backend against the posix one (``PROCESS_MCP_PLATFORM``), side by side on one
machine, through the real server (front-end and supervisor, raw JSON-RPC over stdio):

- ``start`` p50 (of COUNT ``sleep`` processes, one at a time);
- ``get-status`` p50 (live facts of a running process: CPU, memory, tree, ports);
- ``stop`` of a 20-process tree (a shell and 19 children), p50 of 5;
- ``list`` p50 with COUNT processes running;

and in process, per backend:

- exit latency: a forked child's exit → the exit watcher's callback (pidfd vs SIGCHLD +
  waitpid), p50 of 50;
- port discovery: one attribution of listening ports to 300 trees (``ports_by_tree``: the
  port watch's background work each time it runs; linux only runs it when the host's
  socket table changed, posix every second).

Run: ``uv run python benchmarks/platform_compare.py [COUNT]`` (default 300)
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _harness import RawServer, machine, table

PLATFORMS = ("linux", "posix")
TREE = "for i in $(seq 19); do sleep 600 & done; wait"


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def through_the_server(platform: str, count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        server = RawServer(
            PROCESS_MCP_PLATFORM=platform,
            PROCESS_MCP_STATE_DIR=f"{folder}/state",
            PROCESS_MCP_RUNTIME_DIR=f"{folder}/run",
            PROCESS_MCP_SUPERVISOR_IDLE="1",
            PROCESS_MCP_STOP_GRACE="2",
        )
        try:
            starts, ids, ids_pids = [], [], set()
            for _ in range(count):
                begin = time.perf_counter()
                started = server.call("start", {"command": "sleep", "args": ["600"]})
                ids.append(started["id"])
                ids_pids.add(started["pid"])
                starts.append(time.perf_counter() - begin)
            time.sleep(1.5)  # the port watch has looked at every tree once
            status = []
            for i in range(60):
                begin = time.perf_counter()
                server.call("get-status", {"id": ids[i % len(ids)]})
                status.append(time.perf_counter() - begin)
            listing = []
            for _ in range(30):
                begin = time.perf_counter()
                server.call("list", {})
                listing.append(time.perf_counter() - begin)
            stops = []
            for _ in range(5):
                tree = server.call("start", {"command": "sh", "args": ["-c", TREE]})
                time.sleep(0.5)  # all 20 running
                begin = time.perf_counter()
                server.call("stop", {"id": tree["id"]})
                stops.append(time.perf_counter() - begin)
        finally:
            # Ending 300 trees one session-stop at a time is not what is measured here:
            # SIGKILL both processes and let the sentinel end everything in one sweep.
            supervisor = int(Path(f"{folder}/run/supervisor.lock").read_text().split()[0])
            server.proc.kill()
            server.proc.wait(timeout=30)
            os.kill(supervisor, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while psutil.pid_exists(supervisor) and time.monotonic() < deadline:
                time.sleep(0.05)
            while (
                any(p.pid in ids_pids for p in psutil.process_iter())
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)
    return {
        "start": ms(starts),
        "get-status": ms(status),
        "stop 20": ms(stops),
        "list": ms(listing),
    }


async def exit_latency(platform: str) -> float:
    from process_mcp.core import platform as backends

    backends.select(platform)
    samples = []
    for _ in range(50):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, repr(time.monotonic()).encode())
            os._exit(0)
        os.close(write)
        seen = asyncio.get_running_loop().create_future()
        backends.watch_exit(pid, lambda status, seen=seen: seen.set_result(time.monotonic()))
        ended = await seen
        exited = float(os.read(read, 64))
        os.close(read)
        samples.append(ended - exited)
    return ms(samples)


def port_attribution(platform: str, count: int) -> float:
    from process_mcp.core import platform as backends
    from process_mcp.core.facts.ports import ports_by_tree

    backend = backends.select(platform)
    children = [subprocess.Popen(["sleep", "600"], start_new_session=True) for _ in range(count)]
    try:
        leaders = [child.pid for child in children]
        samples = []
        for _ in range(5):
            begin = time.perf_counter()
            ports_by_tree(leaders, backend.listening_table())
            samples.append(time.perf_counter() - begin)
    finally:
        for child in children:
            child.kill()
            child.wait()
    return ms(samples)


def main(count: int) -> None:
    print(f"{machine()}; {count} processes; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows: dict[str, dict[str, float]] = {p: {} for p in PLATFORMS}
    for platform in PLATFORMS:
        rows[platform].update(through_the_server(platform, count))
        rows[platform]["exit latency"] = asyncio.run(exit_latency(platform))
        rows[platform]["ports of 300 trees"] = port_attribution(platform, 300)
    names = list(rows["linux"])
    print(
        table(
            ["p50, ms", *PLATFORMS, "posix / linux"],
            [
                [
                    name,
                    rows["linux"][name],
                    rows["posix"][name],
                    f"{rows['posix'][name] / max(rows['linux'][name], 1e-9):.2f}x",
                ]
                for name in names
            ],
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
