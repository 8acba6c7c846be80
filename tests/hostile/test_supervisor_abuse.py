"""Hardening of the supervisor's socket: bad fields, pipelining, a crowd of connects,
clients that never read, and a ``start`` cancelled between its spawn and its answer.

Before: ``command: 5`` was an ``internal`` error with a traceback; ``args: "abc"`` ran
``true a b c``; a wait's ``timeout`` of NaN, Infinity or 1e308 was taken; 5,000 pipelined
pings got 4,488 ``too_many_requests``; with a full listen queue a connect came back
unconnected and was refused as "served by pid 0 of uid -1"; each client that never read
could hold 64 MiB of answers, with no cap on all of them together; and a ``start``
cancelled while the history was slow left its child running, owned by no session."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import eventually, group_pids

from process_mcp import __version__
from process_mcp.core import Settings
from process_mcp.core.history import DB_NAME
from process_mcp.supervisor.client import SupervisorClient
from process_mcp.supervisor.echo import EchoHandler
from process_mcp.supervisor.paths import SupervisorPaths, socket_address
from process_mcp.supervisor.protocol import Hello, encode, to_wire
from process_mcp.supervisor.service import ProcessService
from process_mcp.supervisor.transport import SupervisorServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def paths(tmp_path: Path) -> SupervisorPaths:
    return SupervisorPaths(runtime_dir=tmp_path / "run", state_dir=tmp_path / "state")


@pytest.fixture
async def service_server(paths: SupervisorPaths) -> AsyncIterator[SupervisorServer]:
    settings = Settings(state_dir=paths.state_dir, stop_grace=1.0, exit_drain_grace=0.5)
    async with SupervisorServer(ProcessService(settings), paths) as server:
        yield server


class Raw:
    """A client that speaks raw JSON lines (what a buggy or hostile peer sends)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, paths: SupervisorPaths, hello: bool = True, limit: int = 1 << 24) -> Raw:
        """``limit``: what the stream buffers before it stops reading the socket."""
        with socket_address(paths.socket) as address:
            reader, writer = await asyncio.open_unix_connection(address, limit=limit)
        raw = cls(reader, writer)
        if hello:
            writer.write(encode(to_wire(Hello(__version__, "test", os.getpid()))))
            assert "welcome" in json.loads(await reader.readline())
        return raw

    async def ask(self, text: str) -> dict:
        self.writer.write(text.encode() + b"\n")
        return json.loads(await self.reader.readline())

    def close(self) -> None:
        self.writer.close()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ('{"command": 5, "folder": "/"}', "start: 'command' must be a string, got 5"),
        ('{"command": "true", "args": "abc", "folder": "/"}', "'args' must be a list of strings"),
        ('{"command": "true", "folder": "/", "options": {"timeout_seconds": NaN}}', "got nan"),
    ],
)
async def test_a_start_with_a_bad_field_is_a_bad_request_and_runs_nothing(
    service_server: SupervisorServer, paths: SupervisorPaths, args: str, said: str
) -> None:
    raw = await Raw.open(paths)
    try:
        answer = await raw.ask(f'{{"id": 1, "op": "start", "args": {args}}}')
        assert answer["error"]["code"] == "bad_request", answer
        assert said in answer["error"]["message"]
        service = service_server.handler
        assert isinstance(service, ProcessService) and service.manager.records() == []
        assert "ok" in await raw.ask('{"id": 2, "op": "list", "args": {"all": true}}')
    finally:
        raw.close()


@pytest.mark.parametrize("timeout", ["NaN", "Infinity", "-Infinity", "1e308", "1e999"])
async def test_a_wait_that_would_never_end_is_refused(
    service_server: SupervisorServer, paths: SupervisorPaths, timeout: str
) -> None:
    raw = await Raw.open(paths)
    try:
        answer = await raw.ask(
            f'{{"id": 1, "op": "wait", "args": {{"id": "x", "timeout": {timeout}}}}}'
        )
        error = answer["error"]
        assert error["code"] == "bad_request", answer
        assert "'timeout' must be a" in error["message"] and "from 0 to 86400" in error["message"]
    finally:
        raw.close()


