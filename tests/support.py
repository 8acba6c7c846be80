"""Helpers for end-to-end tests: the real server over stdio, driven by the official SDK client,
or by raw JSON-RPC lines when a test needs the server's pid or to send garbage.

:func:`mcp_client` serves in-process by default: the server's own code path (flags and
variables checked as ``process-mcp`` checks them, the backend in either mode, the stdio
runner with its relay and malformed-line answers) on JSON lines over memory, with no
interpreter start and no SDK import to pay (about 2.5 s of CPU each). The supervisor, in
supervisor mode, is still a real process. Pass ``process=True`` when the process boundary
is what a test is about (the server's pid, its signals, its exit, its environment), or mark
the test (or module) ``pytest.mark.server_process``; set ``PROCESS_MCP_TEST_SERVERS=subprocess``
to run every such client against a real server subprocess (the slow, thorough run)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
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
SERVERS_VARIABLE = "PROCESS_MCP_TEST_SERVERS"  # "subprocess": every mcp_client is a real process
SHUTDOWN_DEADLINE = 60.0  # seconds an in-process server gets to stop what it runs, then exit


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


SERVER_PROCESS_MARK = "server_process"
"""``pytestmark = pytest.mark.server_process`` (or on one test): every :func:`mcp_client`
of the test is a real server process (conftest's ``server_kind`` fixture reads it)."""

_marked_for_processes = False


def use_server_processes(marked: bool) -> None:
    """Whether the running test asked for real server processes (by its mark)."""
    global _marked_for_processes
    _marked_for_processes = marked


def subprocess_servers() -> bool:
    """Whether :func:`mcp_client` starts real server processes in the running test: it is
    marked ``server_process``, or ``PROCESS_MCP_TEST_SERVERS=subprocess`` is set."""
    chosen = os.environ.get(SERVERS_VARIABLE, "").strip().lower() == "subprocess"
    return chosen or _marked_for_processes


@asynccontextmanager
async def mcp_client(
    *, list_roots: Any = None, cwd: str | None = None, process: bool | None = None, **env: str
) -> AsyncIterator[Client]:
    """The server (launched in ``cwd``, with ``env`` added to its environment), with an
    initialized official SDK client session; ``list_roots`` (the SDK's roots callback)
    makes the client declare the roots capability. In-process unless ``process`` (or
    the test's ``server_process`` mark, or ``PROCESS_MCP_TEST_SERVERS=subprocess``; see the
    module docstring). A bearer token in
    ``env`` always means a real process: the server removes it from its own environment,
    which only a process of its own shows."""
    if process is None:
        process = subprocess_servers() or "PROCESS_MCP_TOKEN" in env
    transport = stdio_client_of(cwd, env) if process else in_process_server(cwd, env)
    holder: list[Client] = []

    async def on_exit(params: ExitParams) -> None:
        holder[0].exits.append(params)

    async def on_message(message: Any) -> None:
        holder[0].messages.append(message)
        holder[0].timed_messages.append((time.monotonic(), message))

    async with (
        transport as (read, write),
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


def stdio_client_of(cwd: str | None, env: dict[str, str]) -> Any:
    """The SDK's stdio transport to a real server subprocess."""
    params = StdioServerParameters(
        command=SERVER_ARGV[0], args=SERVER_ARGV[1:], env=server_env(**env), cwd=cwd
    )
    return stdio_client(params)


class TextPipe:
    """One direction of an in-memory stdio: ``write`` whole lines (what the SDK's stdio
    writers do: one JSON message and its newline per call), iterate to read them; iteration
    ends once :meth:`close` is called and what was written has been read."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[str](math.inf)

    async def write(self, text: str) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._send.send(text)

    async def flush(self) -> None:
        pass

    def close(self) -> None:
        self._send.close()

    def __aiter__(self) -> TextPipe:
        return self

    async def __anext__(self) -> str:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None


_OPEN_SERVERS: list[tuple[dict[str, str], dict[str, str | None]]] = []
"""The environment changes of the in-process servers open now (innermost last), each with
the values they replaced."""


def _set_variable(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@contextlib.contextmanager
def server_environment(changes: dict[str, str]) -> Iterator[None]:
    """``os.environ`` as a server launched from here with ``changes`` would have it, until
    the block ends. An in-process server reads its variables, and captures what its
    processes inherit, as it opens (as the real one does at start); what it reads later
    (a supervisor started again after one died) it reads from here too. A server opened
    while another is open starts from this process's own environment, not the other's
    changes; the innermost open server's environment holds until it closes."""
    touched = set(changes).union(*(outer for outer, _ in _OPEN_SERVERS))
    before = {name: os.environ.get(name) for name in touched}
    for outer, replaced in reversed(_OPEN_SERVERS):
        for name in outer:
            _set_variable(name, replaced[name])
    replaced = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    _OPEN_SERVERS.append((changes, replaced))
    try:
        yield
    finally:
        _OPEN_SERVERS.pop()
        for name, value in before.items():
            _set_variable(name, value)


@asynccontextmanager
async def in_process_server(cwd: str | None, env: dict[str, str]) -> AsyncIterator[tuple[Any, Any]]:
    """``process-mcp`` (stdio) served in this process over :class:`TextPipe` lines: its
    configuration, backend (either mode) and stdio runner are the real server's, and its
    messages are JSON text both ways, as on a pipe. Leaving the block is the client going
    away: end of input, after which the server stops what its session owns and closes its
    backend, as the real one does before it exits; that must finish within
    ``SHUTDOWN_DEADLINE``."""
    from mcp.client.stdio import _parse_line

    from process_mcp.server import main as server_main
    from process_mcp.server.app import ProcessMcpServer

    launch_dir = os.path.realpath(cwd or os.getcwd())  # what the server's os.getcwd() says
    to_server, to_client = TextPipe(), TextPipe()
    client_in, client_read = anyio.create_memory_object_stream[Any](math.inf)
    client_write, client_out = anyio.create_memory_object_stream[Any](math.inf)
    with server_environment({"PROCESS_MCP_STOP_GRACE": "1", **env}):
        config = server_main._configure(server_main._parse([]), None)
        backend = await server_main._open_backend(config)
        try:
            backend.default_folder = launch_dir
            app = ProcessMcpServer(backend, launch_dir)
        except BaseException:
            await backend.close()
            raise
        served = anyio.Event()

        async def serve() -> None:
            try:
                await app.run_stdio(to_server, to_client)
            finally:
                with anyio.CancelScope(shield=True):
                    await backend.close()
                to_client.close()
                served.set()

        async def lines_to_client() -> None:
            async with client_in:
                async for line in to_client:
                    with contextlib.suppress(anyio.BrokenResourceError):  # the client left
                        await client_in.send(_parse_line(line))

        async def messages_to_server() -> None:
            async with client_out:
                async for message in client_out:
                    text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await to_server.write(text + "\n")

        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            group.start_soon(lines_to_client)
            group.start_soon(messages_to_server)
            try:
                yield client_read, client_write
            finally:
                client_write.close()
                to_server.close()
                with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_DEADLINE):
                    await served.wait()
                group.cancel_scope.cancel()
                assert served.is_set(), f"the server did not exit {SHUTDOWN_DEADLINE:g} s after EOF"


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


# ------------------------------------------------------- the supervisor's service, in process
@asynccontextmanager
async def service_supervisor(tmp_path: Any) -> AsyncIterator[Any]:
    """The supervisor's service behind its transport, in this process, with the test's own
    state and runtime folders (no lock taken, no socket bound: sessions join by socket
    pair, see :func:`service_session`). For tests of the service, not of the process
    boundary. Closed, with every process it holds stopped, on leaving the block."""
    from process_mcp.core import Settings
    from process_mcp.supervisor.paths import SupervisorPaths
    from process_mcp.supervisor.service import ProcessService
    from process_mcp.supervisor.transport import SupervisorServer

    settings = Settings(state_dir=tmp_path / "state", stop_grace=1.0, exit_drain_grace=0.5)
    paths = SupervisorPaths(runtime_dir=tmp_path / "run", state_dir=tmp_path / "state")
    server = SupervisorServer(ProcessService(settings), paths)
    try:
        yield server
    finally:
        await server.close()


async def service_session(server: Any, folder: Any, kind: str = "test") -> Any:
    """A front-end's session on ``server`` whose default folder is ``folder``, with its own
    record mirror, snapshot loaded: a ``RemoteManager`` as an MCP front-end holds one."""
    import socket

    from process_mcp.supervisor.client import SupervisorClient
    from process_mcp.supervisor.remote import RecordMirror, RemoteManager

    remote = RemoteManager(RecordMirror(), folder_fallback=lambda: str(folder))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    await server.connect_local(theirs)
    remote.client = await SupervisorClient.connect(ours, kind=kind, on_event=remote.on_event)
    await remote.snapshot()
    return remote


# A person's policy file the rails tests share: one deny rule, one ask rule.
SAMPLE_POLICY = """\
version = 1

[[rule]]
id = "no-deploy"
match = ["npm", "run", "deploy"]
decision = "deny"
reason = "Production deploys are the person's job."

[[rule]]
id = "slow-sleep"
match = ["sleep", "301"]
decision = "ask"
reason = "Sleeps long."
"""
