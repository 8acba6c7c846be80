"""Start-up: process spawn → ``initialize`` answered, process-mcp against a bare MCPServer.

Goal: ≤ 1.1x the bare server (import nothing that serving stdio does not need).
Run: ``uv run python benchmarks/startup.py [runs]``
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from _harness import BARE_SERVER, SERVER, machine, table

INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    }
).encode()


def time_to_initialize(argv: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(INITIALIZE + b"\n")
    proc.stdin.flush()
    reply = proc.stdout.readline()
    elapsed = (time.perf_counter() - started) * 1000
    assert b'"result"' in reply, reply
    proc.stdin.close()
    proc.wait(timeout=30)
    return elapsed


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    results = {"bare MCPServer (baseline)": [], "process-mcp": []}
    for _ in range(runs):  # interleaved, so load drifts hit both alike
        results["bare MCPServer (baseline)"].append(time_to_initialize(BARE_SERVER))
        results["process-mcp"].append(time_to_initialize(SERVER))
    base = statistics.median(results["bare MCPServer (baseline)"])
    rows = [
        [name, statistics.median(samples), min(samples), statistics.median(samples) / base]
        for name, samples in results.items()
    ]
    print(f"spawn → initialize answered, {runs} runs each ({machine()})")
    print(table(["server", "median ms", "min ms", "x baseline"], rows))


if __name__ == "__main__":
    main()
