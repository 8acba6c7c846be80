"""A chosen subset of the suite, run again with ``PROCESS_MCP_PLATFORM=posix`` (the backend
macOS runs, exercised here without a Mac): the MCP end-to-end lifecycle with its logs and
waits (pattern, port and url), a SIGKILLed front-end (its processes end, others' stay) and
the service in process. Each is the very test of its own file, imported here so that it
runs in both modes without being written twice. The person's commands (start, wait for a
port and a url, ps, logs, stop) and a SIGKILLed supervisor (the sentinel leaves nothing)
run in posix mode in ``test_platform_audit.py``; the posix pieces are unit-tested below.

Tests that need what only Linux has (the subreaper's adopted orphans, cgroups) are not in
this list: on posix those guarantees are weaker, as ``docs/platforms.md`` says."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import eventually, tagged_processes
from test_e2e_supervisor import (
    test_a_sigkilled_front_end_loses_its_processes_and_only_those as test_front_end_sigkill,
)
from test_e2e_wait import test_dev_server_waited_on_by_pattern_port_and_url as test_waits
from test_supervisor_service import supervisor  # noqa: F401  (a fixture of the imported test)
from test_supervisor_service import (
    test_a_closed_session_stops_what_it_owns_and_nothing_else as test_service_sessions,
)

from process_mcp.core import ProcessManager, Settings, platform, settings
from process_mcp.core.options import StartRequest
from process_mcp.core.platform import unixsock
from process_mcp.core.spawn import reaping
from process_mcp.core.trees import proc

pytestmark = pytest.mark.anyio

__all__ = ["test_front_end_sigkill", "test_service_sessions", "test_waits"]


@pytest.fixture(autouse=True)
def posix(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every server, supervisor and in-process manager of the test runs the posix backend."""
    before = platform.name()
    monkeypatch.setenv("PROCESS_MCP_PLATFORM", "posix")
    monkeypatch.setenv("PROCESS_MCP_STANDALONE", "0")
    yield
    platform.select(before)


async def test_a_setsid_escapee_whose_parent_exits_is_still_stopped(tmp_path: Path) -> None:
    """Sticky membership: a member that left group and session (``setsid``) and whose
    parent exited, so no group, session or parent link leads to it, and whose environment
    we pretend is hidden (as macOS hides that of restricted binaries), is still found by
    the sweep that saw it attached, and stopped."""
    settings = Settings(state_dir=tmp_path / "state", stop_grace=0.5, exit_drain_grace=0.3)
    manager = ProcessManager(settings)
    table = manager.ownership.os.table
    hidden = table.environ_value
    table.environ_value = lambda pid, prefix: None  # the OS hides every environment
    try:
        script = "sh -c 'setsid sleep 300 & sleep 3' & sleep 300"
        record = await manager.start(StartRequest("sh", ["-c", script], cwd=str(tmp_path)))
        tag = os.environ["PROCESS_MCP_TEST_TAG"]

        def escapees() -> list[proc.ProcInfo]:
            found = [proc.read_proc(pid) for pid in tagged_processes(tag)]
            leaders = (record.pid, manager.ownership.sentinel.pid)  # sessions of their own
            return [p for p in found if p and p.sid == p.pid and p.pid not in leaders]

        def gone(pid: int) -> bool:
            info = proc.read_proc(pid)
            return info is None or info.zombie

        assert await eventually(lambda: len(escapees()) == 1, 10), escapees()
        (escapee,) = escapees()
        assert await eventually(lambda: gone(escapee.ppid), 10)  # no parent link leads to it
        assert escapee.pid in manager.tree_pids(record.id)  # remembered by the sweeps
        stopped = await manager.stop(record.id)
        assert (stopped.tree_gone, stopped.survivors) == (True, [])
        assert await eventually(lambda: gone(escapee.pid), 5)
    finally:
        table.environ_value = hidden
        await manager.shutdown()


async def test_exits_are_seen_without_pidfd(monkeypatch: pytest.MonkeyPatch) -> None:
    """The posix exit watch: SIGCHLD and waitpid of the watched pid only, with the exit
    status; another child's status is left for its own waiter."""
    platform.select("posix")
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    ours = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(7)"])
    other = subprocess.Popen(["sh", "-c", "exit 5"])
    seen: asyncio.Future[reaping.ExitStatus] = asyncio.get_running_loop().create_future()
    platform.watch_exit(ours.pid, seen.set_result)
    assert await asyncio.wait_for(seen, 10) == reaping.ExitStatus(exit_code=7, signal=None)
    assert other.wait(10) == 5  # its status was not taken


def test_macos_peer_credentials_parse() -> None:
    """``LOCAL_PEERCRED``'s struct xucred, as macOS fills it (version 0, uid, groups)."""
    raw = unixsock.XUCRED.pack(0, 501, 3, 20, 12, 61, *[0] * 13)
    assert unixsock.parse_xucred(raw, pid=42) == unixsock.PeerCredentials(42, 501, 20)
    with pytest.raises(ValueError, match="expected 76"):
        unixsock.parse_xucred(raw[:8])


def test_same_user_peer_is_no_stranger() -> None:
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        peer = unixsock.peer_credentials(ours)
        assert peer is not None and peer.uid == os.getuid() and peer.pid == os.getpid()
        assert unixsock.stranger(ours) is None


def test_runtime_folder_on_posix_is_private_and_short(tmp_path: Path) -> None:
    state, posix = tmp_path / "state", {"PROCESS_MCP_PLATFORM": "posix"}
    assert settings.runtime_dir(state, {**posix, "TMPDIR": str(tmp_path)}) == (
        tmp_path / f"process-mcp-{os.getuid()}"
    )
    deep = str(tmp_path / ("x" * 120))  # the socket there would pass sun_path
    assert settings.runtime_dir(state, {**posix, "TMPDIR": deep}) == Path(
        f"/tmp/process-mcp-{os.getuid()}"
    )
    assert settings.runtime_dir(state, {"PROCESS_MCP_PLATFORM": "linux"}) == state / "run"
    long = tmp_path / ("y" * 110) / "supervisor.sock"
    too_long = unixsock.socket_address(long, "posix")
    with pytest.raises(OSError, match="longer than 103 bytes"), too_long:
        pass


@pytest.mark.parametrize("value", ["macos", "LINUXX", "windows"])
def test_a_bad_platform_is_refused_with_the_choices(value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "process_mcp", "ps"],
        env={**os.environ, "PROCESS_MCP_PLATFORM": value},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "PROCESS_MCP_PLATFORM" in done.stderr and "auto, linux, posix" in done.stderr


def test_windows_is_told_to_use_wsl(isolated_supervisor: Path) -> None:
    """On Windows: one line suggesting WSL, exit 2, no traceback, no supervisor started."""
    program = (
        "import sys; sys.platform = 'win32'; sys.argv = ['process-mcp']; "
        "from process_mcp.entry import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and "WSL" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == "" and not isolated_supervisor.exists()
