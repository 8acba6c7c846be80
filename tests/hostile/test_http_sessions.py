"""HTTP sessions: a session that closes or goes idle past the timeout is forgotten
with everything kept for it; abandoned sessions do not slow the server down; the
capabilities advertised over HTTP are those advertised over stdio."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from conftest import eventually, wait_until
from support import HttpServer, HttpSession, RawServer, best_ms

from process_mcp.core import Settings
from process_mcp.server.app import ProcessMcpServer
from process_mcp.server.backend import Backend
from process_mcp.server.http import bind, make_http_server, security_settings

pytestmark = pytest.mark.anyio
TOKEN = "tok-sessions"


def busy_session(url: str, target: str, http: Any = None) -> HttpSession:
    """A session that leaves a trace in every per-session structure: an events cursor, a
    log level, a resource subscription, the list_changed peers."""
    session = HttpSession(url, TOKEN, http=http)
    session.call("list", {})
    assert "result" in session.request("resources/subscribe", {"uri": f"process://{target}/log"})
    assert "result" in session.request("logging/setLevel", {"level": "debug"})
    return session


@asynccontextmanager
async def in_process_server(settings: Settings, idle: float) -> AsyncIterator[Any]:
    """The HTTP front-end in this process (its supervisor too: standalone), so the test
    can look at what it remembers."""
    backend = await Backend.open("mcp-http", standalone=True, per_client=True, settings=settings)
    app = ProcessMcpServer(backend)
    sock = bind("127.0.0.1", 0)
    server = make_http_server(app.http_app(security_settings("127.0.0.1", []), idle), TOKEN)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            assert await eventually(lambda: server.started, 10)
            app.url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
            yield app
            server.should_exit = True
    finally:
        sock.close()
        await backend.close()


async def test_closed_and_expired_sessions_are_forgotten(settings: Settings) -> None:
    async with in_process_server(settings, idle=6) as app:  # room for a loaded machine

        def scenario() -> None:
            steady = HttpSession(app.url, TOKEN)
            target = steady.call("start", {"command": "sleep", "args": ["300"]})["id"]
            sessions = []
            for _ in range(10):
                sessions.append(busy_session(app.url, target))
                steady.request("ping")  # only the others may go idle
            steady_key = steady.id
            assert len(app.remembered_clients() - {steady_key}) == 10
            for session in sessions[:5]:
                assert session.delete() == 200
            assert wait_until(lambda: len(app.remembered_clients() - {steady_key}) == 5, 5)
            # the other five are abandoned; the steady one keeps talking
            assert wait_until(
                lambda: steady.request("ping") and app.remembered_clients() <= {steady_key},
                20,
                interval=0.2,
            ), app.remembered_clients()
            expired = sessions[5].post({"jsonrpc": "2.0", "id": 9, "method": "ping"})
            assert expired.status_code == 404
            assert best_ms(lambda: steady.request("ping")) < 100
            steady.call("stop", {"id": target})
            for session in [steady, *sessions]:
                session.close()

        await anyio.to_thread.run_sync(scenario)


def start_ms(session: HttpSession, count: int) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        session.call("start", {"command": "true"})
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def test_abandoned_sessions_do_not_slow_start_down() -> None:
    """Before the fix 200 abandoned sessions made ``start`` ~8x slower: every start and
    exit was sent to every session that had ever spoken."""
    import httpx2

    server = HttpServer(TOKEN)
    steady = HttpSession(server.url, TOKEN)
    try:
        target = steady.call("start", {"command": "sleep", "args": ["300"]})["id"]
        start_ms(steady, 20)  # warm-up
        fresh = start_ms(steady, 60)
        with httpx2.Client(timeout=30) as http:
            for _ in range(200):
                busy_session(server.url, target, http)  # never closed: abandoned
        after = start_ms(steady, 60)
        assert after < max(3 * fresh, fresh + 15), (fresh, after)
        assert best_ms(lambda: steady.request("ping")) < 100
    finally:
        steady.close()
        server.close()


def test_idle_timeout_comes_from_the_environment() -> None:
    server = HttpServer(TOKEN, PROCESS_MCP_HTTP_SESSION_IDLE="1")
    session = HttpSession(server.url, TOKEN)
    try:
        assert session.request("ping")["result"] == {}
        ping = {"jsonrpc": "2.0", "id": 99, "method": "ping"}
        # each ping restarts the countdown: ask less often than the timeout
        assert wait_until(lambda: session.post(ping).status_code == 404, 10, interval=2)
    finally:
        session.close()
        server.close()


def test_capabilities_over_http_equal_those_over_stdio() -> None:
    stdio = RawServer()
    server = HttpServer(TOKEN)
    try:
        over_stdio = stdio.initialize()["result"]["capabilities"]
        session = HttpSession(server.url, TOKEN)
        assert session.initialize_result is not None
        over_http = session.initialize_result["capabilities"]
        assert over_http == over_stdio
        assert "process/exit" in over_http["experimental"]
        assert over_http["resources"]["listChanged"] is True
        session.close()
    finally:
        stdio.kill()
        server.close()


async def test_a_listening_http_client_still_hears_notifications() -> None:
    """Skipping sessions without a stream must not skip one that has it: the SDK client
    holds its GET stream open and hears list_changed, the log message and process/exit."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.extension import NotificationBinding
    from mcp.client.streamable_http import streamable_http_client
    from support import ExitParams

    server = HttpServer(TOKEN)
    heard: list[str] = []
    exits: list[ExitParams] = []

    async def on_message(message: Any) -> None:
        heard.append(getattr(getattr(message, "root", message), "method", str(message)))

    async def on_exit(params: ExitParams) -> None:
        exits.append(params)

    try:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http,
            streamable_http_client(server.url, http_client=http) as (read, write),
            ClientSession(
                read,
                write,
                message_handler=on_message,
                notification_bindings=[
                    NotificationBinding(
                        method="process/exit", params_type=ExitParams, handler=on_exit
                    )
                ],
            ) as session,
        ):
            await session.initialize()
            # The client opens its GET stream on its own after initialize: until then
            # nothing unsolicited can reach it, so start until an exit is heard.
            started: list[str] = []
            with anyio.fail_after(15):
                while not exits:
                    args = {"command": "true", "notifyOnExit": True}
                    result = await session.call_tool("start", args)
                    assert result.structured_content is not None
                    started.append(result.structured_content["id"])
                    await eventually(lambda: exits, 1)
            assert exits[0].id in started
            wanted = {"notifications/resources/list_changed", "notifications/message"}
            assert await eventually(lambda: wanted <= set(heard), 10), heard
    finally:
        server.close()
