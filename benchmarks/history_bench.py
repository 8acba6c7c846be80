"""Cost of the history database's calls with many runs recorded.

    uv run python benchmarks/history_bench.py [RUNS] [STARTS]

Records RUNS runs (default 10000) of 50 commands, then times each query. Prints p50 and
p99/max in milliseconds. A p99 of a write includes SQLite's periodic WAL checkpoint.

Then times ``ProcessManager.start`` of ``true`` STARTS times (default 200, one at a time,
each waited for) with the history on, and off (its database made unopenable, so the
manager goes on without it), in one process: the cost the history adds to a start.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from process_mcp.core import ProcessManager, Settings
from process_mcp.core.history import DB_NAME, History
from process_mcp.core.options import StartRequest


def report(name: str, times: list[float]) -> None:
    times = sorted(times)
    p99 = times[min(int(len(times) * 0.99), len(times) - 1)]
    print(f"{name:32} p50 {statistics.median(times) * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms")


def timed(call: Callable[[], object], repeat: int = 200) -> list[float]:
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return times


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as state, History.in_state_dir(Path(state)) as history:
        starts, ends = [], []
        for i in range(count):
            begin = time.perf_counter()
            run = history.record_start(
                f"p{i}",
                command="npm",
                args=["test", str(i % 50)],
                cwd="/project",
                label=f"l{i % 50}",
                supervisor="bench",
            )
            middle = time.perf_counter()
            assert run is not None
            status = "crashed" if i % 5 == 0 else "exited"
            history.record_end(run.id, status=status, exit_code=0, signal=None)
            starts.append(middle - begin)
            ends.append(time.perf_counter() - middle)
        print(f"{count} runs recorded")
        report("record_start", starts)
        report("record_end (log sized on disk)", ends)
        report(
            "stats (same command and cwd)",
            timed(lambda: history.stats("npm", ["test", "3"], "/project")),
        )
        report("enforce_cap (everything fits)", timed(lambda: history.enforce_cap(1 << 40)))
        report("runs(limit=20)", timed(lambda: history.runs()))
        report("runs('l7') by label", timed(lambda: history.runs("l7")))
        report("find(process id)", timed(lambda: history.find(f"p{count // 2}")))
        report("running_supervisors", timed(history.running_supervisors))
        size = sum(path.stat().st_size for path in Path(state).glob("history.sqlite3*"))
        print(f"database size {size / 1e6:.1f} MB ({size / count:.0f} bytes per run)")


async def start_latency(state: Path, starts: int) -> list[float]:
    manager = ProcessManager(Settings(state_dir=state))
    times = []
    try:
        for i in range(starts):
            begin = time.perf_counter()
            record = await manager.start(StartRequest("true", [str(i % 5)]))
            times.append(time.perf_counter() - begin)
            await manager.wait_ended(record.id)
    finally:
        await manager.shutdown()
    return times


def compare_starts(starts: int) -> None:
    logging.disable(logging.WARNING)  # the disabled history's one warning
    with tempfile.TemporaryDirectory() as on, tempfile.TemporaryDirectory() as off:
        (Path(off) / DB_NAME).mkdir()  # a folder where the database should be: disabled
        for name, state in [("on", on), ("off", off)] * 3:
            times = asyncio.run(start_latency(Path(state), starts))
            report(f"start with history {name}", times)


if __name__ == "__main__":
    main()
    compare_starts(int(sys.argv[2]) if len(sys.argv) > 2 else 200)
