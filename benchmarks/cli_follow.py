"""``process-mcp logs -f``: latency from a child's write to the follower's output.

A child prints ``time.time()`` every 50 ms (N lines); ``process-mcp logs -f`` follows it
with its stdout on a pipe; each line's latency is the reader's clock minus the stamp.
Goal (issue 14): p50 ≤ 50 ms.
Run: ``uv run python benchmarks/cli_follow.py [N]``
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

CLI = [sys.executable, "-m", "process_mcp"]
CHILD = (
    "import sys, time\ntime.sleep(1)\nfor _ in range({n}):\n"
    "    print(repr(time.time()), flush=True)\n    time.sleep(0.05)"
)


def main(count: int) -> None:
    folder = tempfile.mkdtemp(prefix="cli-follow-")
    os.environ["PROCESS_MCP_RUNTIME_DIR"] = f"{folder}/run"
    os.environ["PROCESS_MCP_STATE_DIR"] = f"{folder}/state"
    os.environ["PROCESS_MCP_SUPERVISOR_IDLE"] = "1"  # it exits soon after the run
    with Link.open() as link:
        request = StartRequest(
            sys.executable, ("-c", CHILD.format(n=count)), folder=folder, keep=True
        )
        started = link.call(request).record
        follower = subprocess.Popen(
            [*CLI, "logs", "-f", started.id], stdout=subprocess.PIPE, text=True
        )
        assert follower.stdout is not None
        samples = [(time.time() - float(line)) * 1000 for line in follower.stdout]
        follower.wait()
    print(machine())
    print(
        table(
            ["lines", "p50 ms", "p99 ms", "max ms"],
            [[len(samples), *p50_p99(samples), max(samples)]],
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
