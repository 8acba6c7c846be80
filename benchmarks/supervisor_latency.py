"""The cost of the supervisor hop: the MCP server as a front-end of the per-user
supervisor, against ``--standalone`` (the supervisor inside the server: same code, an
in-memory connection instead of the Unix socket and a second process).

- ``get-status`` p50 and ``start`` p50 over stdio with the official SDK client, both modes
  measured in alternating rounds so load drifts hit both alike. Goals: ≤ 1.2x and ≤ 1.5x.
- supervisor start-up to first answer: ``ensure_supervisor`` on an empty runtime folder →
  first ``snapshot`` answered (launcher, fork, imports, manager, lock, bind, handshake); and
  a whole cold front-end: spawn ``process-mcp``, initialize, first ``get-status`` answered,
  with no supervisor running vs one already running.
- resident memory with 300 ``sleep`` processes: supervisor + front-end vs the standalone
  server.

Run: ``uv run python benchmarks/supervisor_latency.py [calls] [rounds]``
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _harness import SERVER, machine, p50_p99, session, table, timed_calls

from process_mcp.supervisor.client import ensure_supervisor
from process_mcp.supervisor.paths import SupervisorPaths


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop_supervisor(paths: SupervisorPaths, grace: float = 20.0) -> None:
    """SIGTERM the supervisor holding ``paths``' lock; SIGKILL it after ``grace`` s."""
    pid = paths.lock_holder()
    if pid is None or pid < 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while paths.lock_holder() is not None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def mode_env(mode: str) -> dict[str, str]:
    return {"PROCESS_MCP_STANDALONE": "1" if mode == "standalone" else "0"}


async def latency(mode: str, count: int) -> tuple[list[float], list[float]]:
    async with session(SERVER, **mode_env(mode)) as client:
        started = await client.call_tool("start", {"command": "sleep", "args": ["600"]})
        ident = started.structured_content["id"]
        status = await timed_calls(lambda: client.call_tool("get-status", {"id": ident}), count)
        starts = await timed_calls(
            lambda: client.call_tool("start", {"command": "sleep", "args": ["600"]}),
            min(count, 200),
        )
    return status, starts


async def cold_front_end(mode: str = "supervisor") -> float:
    """Spawn the server, initialize, start nothing, first get-status answered (ms)."""
    began = time.perf_counter()
    async with session(SERVER, **mode_env(mode)) as client:
        await client.call_tool("get-status", {"id": "nope00"})
        return (time.perf_counter() - began) * 1000


async def supervisor_startup(base: Path, run: int) -> float:
    paths = SupervisorPaths(runtime_dir=base / f"su-run{run}", state_dir=base / f"su-state{run}")
    try:
        began = time.perf_counter()
        client = await ensure_supervisor("bench", paths=paths)
        await client.request("snapshot")
        elapsed = (time.perf_counter() - began) * 1000
        await client.close()
        return elapsed
    finally:
        stop_supervisor(paths)


async def memory(mode: str, processes: int) -> dict[str, float]:
    import subprocess

    from _harness import RawServer

    server = RawServer(SERVER, **mode_env(mode))
    try:
        for _ in range(processes):
            server.call("start", {"command": "sleep", "args": ["600"]})
        server.call("list", {})
        sizes = {"front-end" if mode == "supervisor" else "server": rss_mib(server.proc.pid)}
        if mode == "supervisor":
            pid = SupervisorPaths.from_env().holder_pid()
            assert pid is not None
            sizes["supervisor"] = rss_mib(pid)
        return sizes
    finally:
        assert server.proc.stdin is not None
        server.proc.stdin.close()  # the session ends: its 300 processes are stopped
        try:
            server.proc.wait(60)
        except subprocess.TimeoutExpired:
            server.proc.kill()


async def main(count: int, rounds: int) -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="pmcp-sup-") as tmp:
        base = Path(tmp)
        os.environ["PROCESS_MCP_RUNTIME_DIR"] = str(base / "run")
        os.environ["PROCESS_MCP_STATE_DIR"] = str(base / "state")
        os.environ["PROCESS_MCP_SUPERVISOR_IDLE"] = "600"
        os.environ["PROCESS_MCP_STOP_GRACE"] = "1"
        paths = SupervisorPaths.from_env()
        try:
            samples: dict[str, dict[str, list[float]]] = {
                mode: {"get-status": [], "start": []} for mode in ("standalone", "supervisor")
            }
            for _ in range(rounds):
                for mode in ("standalone", "supervisor"):
                    status, starts = await latency(mode, count)
                    samples[mode]["get-status"] += status
                    samples[mode]["start"] += starts
            print(f"tool latency over stdio, {rounds} alternating rounds ({machine()})")
            rows = []
            for tool, goal in (("get-status", 1.2), ("start", 1.5)):
                alone = p50_p99(samples["standalone"][tool])
                hop = p50_p99(samples["supervisor"][tool])
                rows.append([f"{tool} --standalone", *alone, "", ""])
                rows.append([f"{tool} via supervisor", *hop, hop[0] / alone[0], f"≤ {goal}"])
            print(table(["tool", "p50 ms", "p99 ms", "ratio p50", "goal"], rows))

            stop_supervisor(paths)
            startup = [await supervisor_startup(base, run) for run in range(-1, 7)][1:]
            cold = []
            for _ in range(5):
                stop_supervisor(paths)
                cold.append(await cold_front_end())
            warm = [await cold_front_end() for _ in range(5)]
            alone = [await cold_front_end("standalone") for _ in range(5)]
            print("\nstart-up (wall ms)")
            print(
                table(
                    ["what", "median ms", "min ms"],
                    [
                        [
                            "ensure_supervisor → first answer",
                            statistics.median(startup),
                            min(startup),
                        ],
                        [
                            "front-end spawn → first get-status, no supervisor yet",
                            statistics.median(cold),
                            min(cold),
                        ],
                        [
                            "front-end spawn → first get-status, supervisor running",
                            statistics.median(warm),
                            min(warm),
                        ],
                        [
                            "--standalone spawn → first get-status",
                            statistics.median(alone),
                            min(alone),
                        ],
                    ],
                )
            )

            print("\nresident memory with 300 sleep processes (MiB)")
            stop_supervisor(paths)
            rows = []
            for mode in ("standalone", "supervisor"):
                sizes = await memory(mode, 300)
                rows.append([mode, *(f"{k} {v:.1f}" for k, v in sizes.items())])
                rows[-1].append(f"total {sum(sizes.values()):.1f}")
                if len(rows[-1]) == 3:
                    rows[-1].insert(2, "")
            print(table(["mode", "process", "process", "total"], rows))
        finally:
            stop_supervisor(paths)


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 500,
            int(sys.argv[2]) if len(sys.argv) > 2 else 2,
        )
    )
