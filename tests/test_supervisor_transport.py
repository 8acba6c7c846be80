"""The supervisor's transport: framing, multiplexing, events, sessions, one-per-user start,
version checks, peer credentials and idle exit — with the trivial echo handler."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from conftest import eventually, tagged_processes, wait_until

from process_mcp import __version__
from process_mcp.supervisor.client import (
    RequestFailed,
    SupervisorClient,
    SupervisorGone,
    SupervisorRefused,
    SupervisorStartError,
    VersionMismatch,
    ensure_supervisor,
    launch_supervisor,
    supervisor_command,
)
from process_mcp.supervisor.echo import EchoHandler
from process_mcp.supervisor.paths import SupervisorPaths
from process_mcp.supervisor.protocol import (
    PROTOCOL_VERSION,
    Event,
    Hello,
    MessageTooLarge,
    Oversize,
    ProtocolError,
    Request,
    decode,
    encode,
    read_line,
    to_wire,
)
from process_mcp.supervisor.transport import AlreadyRunning, SupervisorServer

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def echo_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Supervisors started here serve the echo handler: these tests are of the transport."""
    monkeypatch.setenv("PROCESS_MCP_SUPERVISOR_HANDLER", "process_mcp.supervisor.echo:EchoHandler")


@pytest.fixture
def paths(tmp_path: Path) -> Iterator[SupervisorPaths]:
    """A private runtime folder per test; at the end, any supervisor still holding its lock
    is stopped (SIGTERM, then SIGKILL) so no test leaves one behind."""
    paths = SupervisorPaths(runtime_dir=tmp_path / "run", state_dir=tmp_path / "state")
    yield paths
    stop_supervisor(paths)


def lock_is_free(paths: SupervisorPaths) -> bool:
    return paths.lock_holder() is None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def stop_supervisor(paths: SupervisorPaths) -> None:
    if lock_is_free(paths):
        return
    pid = paths.holder_pid()
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: lock_is_free(paths), timeout=5):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: lock_is_free(paths), timeout=5)


def supervisors(tag: str) -> list[int]:
    """Live supervisor processes started by this test (they inherit its tag)."""
    return [
        pid
        for pid in tagged_processes(tag)
        if b"supervisor" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    ]


@pytest.fixture
async def server(paths: SupervisorPaths) -> AsyncIterator[SupervisorServer]:
    async with SupervisorServer(EchoHandler(), paths, idle_timeout=60) as running:
        yield running


async def raw_connect(paths: SupervisorPaths) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    from process_mcp.supervisor.paths import socket_address

    with socket_address(paths.socket) as address:
        return await asyncio.open_unix_connection(address)


def hello_line(version: str = __version__) -> bytes:
    return encode(to_wire(Hello(version, "test", os.getpid())))


# -- framing -------------------------------------------------------------------------


def test_encode_never_puts_a_newline_inside_and_round_trips() -> None:
    awkward = "a\nb\r\nc\u2028d\u0085e\x00f\udcff g 日本"
    line = encode(to_wire(Request(3, "echo", {"text": awkward, "n": [1, 2.5, None, True]})))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == Request(3, "echo", {"text": awkward, "n": [1, 2.5, None, True]})


def test_encode_refuses_oversize_and_unencodable_values() -> None:
    with pytest.raises(MessageTooLarge, match="exceeds the supervisor's 100-byte message limit"):
        encode({"id": 1, "op": "echo", "args": {"x": "y" * 200}}, max_bytes=100)
    with pytest.raises(ProtocolError, match="cannot be encoded"):
        encode({"x": float("nan")})
    with pytest.raises(ProtocolError, match="hello: 'pid' must be a whole number, got '42'"):
        decode(b'{"hello": {"version": "1", "kind": "x", "pid": "42"}}')


async def test_read_line_assembles_byte_by_byte_and_skips_oversize_lines() -> None:
    reader = asyncio.StreamReader(limit=64)
    long_request = b'{"id":42,"op":"echo","args":{"x":"' + b"z" * 300 + b'"}}\n'
    stream = b'{"id":1,"op":"ping"}\n' + long_request + b'{"id":2,"op":"ping"}\n' + b'{"id":3'
    lines: list[object] = []

    async def consume() -> None:
        while (line := await read_line(reader, 64)) is not None:
            lines.append(line)

    consumer = asyncio.create_task(consume())
    for byte in stream:
        reader.feed_data(bytes([byte]))
        await asyncio.sleep(0)
    reader.feed_eof()
    await consumer
    assert lines == [
        b'{"id":1,"op":"ping"}',
        Oversize(len(long_request) - 1, 42),
        b'{"id":2,"op":"ping"}',
    ]  # the truncated last line is dropped: its writer is gone


