"""``list`` of many running processes over stdio, with a bare JSON-RPC client (the server's
own cost, without the SDK client's schema validation): median and fastest decile of many
calls, so a busy machine shows less in the figure, and the answer's size.

300 processes answer in at most 1.5x the original TypeScript server's time on
the same machine (~3 ms there). Compare two versions of this server by running the script
with each on ``PYTHONPATH`` in turn, e.g. ``PYTHONPATH=/tmp/base/src``.
Run: ``uv run python benchmarks/list_scale.py [count] [calls]``
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from _harness import RawServer, machine, table


def main(count: int, calls: int) -> None:
    server = RawServer(PROCESS_MCP_STOP_GRACE="5")
    try:
        for _ in range(count):
            server.call("start", {"command": "sleep", "args": ["600"]})
        time.sleep(1.5)  # let background work (port watch) settle, as in a real session
        for _ in range(20):
            server.call("list", {})
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            answer = server.request("tools/call", {"name": "list", "arguments": {}})
            samples.append((time.perf_counter() - started) * 1000)
        size = len(answer["content"][0]["text"].encode())
        assert len(json.loads(answer["content"][0]["text"])["processes"]) == count
    finally:
        assert server.proc.stdin is not None
        server.proc.stdin.close()
        server.proc.wait(timeout=120)
    ordered = sorted(samples)
    print(f"list of {count} running processes, {calls} calls ({machine()})")
    print(
        table(
            ["measure", "value"],
            [
                ["median", f"{statistics.median(samples):.2f} ms"],
                ["fastest 10 %", f"{ordered[len(ordered) // 10]:.2f} ms"],
                ["answer text", f"{size} bytes"],
            ],
        )
    )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 300,
        int(sys.argv[2]) if len(sys.argv) > 2 else 200,
    )
