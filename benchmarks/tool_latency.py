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

from _harness import BARE_SERVER, SERVER, machine, p50_p99, session, table, timed_calls


def popen_ms(argv: list[str], count: int) -> list[float]:
    samples = []
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
            "start true": lambda: client.call_tool("start", {"command": "true"}),
        }
        for name, call in cases.items():
            samples = await timed_calls(call, count if name != "start true" else min(count, 300))
            p50, p99 = p50_p99(samples)
            rows.append([name, p50, p99, p50 / floor])
        start_p50 = rows[-1][1]

    popen = p50_p99(popen_ms(["true"], 300))[0]
    print(f"tool latency over stdio, {count} calls each ({machine()})")
    print(table(["call", "p50 ms", "p99 ms", "p50 x echo floor"], rows))
    beyond = start_p50 - floor
    print()
    print(
        table(
            ["spawn part", "ms", "x Popen"],
            [
                ["Popen(true) with 2 pipes + setsid", popen, 1.0],
                ["start p50 - echo floor", beyond, beyond / popen],
            ],
        )
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