# -- one connection ------------------------------------------------------------------


async def test_messages_sent_byte_by_byte_over_the_socket_are_understood(
    server: SupervisorServer, paths: SupervisorPaths
) -> None:
    reader, writer = await raw_connect(paths)
    try:
        request = encode({"id": 9, "op": "echo", "args": {"text": "héllo\nworld"}})
        for byte in hello_line() + request:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.001)  # let each byte leave as its own segment
        assert "welcome" in json.loads(await reader.readline())
        assert json.loads(await reader.readline()) == {"id": 9, "ok": {"text": "héllo\nworld"}}
        writer.write(encode({"id": 10, "op": "ping"}) + encode({"id": 11, "op": "ping"}))
        answers = {json.loads(await reader.readline())["id"] for _ in range(2)}
        assert answers == {10, 11}
    finally:
        writer.close()


async def test_an_oversize_request_is_answered_with_an_error_and_the_stream_stays_usable(
    paths: SupervisorPaths,
) -> None:
    async with SupervisorServer(EchoHandler(), paths, max_message_bytes=1024):
        reader, writer = await raw_connect(paths)
        try:
            writer.write(hello_line())
            assert json.loads(await reader.readline())["welcome"]["max_message_bytes"] == 1024
            writer.write(b'{"id":7,"op":"echo","args":{"x":"' + b"a" * 5000 + b'"}}\n')
            writer.write(encode({"id": 8, "op": "ping"}))
            too_large = json.loads(await reader.readline())
            assert too_large["id"] == 7
            assert too_large["error"]["code"] == "message_too_large"
            assert "1024-byte message limit" in too_large["error"]["message"]
            assert json.loads(await reader.readline())["ok"]["pong"] is True
            writer.write(b"not json\n")
            assert json.loads(await reader.readline())["error"]["code"] == "bad_message"
        finally:
            writer.close()


async def test_the_client_refuses_to_send_an_oversize_request(
    server: SupervisorServer, paths: SupervisorPaths
) -> None:
    async with await SupervisorClient.connect(paths.socket, kind="test") as client:
        with pytest.raises(MessageTooLarge, match="message limit"):
            await client.request("echo", {"x": "y" * (server.max_message_bytes + 1)})
        assert (await client.request("ping"))["pong"] is True


async def test_a_slow_request_does_not_block_a_fast_one_and_can_be_cancelled(
    server: SupervisorServer, paths: SupervisorPaths
) -> None:
    async with await SupervisorClient.connect(paths.socket, kind="test") as client:
        slow = asyncio.create_task(client.request("sleep", {"seconds": 30}))
        started = time.monotonic()
        assert await client.request("echo", {"n": 1}) == {"n": 1}
        fast = await asyncio.gather(*(client.request("echo", {"n": n}) for n in range(50)))
        assert fast == [{"n": n} for n in range(50)]
        assert time.monotonic() - started < 5 and not slow.done()
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        handler = server.handler
        assert isinstance(handler, EchoHandler)
        assert await eventually(lambda: handler.cancelled == 1, timeout=5)
        assert (await client.request("state"))["cancelled"] == 1


async def test_events_arrive_in_order_with_sequence_numbers(
    server: SupervisorServer, paths: SupervisorPaths
) -> None:
    async with await SupervisorClient.connect(paths.socket, kind="test") as client:
        assert await client.request("emit", {"event": "tick", "count": 3}) == {"emitted": 3}
        received: list[Event] = []
        async for event in client.events():
            received.append(event)
            if len(received) == 3:
                break
        assert [(e.event, e.seq, e.data) for e in received] == [
            ("tick", 1, {"n": 0}),
            ("tick", 2, {"n": 1}),
            ("tick", 3, {"n": 2}),
        ]


async def test_handler_errors_become_error_answers(
    server: SupervisorServer, paths: SupervisorPaths
) -> None:
    async with await SupervisorClient.connect(paths.socket, kind="test") as client:
        with pytest.raises(RequestFailed) as failed:
            await client.request("fail", {"code": "not_found", "message": "no process 'x'"})
        assert (failed.value.op, failed.value.code) == ("fail", "not_found")
        assert str(failed.value) == "no process 'x'"
        with pytest.raises(RequestFailed, match="crash failed: RuntimeError: crash requested"):
            await client.request("crash")
        with pytest.raises(RequestFailed, match="unknown op 'nope'"):
            await client.request("nope")
        assert (await client.request("ping"))["pong"] is True


