"""Abandoned and closed HTTP sessions must not slow the server down.

``start {"command": "true"}`` p50/p99 and server RSS, measured by one steady client on
a fresh ``--transport http`` server, then after

1. N sessions opened and abandoned (initialize, ``list``, a resource subscription,
   ``logging/setLevel``; never closed), still within the 30-minute idle timeout;
2. N more sessions opened the same way and closed with DELETE;
3. on a second server with a short idle timeout (``PROCESS_MCP_HTTP_SESSION_IDLE``),
   N abandoned sessions once they have expired.

Goal: start p50 within 1.2x of the fresh server after each. The server's CPU time per
start is shown too: on a busy machine it is the steadier measure of the same cost.
Run: ``uv run python benchmarks/http_sessions.py [sessions] [idle_seconds]``
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from typing import Any

import httpx2
import psutil
from _harness import machine, p50_p99, table

TOKEN = "bench-token-" + os.urandom(8).hex()
PROTOCOL = "2025-11-25"


class Session:
    """One raw streamable-HTTP session (SSE answers parsed by hand: no SDK client per
    session, so opening thousands stays cheap on the client side)."""

    def __init__(self, http: httpx2.Client, url: str) -> None:
        self.http, self.url = http, url
        self.id: str | None = None
        self._next = 0
        reply = self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            },
        )
        assert "result" in reply, reply
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "MCP-Protocol-Version": PROTOCOL,
        }
        if self.id:
            headers["Mcp-Session-Id"] = self.id
        return headers

    def post(self, message: dict[str, Any]) -> httpx2.Response:
        response = self.http.post(self.url, content=json.dumps(message), headers=self.headers())
        self.id = self.id or response.headers.get("mcp-session-id")
        return response

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        message = {"jsonrpc": "2.0", "id": self._next, "method": method, "params": params}
        response = self.post(message)
        for line in response.text.splitlines():
            if line.startswith("data:"):
                data = json.loads(line[5:])
                if data.get("id") == self._next:
                    return data
        return response.json()

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        reply = self.request("tools/call", {"name": tool, "arguments": arguments})
        assert "result" in reply, reply
        result = reply["result"]
        assert not result.get("isError"), result
        return result["structuredContent"]

    def close(self) -> None:
        self.http.delete(self.url, headers=self.headers())


def start_server(idle: float) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "PROCESS_MCP_TOKEN": TOKEN,
        "PROCESS_MCP_HTTP_SESSION_IDLE": f"{idle:g}",
        "PROCESS_MCP_STOP_GRACE": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "process_mcp", "--transport", "http", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    seen, deadline = b"", time.monotonic() + 30
    while time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 1)[0]:
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, seen
            seen += chunk
            if match := re.search(rb"(http://127\.0\.0\.1:\d+/mcp)", seen):
                return proc, match.group(1).decode()
    raise SystemExit(f"server did not announce its URL: {seen!r}")


def measure(steady: Session, rss_of: psutil.Process, count: int = 200) -> list[Any]:
    """start p50 and p99 (ms), the server's CPU time per start (ms: what other load on
    the machine cannot inflate), and its RSS."""
    samples = []
    cpu = rss_of.cpu_times()
    for _ in range(count):
        started = time.perf_counter()
        steady.call("start", {"command": "true"})
        samples.append((time.perf_counter() - started) * 1000)
    after = rss_of.cpu_times()
    cpu_ms = (after.user + after.system - cpu.user - cpu.system) * 1000 / count
    p50, p99 = p50_p99(samples)
    return [p50, p99, cpu_ms, f"{rss_of.memory_info().rss / 2**20:.0f} MB"]


def open_sessions(
    http: httpx2.Client, url: str, count: int, target: str, steady: Session, idle: float
) -> list[Session]:
    """``count`` sessions that each leave a trace in every per-session structure; the
    steady session is kept busy meanwhile so that only these can expire."""
    sessions, pinged = [], time.monotonic()
    for _ in range(count):
        session = Session(http, url)
        session.call("list", {})
        session.request("resources/subscribe", {"uri": f"process://{target}/log"})
        session.request("logging/setLevel", {"level": "debug"})
        sessions.append(session)
        if time.monotonic() - pinged > idle / 4:
            assert "result" in steady.request("ping", {})
            pinged = time.monotonic()
    return sessions


def phase(count: int, idle: float, expire: bool) -> list[list[Any]]:
    """One server: fresh, then ``count`` abandoned sessions (measured after they expire
    when ``expire``, else at once and again after ``count`` more closed with DELETE)."""
    proc, url = start_server(idle)
    rss_of = psutil.Process(proc.pid)
    rows = []
    try:
        with httpx2.Client(timeout=60) as http:
            steady = Session(http, url)
            target = steady.call("start", {"command": "sleep", "args": ["600"]})["id"]
            for _ in range(20):  # warm-up
                steady.call("start", {"command": "true"})
            fresh = measure(steady, rss_of)
            base = fresh[0]
            rows.append([f"fresh server (idle timeout {idle:g} s)", *fresh, "-"])

            t = time.perf_counter()
            open_sessions(http, url, count, target, steady, idle)
            opened_s = time.perf_counter() - t
            if expire:
                expired = time.monotonic() + idle + 2
                while time.monotonic() < expired:  # the steady session stays busy
                    assert "result" in steady.request("ping", {})
                    time.sleep(min(1.0, idle / 4))
                row = measure(steady, rss_of)
                rows.append([f"{count} abandoned, expired", *row, f"{row[0] / base:.2f}x"])
                return rows
            row = measure(steady, rss_of)
            label = f"{count} abandoned, live (opened in {opened_s:.0f} s)"
            rows.append([label, *row, f"{row[0] / base:.2f}x"])

            for session in open_sessions(http, url, count, target, steady, idle):
                session.close()
            row = measure(steady, rss_of)
            rows.append([f"+ {count} closed with DELETE", *row, f"{row[0] / base:.2f}x"])
            return rows
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main(count: int, idle: float) -> None:
    rows = phase(count, 1800, expire=False) + phase(count, idle, expire=True)
    print(f"start p50 under {count} HTTP sessions ({machine()})")
    headers = ["after", "start p50 ms", "p99 ms", "CPU ms/start", "server RSS", "p50 vs fresh"]
    print(table(headers, rows))


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 2000,
        float(sys.argv[2]) if len(sys.argv) > 2 else 5.0,
    )