async def test_five_thousand_pipelined_requests_are_all_answered(paths: SupervisorPaths) -> None:
    """Reading pauses while 256 run: nothing is refused, every request gets its answer."""
    async with SupervisorServer(EchoHandler(), paths):
        raw = await Raw.open(paths)
        try:
            count = 5000
            burst = b"".join(
                encode({"id": n, "op": "ping", "args": {}}) for n in range(1, count + 1)
            )
            raw.writer.write(burst)
            answers = [json.loads(await raw.reader.readline()) for _ in range(count)]
            refused = [a for a in answers if "error" in a]
            assert refused == [] and sorted(a["id"] for a in answers) == list(range(1, count + 1))
        finally:
            raw.close()


async def test_a_client_that_hangs_up_while_paused_is_ended_at_once(
    paths: SupervisorPaths,
) -> None:
    """300 long requests pause the session's reading at 256; its client then dies: the
    session ends (its requests cancelled) without waiting for one of them to finish."""
    handler = EchoHandler()
    async with SupervisorServer(handler, paths) as server:
        raw = await Raw.open(paths)
        burst = b"".join(
            encode({"id": n, "op": "sleep", "args": {"seconds": 300}}) for n in range(1, 301)
        )
        raw.writer.write(burst)
        assert await eventually(
            lambda: sum(s.in_flight for s in server.sessions) == 256, timeout=10
        )
        raw.writer.transport.abort()  # as a SIGKILL would
        assert await eventually(lambda: handler.closed == ["s1"], timeout=5)
        assert handler.cancelled == 256


async def test_a_crowd_of_connects_all_get_in_even_past_the_listen_queue(
    paths: SupervisorPaths,
) -> None:
    """A listen queue of 2 and 60 connects at once: the turned-away connects come back
    unconnected (their peer reads as pid 0 of uid -1) and are retried, not refused."""
    async with SupervisorServer(EchoHandler(), paths, listen_backlog=2) as server:
        assert SupervisorServer(EchoHandler(), paths).listen_backlog >= 1024  # the default
        clients = await asyncio.gather(
            *(SupervisorClient.connect(paths.socket, kind="test") for _ in range(60))
        )
        try:
            assert len(server.sessions) == 60
            pongs = await asyncio.gather(*(client.request("ping") for client in clients))
            assert all(pong["pong"] for pong in pongs)
        finally:
            await asyncio.gather(*(client.close() for client in clients))


async def test_two_hundred_raw_connects_at_once_are_all_served(paths: SupervisorPaths) -> None:
    async with SupervisorServer(EchoHandler(), paths) as server:
        raws = await asyncio.gather(*(Raw.open(paths) for _ in range(200)))
        try:
            assert len(server.sessions) == 200
        finally:
            for raw in raws:
                raw.close()


async def test_clients_that_never_read_are_cut_slowest_first_within_a_total_cap(
    paths: SupervisorPaths, caplog: pytest.LogCaptureFixture
) -> None:
    """Four clients leave their answers unread: each stays under the cap per session, but
    together they pass the total cap, so the ones holding most are cut (logged) until
    the rest fit; a client that reads is served throughout."""
    handler = EchoHandler()
    per_session, total = 3 << 19, 3 << 20  # 1.5 MiB, 3 MiB
    server = SupervisorServer(
        handler,
        paths,
        max_message_bytes=128 << 10,
        max_pending_bytes=per_session,
        max_pending_total=total,
    )
    caplog.set_level(logging.WARNING, logger="process_mcp.supervisor.session")
    async with server:
        slow = [await Raw.open(paths, limit=4096) for _ in range(4)]  # never read more
        try:
            payload = json.dumps({"x": "y" * (60 << 10)})
            for raw in slow:
                for request in range(24):  # 1.4 MiB each: the socket's buffers, then ours
                    line = f'{{"id": {request + 1}, "op": "echo", "args": {payload}}}\n'
                    raw.writer.write(line.encode())
                await raw.writer.drain()
                assert await eventually(
                    lambda: sum(s.in_flight for s in server.sessions) == 0, timeout=10
                )
            assert 1 <= len(handler.closed) < 4
            held = sum(session.pending_bytes for session in server.sessions)
            assert held <= total
            assert "the most of any session" in caplog.text
            assert f"the cap for all is {total}" in caplog.text
            async with await SupervisorClient.connect(paths.socket, kind="test") as reader:
                assert (await reader.request("ping"))["pong"] is True
        finally:
            for raw in slow:
                raw.close()