async def test_a_standalone_front_end_uses_the_same_code_path_without_a_socket(
    paths: SupervisorPaths,
) -> None:
    handler = EchoHandler()
    server = SupervisorServer(handler, paths)  # not started: no lock, no socket file
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        await server.connect_local(theirs)
        async with await SupervisorClient.connect(ours, kind="standalone") as client:
            assert (await client.request("echo", {"a": 1})) == {"a": 1}
            assert [s.client.kind for s in server.sessions] == ["standalone"]
        assert await eventually(lambda: handler.closed == ["s1"], timeout=5)
        assert not paths.runtime_dir.exists()
    finally:
        await server.close()


# -- sessions ------------------------------------------------------------------------

CLIENT_SCRIPT = """
import asyncio, sys
from pathlib import Path
from process_mcp.supervisor.client import SupervisorClient

async def main():
    client = await SupervisorClient.connect(Path(sys.argv[1]), kind="victim")
    asyncio.create_task(client.request("sleep", {"seconds": 300}))
    print(client.session, flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


async def test_a_sigkilled_client_closes_its_session_at_once(
    server: SupervisorServer, paths: SupervisorPaths
) -> None:
    async with await SupervisorClient.connect(paths.socket, kind="observer") as observer:
        victim = subprocess.Popen(
            [sys.executable, "-c", CLIENT_SCRIPT, str(paths.socket)], stdout=subprocess.PIPE
        )
        try:
            assert victim.stdout is not None
            session = (await asyncio.to_thread(victim.stdout.readline)).decode().strip()
            assert session in (await observer.request("state"))["open"]
            handler = server.handler
            assert isinstance(handler, EchoHandler)
            (victim_session,) = (s for s in server.sessions if s.id == session)
            assert await eventually(lambda: victim_session.in_flight == 1, timeout=5)
            victim.kill()
            killed = time.monotonic()
            async for event in observer.events():
                if event.event == "session_closed":
                    break
            assert event.data == {"session": session, "kind": "victim"}
            assert time.monotonic() - killed < 2.0  # milliseconds in practice; load-proof
            assert handler.cancelled == 1  # its in-flight sleep was cancelled first
        finally:
            victim.kill()
            victim.wait()


async def test_pending_requests_fail_when_the_supervisor_dies(
    paths: SupervisorPaths, no_leftover_processes: str
) -> None:
    client = await ensure_supervisor("test", paths=paths)
    try:
        pending = asyncio.create_task(client.request("sleep", {"seconds": 300}))
        assert await client.request("ping")
        os.kill(client.supervisor_pid, signal.SIGKILL)
        with pytest.raises(SupervisorGone, match="during sleep"):
            await pending
        with pytest.raises(SupervisorGone):
            await client.request("ping")
    finally:
        await client.close()


async def test_a_client_that_stops_reading_is_disconnected_not_waited_for(
    paths: SupervisorPaths,
) -> None:
    handler = EchoHandler()
    async with SupervisorServer(handler, paths, max_message_bytes=1024) as server:
        assert server.max_pending_bytes == 2048  # twice the message limit
        reader, writer = await raw_connect(paths)
        try:
            writer.write(hello_line())
            assert "welcome" in json.loads(await reader.readline())
            writer.write(encode({"id": 1, "op": "emit", "args": {"count": 50000}}))
            # We never read: far more than the socket buffer plus 2 KiB piles up.
            assert await eventually(lambda: handler.closed == ["s1"], timeout=10)
            async with await SupervisorClient.connect(paths.socket, kind="test") as other:
                assert (await other.request("ping"))["pong"] is True
        finally:
            writer.close()


async def test_stopping_the_server_closes_every_session_before_shutdown(
    paths: SupervisorPaths,
) -> None:
    handler = EchoHandler()
    server = SupervisorServer(handler, paths)
    await server.start()
    try:
        client = await SupervisorClient.connect(paths.socket, kind="test")
        pending = asyncio.create_task(client.request("sleep", {"seconds": 300}))
        assert await eventually(lambda: server.sessions and server.sessions[0].in_flight, 5)
    finally:
        await server.close()
    assert handler.closed == ["s1"] and handler.cancelled == 1
    with pytest.raises(SupervisorGone):
        await pending
    await client.wait_closed()
    assert not paths.socket.exists() and lock_is_free(paths)


# -- one supervisor per user ---------------------------------------------------------

STARTER_SCRIPT = """
import asyncio, sys
from pathlib import Path
from process_mcp.supervisor.client import ensure_supervisor
from process_mcp.supervisor.paths import SupervisorPaths

async def main():
    paths = SupervisorPaths(Path(sys.argv[1]), Path(sys.argv[2]))
    async with await ensure_supervisor("starter", paths=paths) as client:
        print(client.supervisor_pid, flush=True)
        sys.stdin.readline()

