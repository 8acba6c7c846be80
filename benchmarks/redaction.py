"""Redaction cost: a 100-line tail read through the supervisor, masked (an agent's
session) against raw (the person's), same process, same log, interleaved.

Run by hand: ``uv run python benchmarks/redaction.py [--samples N]``. The goal: a masked
100-line tail costs at most 1.2x the raw one when nothing in it is secret (the common
case). Also printed: the same with 10 secrets in the tail, and the masking alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from process_mcp.core import Settings
from process_mcp.core.logs.query import LogQuery
from process_mcp.core.logs.redact import Redactor
from process_mcp.core.options import StartRequest
from process_mcp.core.waiting import WaitCondition
from process_mcp.supervisor.client import SupervisorClient
from process_mcp.supervisor.paths import SupervisorPaths
from process_mcp.supervisor.remote import RecordMirror, RemoteManager
from process_mcp.supervisor.service import ProcessService
from process_mcp.supervisor.transport import SupervisorServer

WRITER = (
    "import sys\n"
    "secret = sys.argv[1] == 'secrets'\n"
    "for i in range(1000):\n"
    "    tail = ' token=ghp_' + 'A1b2C3d4' * 5 if secret and i % 10 == 0 else ''\n"
    "    print(f'[{i:05d}] GET /api/items/{i} 200 in {i % 97} ms  user=u{i % 13}' + tail)\n"
)


async def session(server: SupervisorServer, kind: str, folder: str) -> RemoteManager:
    remote = RemoteManager(RecordMirror(), folder_fallback=lambda: folder)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    await server.connect_local(theirs)
    remote.client = await SupervisorClient.connect(ours, kind=kind, on_event=remote.on_event)
    await remote.snapshot()
    return remote


async def per_call_ms(remote: RemoteManager, process_id: str, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        await remote.read_log_of(process_id, LogQuery(last_lines=100))
        times.append((time.perf_counter() - began) * 1000)
    return times


async def measure(samples: int, with_secrets: bool, root: Path) -> tuple[float, float, int]:
    state = root / ("s" if with_secrets else "n")
    settings = Settings(state_dir=state, stop_grace=1.0)
    server = SupervisorServer(ProcessService(settings), SupervisorPaths(state / "run", state))
    try:
        agent = await session(server, "mcp-stdio", str(root))
        person = await session(server, "cli", str(root))
        env = {f"APP_SETTING_{i}": f"value-{i}" for i in range(150)}
        env.update({f"SERVICE_{i}_API_KEY": f"key-{i}-0123456789abcdef" for i in range(10)})
        started = await agent.start(
            StartRequest(
                sys.executable, ["-c", WRITER, "secrets" if with_secrets else "plain"], env=env
            )
        )
        await agent.wait_for(started.id, WaitCondition(), 60)
        _, answer = await agent.read_log_of(started.id, LogQuery(last_lines=100))
        masked_ms, raw_ms = [], []
        for _ in range(samples // 20):  # interleaved blocks: drift hits both alike
            masked_ms += await per_call_ms(agent, started.id, 20)
            raw_ms += await per_call_ms(person, started.id, 20)
        return statistics.median(masked_ms), statistics.median(raw_ms), answer.redacted
    finally:
        await server.close()


def masking_alone_us(with_secrets: bool) -> float:
    token = " token=ghp_" + "A1b2C3d4" * 5
    lines = [
        f"[{i:05d}] GET /api/items/{i} 200 in {i % 97} ms"
        + (token if with_secrets and i % 10 == 0 else "")
        for i in range(100)
    ]
    redactor = Redactor.for_run(
        {f"SERVICE_{i}_API_KEY": f"key-{i}-0123456789abcdef" for i in range(10)}
    )
    began = time.perf_counter()
    for _ in range(1000):
        redactor.lines(lines)
    return (time.perf_counter() - began) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=400)
    options = parser.parse_args()
    print(
        f"redaction benchmark ({os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load {os.getloadavg()[0]:.2f}); 100-line tail through the supervisor, median ms"
    )
    print(
        "| tail                 | masked (agent) | raw (person) | ratio | masked | masking alone |"
    )
    print(
        "| -------------------- | -------------- | ------------ | ----- | ------ | ------------- |"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for with_secrets in (False, True):
            masked, raw, count = await measure(options.samples, with_secrets, Path(tmp))
            alone = masking_alone_us(with_secrets)
            name = "10 secrets in it" if with_secrets else "nothing secret"
            print(
                f"| {name:<20} | {masked:14.3f} | {raw:12.3f} | {masked / raw:5.2f} | "
                f"{count:6d} | {alone:10.1f} µs |"
            )


if __name__ == "__main__":
    asyncio.run(main())