@pytest.mark.parametrize("caller_gone", ["cancel", "hang-up"])
async def test_a_start_whose_caller_is_gone_stops_its_child_even_with_a_slow_history(
    service_server: SupervisorServer, paths: SupervisorPaths, caller_gone: str
) -> None:
    """Another connection holds the history's write lock (a backup, a slow disk): the
    first start's record waits for it, so the second start's history stats wait too,
    after its child is spawned. Cancelling that start, or hanging up, stops the child."""
    service = service_server.handler
    assert isinstance(service, ProcessService)
    holder = sqlite3.connect(paths.state_dir / DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held
    client = await SupervisorClient.connect(paths.socket, kind="test")
    folder = str(paths.state_dir)
    try:
        first = {"command": "sleep", "args": ["300"], "folder": folder, "keep": True}
        await client.request("start", first)
        second = asyncio.ensure_future(
            client.request("start", {"command": "sleep", "args": ["301"], "folder": folder})
        )
        assert await eventually(lambda: len(service.manager.records()) == 2, timeout=10)
        child = service.manager.records()[1]
        assert child.running and not second.done()  # spawned, its answer still waiting
        if caller_gone == "cancel":
            second.cancel()
            with pytest.raises(asyncio.CancelledError):
                await second
        else:
            await client.close()
            with pytest.raises(Exception, match=r"lost|closed"):
                await second
        assert await eventually(lambda: not child.running, timeout=10), "the child runs on"
        assert child.status.value == "stopped" and group_pids(child.pid or 0) == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        if not client.closed:
            await client.close()
        for record in service.manager.records():
            if record.running:
                await service.manager.stop(record.id)


async def test_the_socket_backlog_is_the_one_asked_for(paths: SupervisorPaths) -> None:
    """asyncio listens again with its own default (100) unless told: ours must stand."""
    async with SupervisorServer(EchoHandler(), paths, listen_backlog=3):
        crowd = []
        try:
            for _ in range(12):  # nobody accepts while we do not yield to the loop
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.setblocking(False)
                crowd.append(sock)
                with socket_address(paths.socket) as address:
                    try:
                        sock.connect(address)
                    except BlockingIOError:
                        break
            assert len(crowd) <= 3 + 2  # the queue is about the backlog asked for
        finally:
            for sock in crowd:
                sock.close()


async def test_a_listen_queue_that_stays_full_is_named_as_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener that never accepts, its queue full: the connect is retried for
    ``CONNECT_RETRY`` seconds, then the error says the queue stayed full — not a false
    "served by pid 0 of uid -1"."""
    from process_mcp.supervisor import client as client_module
    from process_mcp.supervisor.client import SupervisorUnavailable

    monkeypatch.setattr(client_module, "CONNECT_RETRY", 0.3)
    path = tmp_path / "full.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    queued: list[socket.socket] = []
    try:
        for _ in range(64):  # fill the queue: a non-blocking connect then says EAGAIN
            waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            waiting.setblocking(False)
            queued.append(waiting)
            try:
                waiting.connect(str(path))
            except BlockingIOError:
                break
        else:
            pytest.fail("the listen queue never filled")
        with pytest.raises(SupervisorUnavailable, match="listen queue stayed full") as caught:
            await asyncio.wait_for(SupervisorClient.connect(path, kind="test"), 10)
        assert "pid 0" not in str(caught.value) and "uid -1" not in str(caught.value)
    finally:
        for waiting in queued:
            waiting.close()
        listener.close()