asyncio.run(main())
"""


def test_front_ends_racing_to_start_get_exactly_one_supervisor(
    paths: SupervisorPaths, no_leftover_processes: str
) -> None:
    argv = [sys.executable, "-c", STARTER_SCRIPT, str(paths.runtime_dir), str(paths.state_dir)]
    starters = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(4)
    ]
    try:
        pids = {int(starter.stdout.readline()) for starter in starters if starter.stdout}
        assert len(pids) == 1, pids
        assert supervisors(no_leftover_processes) == list(pids)
        assert paths.holder_pid() in pids
    finally:
        for starter in starters:
            starter.kill()
            starter.wait()


async def test_a_second_server_in_the_same_folder_is_refused(
    server: SupervisorServer, paths: SupervisorPaths
) -> None:
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        await SupervisorServer(EchoHandler(), paths).start()
    async with await SupervisorClient.connect(paths.socket, kind="test") as client:
        assert (await client.request("ping"))["pid"] == os.getpid()


async def test_a_stale_socket_of_a_dead_supervisor_is_replaced(
    paths: SupervisorPaths, no_leftover_processes: str
) -> None:
    paths.runtime_dir.mkdir(mode=0o700)
    from process_mcp.supervisor.paths import socket_address

    stale = socket.socket(socket.AF_UNIX)
    with socket_address(paths.socket) as address:
        stale.bind(address)
    stale.close()  # the file stays, nobody listens: what a SIGKILLed supervisor leaves
    async with await ensure_supervisor("test", paths=paths) as client:
        assert (await client.request("state"))["mcp_imported"] is False
        assert client.supervisor_pid != os.getpid()


async def test_runtime_folder_is_0700_and_socket_0600_whatever_the_umask(
    paths: SupervisorPaths,
) -> None:
    paths.runtime_dir.mkdir(mode=0o755)
    os.chmod(paths.runtime_dir, 0o755)
    previous = os.umask(0)
    try:
        async with SupervisorServer(EchoHandler(), paths):
            assert paths.runtime_dir.stat().st_mode & 0o777 == 0o700
            assert paths.socket.stat().st_mode & 0o777 == 0o600
            assert paths.lock.stat().st_mode & 0o777 == 0o600
        assert not paths.socket.exists()
        assert lock_is_free(paths)
    finally:
        os.umask(previous)


async def test_a_socket_path_longer_than_sun_path_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    paths = SupervisorPaths(runtime_dir=deep, state_dir=tmp_path / "state")
    assert len(str(paths.socket)) > 108
    async with (
        SupervisorServer(EchoHandler(), paths),
        await SupervisorClient.connect(paths.socket, kind="test") as client,
    ):
        assert (await client.request("ping"))["pong"] is True


async def test_a_supervisor_that_cannot_start_is_reported_with_its_log(
    paths: SupervisorPaths,
) -> None:
    command = supervisor_command(paths, ["--handler", "no_such_module:Handler"])
    with pytest.raises(SupervisorStartError) as failed:
        await ensure_supervisor("test", paths=paths, command=command, start_timeout=20)
    text = str(failed.value)
    assert "exited with 1" in text and "No module named 'no_such_module'" in text
    assert str(paths.log) in text


async def test_a_large_log_is_rotated_at_start(
    paths: SupervisorPaths, no_leftover_processes: str
) -> None:
    paths.state_dir.mkdir(parents=True)
    paths.log.write_bytes(b"old line\n" * 120_000)  # > 1 MiB
    async with await ensure_supervisor("test", paths=paths) as client:
        assert (await client.request("ping"))["pong"] is True
    assert paths.log.with_name("supervisor.log.1").stat().st_size > 1024 * 1024
    assert wait_until(lambda: "session s1 closed" in paths.log.read_text(), timeout=5)
    assert "old line" not in paths.log.read_text()


# -- versions ------------------------------------------------------------------------


async def test_a_busy_supervisor_of_another_version_gives_a_clear_error(
    paths: SupervisorPaths, no_leftover_processes: str
) -> None:
    async with await ensure_supervisor("first", paths=paths) as first:
        with pytest.raises(VersionMismatch) as mismatch:
            await ensure_supervisor("mcp-stdio", paths=paths, version="9.9.9")
        text = str(mismatch.value)
        assert f"runs version {__version__} (protocol {PROTOCOL_VERSION})" in text
        assert f"this mcp-stdio is version 9.9.9 (protocol {PROTOCOL_VERSION})" in text
        assert f"kill {first.supervisor_pid}" in text and "1 other session" in text
        assert not mismatch.value.retiring
        assert (await first.request("ping"))["pong"] is True
        assert supervisors(no_leftover_processes) == [first.supervisor_pid]


async def test_an_idle_supervisor_of_another_version_is_replaced(
    paths: SupervisorPaths, no_leftover_processes: str
) -> None:
    old_command = supervisor_command(paths, ["--report-version", "0.0.1-old"])
    assert await launch_supervisor(paths, old_command, timeout=20) == 0
    old = paths.holder_pid()
    assert old is not None
    with pytest.raises(VersionMismatch, match=r"0\.0\.1-old"):  # without consent: just an error
        await SupervisorClient.connect(paths.socket, kind="test")
    async with await ensure_supervisor("test", paths=paths) as client:
        assert client.welcome.version == __version__
        assert client.supervisor_pid != old
        assert not alive(old)
        assert supervisors(no_leftover_processes) == [client.supervisor_pid]


# -- other users ---------------------------------------------------------------------

PEER_SCRIPT = """
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connect_error": exc.errno}))
    sys.exit()
