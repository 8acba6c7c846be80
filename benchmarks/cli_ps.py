"""``process-mcp ps`` with many processes: wall time of the whole command, Python start-up
included, as a person types it (not a terminal: plain text, no ``rich`` import).

Starts N kept ``sleep`` processes through the supervisor (its own runtime and state
folders), times ``process-mcp ps --all`` R times, then stops them all.
Goal (issue 14): ≤ 150 ms with 300 processes.
Run: ``uv run python benchmarks/cli_ps.py [N] [R]``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from _harness import machine, p50_p99, table

from process_mcp.cli.link import Link
from process_mcp.core.options import StartRequest
from process_mcp.supervisor.protocol import ops

CLI = [sys.executable, "-m", "process_mcp"]


def main(count: int, rounds: int) -> None:
    folder = tempfile.mkdtemp(prefix="cli-ps-")
    os.environ["PROCESS_MCP_RUNTIME_DIR"] = f"{folder}/run"
    os.environ["PROCESS_MCP_STATE_DIR"] = f"{folder}/state"
    os.environ["PROCESS_MCP_SUPERVISOR_IDLE"] = "1"  # it exits soon after the run
    with Link.open() as link:
        ids = []
        for _ in range(count):
            started = link.call(StartRequest("sleep", ("600",), folder=folder, keep=True))
            ids.append(started.record.id)
        try:
            rows = []
            for args in (["ps", "--all"], ["ps", "--all", "--json"]):
                subprocess.run([*CLI, *args], capture_output=True, check=True)  # warm caches
                samples = []
                for _ in range(rounds):
                    began = time.perf_counter()
                    subprocess.run([*CLI, *args], capture_output=True, check=True)
                    samples.append((time.perf_counter() - began) * 1000)
                rows.append([" ".join(args), count, *p50_p99(samples), min(samples)])
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare = (time.perf_counter() - began) * 1000
        finally:
            for process_id in ids:
                link.call(ops.Stop(process_id, force=True))
    print(machine())
    print(table(["command", "processes", "p50 ms", "p99 ms", "min ms"], rows))
    print(f"bare `python -c pass`: {bare:.0f} ms")


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 300,
        int(sys.argv[2]) if len(sys.argv) > 2 else 20,
    )
