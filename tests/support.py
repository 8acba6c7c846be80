"""Helpers for end-to-end tests: the real server over stdio, driven by the official SDK client,
or by raw JSON-RPC lines when a test needs the server's pid or to send garbage."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.extension import NotificationBinding
from mcp_types import CallToolResult
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

SERVER_ARGV = [sys.executable, "-m", "process_mcp"]


class ExitParams(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    id: str
    status: str
    exit_code: int | None
    signal: str | None
    timestamp: str


@dataclass
class Client:
    session: ClientSession
    exits: list[ExitParams] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    timed_messages: list[tuple[float, Any]] = field(default_factory=list)

    async def call(self, tool: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
        return await self.session.call_tool(tool, arguments or {})

    async def ok(self, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self.call(tool, arguments)
        assert not result.is_error, result.content[0].text
        assert result.structured_content is not None
        assert json.loads(result.content[0].text) == result.structured_content
        return result.structured_content

    async def fail(self, tool: str, arguments: dict[str, Any] | None = None) -> str:
        result = await self.call(tool, arguments)
        assert result.is_error, f"expected an error from {tool}, got {result.structured_content}"
        text = result.content[0].text
        assert "Traceback" not in text
        return text


def server_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PROCESS_MCP_STOP_GRACE": "1", **extra}


@asynccontextmanager
async def mcp_client(
    *, list_roots: Any = None, cwd: str | None = None, **env: str
) -> AsyncIterator[Client]:
    """The real server as a subprocess (launched in ``cwd``), with an initialized official
    SDK client session; ``list_roots`` (the SDK's roots callback) makes the client declare
    the roots capability."""
    params = StdioServerParameters(
        command=SERVER_ARGV[0], args=SERVER_ARGV[1:], env=server_env(**env), cwd=cwd
    )
    holder: list[Client] = []

    async def on_exit(params: ExitParams) -> None:
        holder[0].exits.append(params)

    async def on_message(message: Any) -> None:
        holder[0].messages.append(message)
        holder[0].timed_messages.append((time.monotonic(), message))

    async with (
        stdio_client(params) as (read, write),
        ClientSession(
            read,
            write,
            message_handler=on_message,
            list_roots_callback=list_roots,
            notification_bindings=[
                NotificationBinding(method="process/exit", params_type=ExitParams, handler=on_exit)
            ],
        ) as session,
    ):
        holder.append(Client(session))
        await session.initialize()
        yield holder[0]


class RawServer:
    """The server as a plain subprocess speaking newline-delimited JSON-RPC."""

    def __init__(self, **env: str) -> None:
        self.proc = subprocess.Popen(
            SERVER_ARGV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=server_env(**env),
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        self._buffer = b""
        self._next_id = 1
        self.notifications: list[dict[str, Any]] = []

    def send_line(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def read_message(self, timeout: float = 20) -> dict[str, Any]:
        return json.loads(self.read_line(timeout))

    def read_line(self, timeout: float = 20) -> bytes:
        """The next newline-delimited message, unparsed (without its newline)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no message from the server in time"
            if self._selector.select(remaining):
                chunk = os.read(self.proc.stdout.fileno(), 65536)  # type: ignore[union-attr]
                assert chunk, f"server closed stdout; stderr: {self.stderr_text()}"
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = self._next_id
        self._next_id += 1
        message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send_line(json.dumps(message).encode())
        while True:
            reply = self.read_message()
            if reply.get("id") == request_id:
                return reply
            self.notifications.append(reply)

    def initialize(self) -> dict[str, Any]:
        reply = self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"},
            },
        )
        self.send_line(
            json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
        )
        return reply

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        reply = self.request("tools/call", {"name": name, "arguments": arguments})
        assert "result" in reply, reply
        return reply["result"]

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def stderr_text(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")  # type: ignore[union-attr]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe and not pipe.closed:
                pipe.close()


class HttpServer:
    """``process-mcp --transport http`` on a free loopback port, so several clients (or
    several Inspector runs, one connection each) share one server. The token is passed in
    ``PROCESS_MCP_TOKEN`` (``--token`` is refused); ``args`` are extra flags."""

    def __init__(self, token: str, *args: str, **env: str) -> None:
        self.token = token
        self.proc = subprocess.Popen(
            [*SERVER_ARGV, "--transport", "http", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=server_env(PROCESS_MCP_TOKEN=token, **env),
        )
        self.announced = b""
        self.url = self._read_url()
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def _read_url(self) -> str:
        assert self.proc.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if selector.select(deadline - time.monotonic()):
                chunk = os.read(self.proc.stderr.fileno(), 4096)
                assert chunk, f"server exited early: {self.announced!r}"
                self.announced += chunk
                if match := re.search(
                    rb"serving MCP at http://([^:/]+|\[[^]]+\]):(\d+)/mcp", self.announced
                ):
                    return f"http://127.0.0.1:{match.group(2).decode()}/mcp"
        raise AssertionError(f"no URL announced: {self.announced!r}")

    def close(self) -> None:
        """SIGTERM, as a service manager would; the server must exit 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=20) == 0
        assert self.proc.stderr is not None
        self.proc.stderr.close()


async def wait_status(
    client: Client, process_id: str, wanted: set[str], timeout: float = 15
) -> dict[str, Any]:
    """Poll ``get-status`` until the status is one of ``wanted`` (a deadline, not a sleep)."""
    with anyio.fail_after(timeout):
        while True:
            status = await client.ok("get-status", {"id": process_id})
            if status["status"] in wanted:
                return status
            await anyio.sleep(0.05)


async def call_over_http(
    url: str, token: str, tool: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """One tool call through a fresh streamable-HTTP session of the official SDK client."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool(tool, arguments)
        assert not result.is_error, result.content[0].text
        return result.structured_content


def best_ms(action: Callable[[], object], tries: int = 3) -> float:
    """The fastest of ``tries`` runs of ``action``, in milliseconds: one slow run on a busy
    machine is noise, a frozen server is slow every time."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        action()
        best = min(best, (time.perf_counter() - started) * 1000)
    return best


HTTP_PROTOCOL = "2025-11-25"


class HttpSession:
    """One raw streamable-HTTP session (sync), for requests the SDK client will not send:
    garbage bodies, foreign Host/Origin headers, thousands of abandoned sessions."""

    def __init__(
        self, url: str, token: str, initialize: bool = True, http: Any | None = None
    ) -> None:
        """``http``: an ``httpx2.Client`` to share (thousands of sessions, few sockets);
        by default the session has its own, closed by :meth:`close`."""
        import httpx2

        self.url, self.token = url, token
        self._own_http = http is None
        self.http = http if http is not None else httpx2.Client(timeout=30)
        self.id: str | None = None
        self._next = 0
        self.initialize_result: dict[str, Any] | None = None
        if initialize:
            reply = self.request(
                "initialize",
                {
                    "protocolVersion": HTTP_PROTOCOL,
                    "capabilities": {},
                    "clientInfo": {"name": "raw-http-test", "version": "0"},
                },
            )
            assert "result" in reply, reply
            self.initialize_result = reply["result"]
            self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "MCP-Protocol-Version": HTTP_PROTOCOL,
        }
        if self.id:
            headers["Mcp-Session-Id"] = self.id
        return {**headers, **extra}

    def post_raw(self, body: bytes, **headers: str) -> Any:
        response = self.http.post(self.url, content=body, headers=self.headers(**headers))
        self.id = self.id or response.headers.get("mcp-session-id")
        return response

    def post(self, message: dict[str, Any], **headers: str) -> Any:
        return self.post_raw(json.dumps(message).encode(), **headers)

    @staticmethod
    def messages(response: Any) -> list[dict[str, Any]]:
        """The JSON-RPC messages of an answer, JSON or SSE."""
        if response.headers.get("content-type", "").startswith("application/json"):
            return [response.json()]
        return [
            json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")
        ]

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next, "method": method}
        if params is not None:
            message["params"] = params
        response = self.post(message)
        for reply in self.messages(response):
            if reply.get("id") == self._next:
                return reply
        raise AssertionError(f"no answer to {method}: {response.status_code} {response.text}")

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = self.request("tools/call", {"name": tool, "arguments": arguments})["result"]
        assert not result.get("isError"), result
        return result["structuredContent"]

    def delete(self) -> int:
        return self.http.delete(self.url, headers=self.headers()).status_code

    def close(self) -> None:
        if self._own_http:
            self.http.close()
