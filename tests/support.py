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
from collections.abc import AsyncIterator
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
async def mcp_client(cwd: str | None = None, **env: str) -> AsyncIterator[Client]:
    """The real server as a subprocess (launched in ``cwd``, its default folder), with an
    initialized official SDK client session."""
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
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no message from the server in time"
            if self._selector.select(remaining):
                chunk = os.read(self.proc.stdout.fileno(), 65536)  # type: ignore[union-attr]
                assert chunk, f"server closed stdout; stderr: {self.stderr_text()}"
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

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
    several Inspector runs, one connection each) share one server."""

    def __init__(self, token: str, **env: str) -> None:
        self.token = token
        self.proc = subprocess.Popen(
            [*SERVER_ARGV, "--transport", "http", "--port", "0", "--token", token],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=server_env(**env),
        )
        self.url = self._read_url()

    def _read_url(self) -> str:
        assert self.proc.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stderr, selectors.EVENT_READ)
        deadline, seen = time.monotonic() + 30, b""
        while time.monotonic() < deadline:
            if selector.select(deadline - time.monotonic()):
                chunk = os.read(self.proc.stderr.fileno(), 4096)
                assert chunk, f"server exited early: {seen!r}"
                seen += chunk
                if match := re.search(rb"(http://127\.0\.0\.1:\d+/mcp)", seen):
                    return match.group(1).decode()
        raise AssertionError(f"no URL announced: {seen!r}")

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
