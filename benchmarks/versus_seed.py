"""The supervisor hop's costs, side by side with the original TypeScript server in one run.

Both servers are driven over stdio by the official MCP SDK client, in alternating rounds
so that load drifts hit both alike. The original is run from a clone the caller made
(``bun run src/index.ts`` in it, after ``bun install``): this script never downloads
anything. Ours runs as a front-end of its own supervisor, in a temporary state dir.

Rows (goals from the scale issue):

* ``get-status`` p50 (≤ 4x the original's), ``start`` of ``sleep`` p50 (≤ 4x);
* ``get-log lastLines=100`` p50 after a 300 MB flood (3 M lines of 101 bytes; ≤ 1.5x);
* resident memory with 300 ``sleep`` running: our front-end + supervisor against the
  original's one process (≤ 1.3x);
* ``list`` p50 with 300 running, ours with 5,000 ended runs in the same folder (made first
  through a second supervisor session, as other agents' work would be), against the
  original's ``list`` of 300 (≤ 2x), and our answer's bytes per running process (≤ 130).

Run: ``uv run python benchmarks/versus_seed.py SEED_DIR [--bun PATH] [--calls 300]
[--rounds 2] [--ended 5000]`` (``SEED_DIR``: a clone of Kruceo/process-mcp with its
``node_modules`` installed; ``--bun`` defaults to ``bun`` on PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from _harness import SERVER, machine, table, timed_calls
from mcp import ClientSession, StdioServerParameters, stdio_client
from supervisor_latency import rss_mib, stop_supervisor

from process_mcp.core.options import StartRequest
from process_mcp.supervisor.client import ensure_supervisor
from process_mcp.supervisor.paths import SupervisorPaths
from process_mcp.supervisor.remote import RecordMirror, RemoteManager

SEED_MARK = "6001"  # the original's sleeps run `sleep 6001`: found and ended afterwards
FLOOD = 'yes "$(printf %0100d 0)" | head -n 3000000; echo DONE; exec sleep {mark}'
Call = Callable[[], Awaitable[Any]]


class Server:
    """One MCP server over stdio: its argv, folder and how to read its answers."""

    def __init__(self, name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.name, self.argv, self.cwd, self.env = name, argv, cwd, env

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ClientSession]:
        params = StdioServerParameters(
            command=self.argv[0], args=self.argv[1:], env=self.env, cwd=str(self.cwd)
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            yield client

    @property
    def seed(self) -> bool:
        return self.name == "original"

    async def start(self, client: ClientSession, command: str, args: list[str]) -> str:
        result = await client.call_tool("start", {"command": command, "args": args})
        if self.seed:
            found = re.search(r"- ID: (\S+)", result.content[0].text)  # type: ignore[union-attr]
            assert found, result
            return found.group(1)
        assert result.structured_content is not None, result
        return str(result.structured_content["id"])

    async def last_line(self, client: ClientSession, ident: str) -> str:
        result = await client.call_tool("get-log", {"id": ident, "lastLines": 1})
        if self.seed:
            return result.content[0].text.rstrip().rsplit("\n", 1)[-1]  # type: ignore[union-attr]
        lines = (result.structured_content or {}).get("lines") or [""]
        return str(lines[-1])

    def sleep_args(self) -> list[str]:
        return [SEED_MARK if self.seed else "6000"]


def children(match: str) -> list[int]:
    """Pids of our direct children whose command line contains ``match``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and match in cmdline:
            found.append(int(name))
    return found


def end_seed_leftovers() -> int:
    """The original leaves its children running when it exits: end every ``sleep 6001``
    and every flood of ours (their command lines carry the mark)."""
    ended = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (cmdline[:2] == [b"sleep", SEED_MARK.encode()]) or (
            len(cmdline) > 2
            and b"head -n 3000000" in cmdline[2]
            and SEED_MARK.encode() in cmdline[2]
        ):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(name), signal.SIGKILL)
                ended += 1
    return ended


def server_rss(server: Server, paths: SupervisorPaths) -> float:
    match = "src/index.ts" if server.seed else "process_mcp"
    total = sum(rss_mib(pid) for pid in children(match))
    if not server.seed:
        holder = paths.holder_pid()
        assert holder is not None
        total += rss_mib(holder)
    return total


async def latency_round(server: Server, calls: int, starts: int) -> dict[str, list[float]]:
    async with server.session() as client:
        ident = await server.start(client, "sleep", server.sleep_args())
        status = await timed_calls(lambda: client.call_tool("get-status", {"id": ident}), calls)
        spawn = await timed_calls(
            lambda: client.call_tool("start", {"command": "sleep", "args": server.sleep_args()}),
            starts,
            warmup=5,
        )
    end_seed_leftovers()
    return {"get-status": status, "start": spawn}


async def flood_round(server: Server, calls: int) -> list[float]:
    async with server.session() as client:
        mark = SEED_MARK if server.seed else "6000"
        ident = await server.start(client, "sh", ["-c", FLOOD.format(mark=mark)])
        deadline = time.monotonic() + 600
        while await server.last_line(client, ident) != "DONE":
            assert time.monotonic() < deadline, "the flood did not end in 10 minutes"
            await asyncio.sleep(0.5)
        tail = await timed_calls(
            lambda: client.call_tool("get-log", {"id": ident, "lastLines": 100}), calls
        )
    end_seed_leftovers()
    return tail


