"""Flat memory: a real supervisor's resident memory after 10,000 short runs against its
resident memory after 100 (goal: within 30 MB). Ended processes leave its memory for the
history beyond 1,000 held, so memory stops growing with the runs.

One session (a RemoteManager over the supervisor's socket, no MCP) starts ``true`` in
batches and waits for each batch to end; RSS (VmRSS of the supervisor's pid) is read after
100, 1,000, 2,000, 5,000 and 10,000 runs, and the records it holds at each point.
Everything lives in a temporary state dir; the supervisor is stopped at the end.

Run: ``uv run python benchmarks/flat_memory.py [runs] [batch]``
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from _harness import machine, table
from supervisor_latency import rss_mib, stop_supervisor

from process_mcp.core.options import StartRequest
from process_mcp.supervisor.client import ensure_supervisor
from process_mcp.supervisor.paths import SupervisorPaths
from process_mcp.supervisor.remote import RecordMirror, RemoteManager

CHECKPOINTS = (100, 1000, 2000, 5000, 10_000)


async def run(total: int, batch: int, paths: SupervisorPaths) -> list[list[object]]:
    remote = RemoteManager(RecordMirror())
    remote.client = await ensure_supervisor("bench", paths=paths, on_event=remote.on_event)
    await remote.snapshot()
    pid = paths.holder_pid()
    assert pid is not None
    rows: list[list[object]] = []
    done, began = 0, time.perf_counter()
    marks = [mark for mark in CHECKPOINTS if mark <= total] or [total]
    while done < total:
        size = min(batch, total - done)
        started = await asyncio.gather(*(remote.start(StartRequest("true")) for _ in range(size)))
        await remote.wait_for_exits([record.id for record in started], True, 60.0)
        done += size
        if marks and done >= marks[0]:
            marks.pop(0)
            await asyncio.sleep(0.5)  # let the history's worker catch up
            rows.append([done, rss_mib(pid), len(remote.records()), time.perf_counter() - began])
    await remote.end_session()
    return rows


async def main(total: int, batch: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pmcp-flat-") as tmp:
        base = Path(tmp)
        os.environ["PROCESS_MCP_RUNTIME_DIR"] = str(base / "run")
        os.environ["PROCESS_MCP_STATE_DIR"] = str(base / "state")
        os.environ["PROCESS_MCP_SUPERVISOR_IDLE"] = "600"
        paths = SupervisorPaths.from_env()
        try:
            rows = await run(total, batch, paths)
        finally:
            stop_supervisor(paths)
    first, last = rows[0][1], rows[-1][1]
    assert isinstance(first, float) and isinstance(last, float)
    print(f"supervisor resident memory over {total} short runs ({machine()})")
    print(table(["runs", "RSS MiB", "records held (mirror)", "elapsed s"], rows))
    growth = (last - first) * 1024 * 1024 / 1e6
    print(f"\nRSS after {rows[-1][0]} runs - after {rows[0][0]}: {growth:.1f} MB (goal ≤ 30 MB)")


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 10_000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 50,
        )
    )
