"""Supervisor transport: start-up to first answer, and request round trips over the socket.

- start-up: ``ensure_supervisor`` on an empty runtime folder → first ``ping`` answered
  (launcher spawn, fork, imports, lock, bind, handshake). Goal ≤ 300 ms. Shown next to the
  bare interpreter start (``python -c pass``) and ``python -c "import asyncio"``, the floor
  any asyncio supervisor pays.
- round trip: sequential ``echo`` requests (small args) on one session, against a direct
  in-process ``await handler.handle(...)`` call; and 100 requests in flight at once.

Run: ``uv run python benchmarks/supervisor_transport.py [startup_runs] [round_trips]``
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import machine, p50_p99, table
from supervisor_latency import stop_supervisor

from process_mcp.supervisor.client import ensure_supervisor
from process_mcp.supervisor.echo import EchoHandler
from process_mcp.supervisor.paths import SupervisorPaths


def _interpreter_ms(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return (time.perf_counter() - started) * 1000


def _cpu_ms(pid: int) -> float:
    """User + system CPU a live process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


async def _startup(base: Path, run: int) -> tuple[float, float, bool]:
    """Wall ms to the first answer, CPU ms of launcher + supervisor by then, MCP imported."""
    paths = SupervisorPaths(runtime_dir=base / f"run{run}", state_dir=base / f"state{run}")
    try:
        children_before = _children_cpu_ms()
        started = time.perf_counter()
        client = await ensure_supervisor("bench", paths=paths)
        await client.request("ping")
        elapsed = (time.perf_counter() - started) * 1000
        cpu = _children_cpu_ms() - children_before + _cpu_ms(client.supervisor_pid)
        mcp = (await client.request("state"))["mcp_imported"]
        await client.close()
        return elapsed, cpu, mcp
    finally:
        stop_supervisor(paths, grace=10)


async def _round_trips(base: Path, count: int) -> dict[str, list[float]]:
    paths = SupervisorPaths(runtime_dir=base / "rt-run", state_dir=base / "rt-state")
    args = {"id": "web", "tail": 20}
    results: dict[str, list[float]] = {"socket": [], "in-process call": []}
    handler = EchoHandler()
    try:
        client = await ensure_supervisor("bench", paths=paths)
        for _ in range(200):
            await client.request("echo", args)
        for _ in range(count):  # interleaved, so load drifts hit both alike
            started = time.perf_counter()
            await client.request("echo", args)
            results["socket"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await handler.handle(None, "echo", args)  # type: ignore[arg-type]
            results["in-process call"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await asyncio.gather(*(client.request("echo", args) for _ in range(100)))
        results["100 in flight (total)"] = [(time.perf_counter() - started) * 1000]
        await client.close()
    finally:
        stop_supervisor(paths, grace=10)
    return results


def _mm(samples: list[float]) -> list[float]:
    return [statistics.median(samples), min(samples)]


async def main() -> None:
    startup_runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    round_trips = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    # Installed packages keep their bytecode; a sandbox that forbids writing it would add
    # compile time to every start, which is not what users pay.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # The transport alone: supervisors started here serve the echo handler.
    os.environ["PROCESS_MCP_SUPERVISOR_HANDLER"] = "process_mcp.supervisor.echo:EchoHandler"
    with tempfile.TemporaryDirectory(prefix="pmcp-bench-") as tmp:
        base = Path(tmp)
        await _startup(base, -1)  # warm-up: bytecode written, page cache filled
        startup: list[float] = []
        cpu: list[float] = []
        bare: list[float] = []
        asyncio_floor: list[float] = []
        mcp_seen = False
        for run in range(startup_runs):
            bare.append(_interpreter_ms("pass"))
            asyncio_floor.append(_interpreter_ms("import asyncio"))
            elapsed, used, mcp = await _startup(base, run)
            startup.append(elapsed)
            cpu.append(used)
            mcp_seen |= mcp
        print(f"supervisor start-up, {startup_runs} runs ({machine()})")
        rows = [
            ["python -c pass (wall)", statistics.median(bare), min(bare)],
            ["python -c 'import asyncio' (wall)", *_mm(asyncio_floor)],
            ["ensure_supervisor → first answer (wall)", *_mm(startup)],
            ["  CPU used by launcher + supervisor", *_mm(cpu)],
        ]
        print(table(["what", "median ms", "min ms"], rows))
        print(f"MCP modules imported by the supervisor: {mcp_seen}\n")

        results = await _round_trips(base, round_trips)
        print(f"request round trip, {round_trips} sequential echo requests ({machine()})")
        rows = []
        for name, samples in results.items():
            p50, p99 = p50_p99(samples)
            rows.append([name, p50 * 1000, p99 * 1000])
        print(table(["path", "p50 µs", "p99 µs"], rows))


if __name__ == "__main__":
    asyncio.run(main())