async def many_round(
    server: Server, calls: int, running: int, paths: SupervisorPaths
) -> tuple[float, list[float], float]:
    """(resident MiB, list samples, list answer bytes) with ``running`` sleeps."""
    async with server.session() as client:
        for _ in range(running):
            await server.start(client, "sleep", server.sleep_args())
        await asyncio.sleep(1.5)  # background work (our port watch) settles, as in use
        rss = server_rss(server, paths)
        samples = await timed_calls(lambda: client.call_tool("list", {}), calls)
        answer = await client.call_tool("list", {})
        size = len(answer.content[0].text.encode())  # type: ignore[union-attr]
    end_seed_leftovers()
    return rss, samples, size


async def ended_runs(count: int, folder: Path, paths: SupervisorPaths, batch: int = 50) -> None:
    """``count`` ended runs of ``true`` in ``folder`` through another supervisor session."""
    remote = RemoteManager(RecordMirror(), folder_fallback=lambda: str(folder))
    remote.client = await ensure_supervisor("bench", paths=paths, on_event=remote.on_event)
    await remote.snapshot()
    done = 0
    while done < count:
        size = min(batch, count - done)
        started = await asyncio.gather(*(remote.start(StartRequest("true")) for _ in range(size)))
        await remote.wait_for_exits([record.id for record in started], True, 60.0)
        done += size
    await remote.client.close()  # a session that ends leaves its ended runs behind


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


async def main(options: argparse.Namespace) -> None:
    seed_dir = Path(options.seed).resolve()
    bun = options.bun or shutil.which("bun")
    if not bun or not (seed_dir / "src" / "index.ts").is_file():
        sys.exit("give the original's clone (with src/index.ts, after `bun install`) and bun")
    with tempfile.TemporaryDirectory(prefix="pmcp-vs-") as tmp:
        base = Path(tmp)
        work = base / "work"
        work.mkdir()
        env = {
            **os.environ,
            "PROCESS_MCP_RUNTIME_DIR": str(base / "run"),
            "PROCESS_MCP_STATE_DIR": str(base / "state"),
            "PROCESS_MCP_SUPERVISOR_IDLE": "600",
            "PROCESS_MCP_STOP_GRACE": "1",
        }
        env.pop("PROCESS_MCP_STANDALONE", None)
        os.environ.update({k: v for k, v in env.items() if k.startswith("PROCESS_MCP_")})
        paths = SupervisorPaths.from_env()
        ours = Server("ours", [*SERVER], work, env)
        seed = Server("original", [bun, "run", str(seed_dir / "src" / "index.ts")], work, env)
        pair = (ours, seed)
        try:
            lat: dict[str, dict[str, list[float]]] = {
                s.name: {"get-status": [], "start": []} for s in pair
            }
            for _ in range(options.rounds):
                for server in pair:
                    for key, samples in (await latency_round(server, options.calls, 100)).items():
                        lat[server.name][key] += samples
            tails = {s.name: await flood_round(s, options.calls) for s in pair}
            await ended_runs(options.ended, work, paths)
            many = {s.name: await many_round(s, options.calls, 300, paths) for s in pair}
        finally:
            stop_supervisor(paths)
            end_seed_leftovers()
    rows = []

    def row(what: str, ours_value: float, seed_value: float, goal: float, unit: str) -> None:
        ratio = ours_value / seed_value
        verdict = "met" if ratio <= goal else "MISSED"
        rows.append(
            [
                what,
                f"{ours_value:.2f} {unit}",
                f"{seed_value:.2f} {unit}",
                f"{ratio:.2f}x",
                f"≤ {goal}x {verdict}",
            ]
        )

    row(
        "get-status p50",
        p50(lat["ours"]["get-status"]),
        p50(lat["original"]["get-status"]),
        4,
        "ms",
    )
    row("start p50", p50(lat["ours"]["start"]), p50(lat["original"]["start"]), 4, "ms")
    row(
        "get-log lastLines=100 after 300 MB, p50",
        p50(tails["ours"]),
        p50(tails["original"]),
        1.5,
        "ms",
    )
    row("resident memory, 300 running", many["ours"][0], many["original"][0], 1.3, "MiB")
    row(
        f"list p50, 300 running (+{options.ended} ended, ours)",
        p50(many["ours"][1]),
        p50(many["original"][1]),
        2,
        "ms",
    )
    print(f"process-mcp vs the original, side by side ({machine()})")
    print(table(["measure", "process-mcp", "original", "ratio", "goal"], rows))
    print(
        f"\nlist answer: {many['ours'][2]} bytes = {many['ours'][2] / 300:.0f} bytes per running "
        f"process (goal ≤ 130); the original's: {many['original'][2]} bytes"
    )
    print(json.dumps({"calls": options.calls, "rounds": options.rounds, "ended": options.ended}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seed", help="a clone of the original, after `bun install`")
    parser.add_argument("--bun", help="the bun executable (default: bun on PATH)")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ended", type=int, default=5000)
    asyncio.run(main(parser.parse_args()))
