"""Tool latency over stdio with the official SDK client: p50/p99 of ``get-status``, ``list``
and ``get-log lastLines=100``, against a trivial async echo tool of a bare MCPServer (the
SDK's own floor) measured in the same run; and ``start`` beyond that floor against a plain
``subprocess.Popen`` of the same command.

Goals: get-status p50 ≤ 1.2x the echo floor; the spawn part of ``start`` ≤ 1.5x Popen.
Run: ``uv run python benchmarks/tool_latency.py [calls]``
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from _harness import (
    BARE_SERVER,
    SERVER,
    RawServer,
    machine,
    p50_p99,
    session,
    table,
    timed_calls,
)


def popen_ms(argv: list[str], count: int) -> list[float]:
    """Plain Popen of the same command, with the same pipes and session, many alive at once
    (as under the server), then all killed and reaped."""
    samples, procs = [], []
    for _ in range(count):
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        samples.append((time.perf_counter() - started) * 1000)
        procs.append(proc)
    for proc in procs:
        proc.kill()
        proc.communicate()
    return samples


async def main(count: int) -> None:
    rows = []
    async with session(BARE_SERVER) as bare:
        echo = await timed_calls(lambda: bare.call_tool("echo", {"text": "hi"}), count)
    floor = p50_p99(echo)[0]
    rows.append(["echo (bare MCPServer, floor)", *p50_p99(echo), 1.0])

    async with session(SERVER) as client:
        chatty = await client.call_tool(
            "start", {"command": "sh", "args": ["-c", "seq 1 100000; exec sleep 600"]}
        )
        ident = chatty.structured_content["id"]
        for _ in range(9):
            await client.call_tool("start", {"command": "sleep", "args": ["600"]})
        while (await client.call_tool("get-log", {"id": ident, "lastLines": 1})).structured_content[
            "lines"
        ] != ["100000"]:
            await asyncio.sleep(0.05)
        cases = {
            "get-status": lambda: client.call_tool("get-status", {"id": ident}),
            "list (10 processes)": lambda: client.call_tool("list", {}),
            "get-log lastLines=100 (100k-line log)": lambda: client.call_tool(
                "get-log", {"id": ident, "lastLines": 100}
            ),
            "start sleep 600": lambda: client.call_tool(
                "start", {"command": "sleep", "args": ["600"]}
            ),
        }
        for name, call in cases.items():
            samples = await timed_calls(
                call, count if not name.startswith("start") else min(count, 300)
            )
            p50, p99 = p50_p99(samples)
            rows.append([name, p50, p99, p50 / floor])
        start_p50 = rows[-1][1]

    popen = p50_p99(popen_ms(["sleep", "600"], 300))[0]
    print(f"tool latency over stdio, {count} calls each ({machine()})")
    print(table(["call", "p50 ms", "p99 ms", "p50 x echo floor"], rows))
    beyond = start_p50 - floor
    print()
    print(
        table(
            ["spawn part", "ms", "x Popen"],
            [
                ["Popen(sleep 600), 2 pipes + setsid", popen, 1.0],
                ["start p50 - echo floor", beyond, beyond / popen],
            ],
        )
    )


def raw_ms(server: RawServer, tool: str, arguments: dict, count: int) -> list[float]:
    """Milliseconds per call with a bare JSON-RPC client: the server's own cost, without the
    SDK client's validation of every answer against the tool's output schema."""
    for _ in range(20):
        server.request("tools/call", {"name": tool, "arguments": arguments})
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        server.request("tools/call", {"name": tool, "arguments": arguments})
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def raw_table(count: int) -> None:
    bare = RawServer(BARE_SERVER)
    floor = p50_p99(raw_ms(bare, "echo", {"text": "hi"}, count))
    bare.proc.stdin.close()  # type: ignore[union-attr]
    bare.proc.wait()
    ours = RawServer(SERVER)
    chatty = ours.call("start", {"command": "sh", "args": ["-c", "seq 1 100000; exec sleep 600"]})
    for _ in range(9):
        ours.call("start", {"command": "sleep", "args": ["600"]})
    while ours.call("get-log", {"id": chatty["id"], "lastLines": 1})["lines"] != ["100000"]:
        time.sleep(0.05)
    rows = [["echo (bare MCPServer, floor)", *floor, 1.0]]
    for name, tool, arguments in [
        ("get-status", "get-status", {"id": chatty["id"]}),
        ("list (10 processes)", "list", {}),
        (
            "get-log lastLines=100 (100k-line log)",
            "get-log",
            {"id": chatty["id"], "lastLines": 100},
        ),
    ]:
        p50, p99 = p50_p99(raw_ms(ours, tool, arguments, count))
        rows.append([name, p50, p99, p50 / floor[0]])
    start = p50_p99(raw_ms(ours, "start", {"command": "sleep", "args": ["600"]}, min(count, 300)))
    rows.append(["start sleep 600", *start, start[0] / floor[0]])
    ours.proc.stdin.close()  # type: ignore[union-attr]
    ours.proc.wait()
    popen = p50_p99(popen_ms(["sleep", "600"], 300))[0]
    print()
    print("the same with a bare JSON-RPC client (the server's own cost, no client validation)")
    print(table(["call", "p50 ms", "p99 ms", "p50 x echo floor"], rows))
    beyond = start[0] - floor[0]
    print()
    print(
        table(
            ["spawn part (bare client)", "ms", "x Popen"],
            [
                ["Popen(sleep 600), 2 pipes + setsid", popen, 1.0],
                ["start p50 - echo floor", beyond, beyond / popen],
            ],
        )
    )


async def core_start_table() -> None:
    """The core's ``start`` in-process, against plain Popen of the same command: what the
    spawn path costs without the protocol around it."""
    import statistics
    import tempfile
    from pathlib import Path

    from process_mcp.core import ProcessManager, Settings
    from process_mcp.core.options import StartRequest

    manager = ProcessManager(Settings(state_dir=Path(tempfile.mkdtemp())))
    samples = []
    try:
        for _ in range(300):
            started = time.perf_counter()
            await manager.start(StartRequest("sleep", ["600"]))
            samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0)
    finally:
        await manager.shutdown()
    core = statistics.median(samples)
    popen = statistics.median(popen_ms(["sleep", "600"], 300))
    print()
    print(
        table(
            ["spawn path, in-process", "ms", "x Popen"],
            [
                ["Popen(sleep 600), 2 pipes + setsid", popen, 1.0],
                ["ProcessManager.start (same command)", core, core / popen],
            ],
        )
    )


if __name__ == "__main__":
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    asyncio.run(main(calls))
    raw_table(calls)
    asyncio.run(core_start_table())