hello = {"hello": {"protocol": 1, "version": sys.argv[2], "kind": "intruder", "pid": os.getpid()}}
try:
    s.sendall(json.dumps(hello).encode() + b"\\n")
except OSError:
    pass  # refused before the hello: the answer is still there to read
print(s.makefile("rb").readline().decode().strip() or "{}")
"""


def _as_nobody() -> list[str] | None:
    setpriv = shutil.which("setpriv")
    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.getuid() != 0 or setpriv is None or python is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", "-S"]


async def test_a_peer_of_another_uid_is_refused() -> None:
    as_nobody = _as_nobody()
    if as_nobody is None:
        pytest.skip("needs root, setpriv and a system python3 to run a client as uid 65534")
    base = Path(tempfile.mkdtemp(prefix="pmcp-peer-"))  # /tmp, not the 0700 pytest folder
    try:
        os.chmod(base, 0o711)
        paths = SupervisorPaths(runtime_dir=base / "run", state_dir=base / "state")

        async def peer() -> dict[str, object]:
            argv = [*as_nobody, "-c", PEER_SCRIPT, str(paths.socket), __version__]
            done = await asyncio.to_thread(
                subprocess.run, argv, capture_output=True, timeout=30, check=True
            )
            return json.loads(done.stdout)

        async with SupervisorServer(EchoHandler(), paths) as server:
            # First wall: the 0700 folder.
            assert await peer() == {"connect_error": 13}  # EACCES
            # Second wall, with the folder and socket opened up: SO_PEERCRED.
            os.chmod(paths.runtime_dir, 0o711)
            os.chmod(paths.socket, 0o666)
            refused = (await peer())["refused"]
            assert isinstance(refused, dict) and refused["code"] == "wrong_user"
            assert f"serves uid {os.getuid()} only, not uid 65534" in refused["message"]
            assert server.sessions == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def test_the_client_refuses_a_refusal_clearly(
    server: SupervisorServer, paths: SupervisorPaths
) -> None:
    reader, writer = await raw_connect(paths)
    try:
        writer.write(encode({"id": 1, "op": "ping"}))  # no hello first
        refused = json.loads(await reader.readline())["refused"]
        assert refused["code"] == "bad_hello"
        assert await reader.readline() == b""  # then the server hangs up
    finally:
        writer.close()
    with pytest.raises(SupervisorRefused, match="version_mismatch"):
        await SupervisorClient.connect(paths.socket, kind="test", version="0.0.0")


# -- idle exit -----------------------------------------------------------------------


async def test_idle_exit_waits_for_clients_and_busy_work(
    paths: SupervisorPaths, no_leftover_processes: str
) -> None:
    command = supervisor_command(paths, ["--idle-timeout", "0.3"])
    client = await ensure_supervisor("test", paths=paths, command=command)
    pid = client.supervisor_pid
    # Connected: it stays, well past the idle timeout.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert (await client.request("ping"))["pong"] is True
        await asyncio.sleep(0.05)
    # Busy without clients: it stays.
    await client.request("set_busy", {"busy": True})
    await client.close()
    assert not wait_until(lambda: not alive(pid), timeout=1.0)
    # Idle: it goes, removing its socket and freeing its lock.
    async with await ensure_supervisor("test", paths=paths, command=command) as again:
        assert again.supervisor_pid == pid
        await again.request("set_busy", {"busy": False})
    assert wait_until(lambda: not alive(pid), timeout=5)
    assert not paths.socket.exists() and lock_is_free(paths)
    assert "idle for 0.3s" in paths.log.read_text()
