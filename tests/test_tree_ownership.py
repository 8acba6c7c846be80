"""No orphans, ever: escapees, a SIGKILLed server, leftovers of a crashed one, fd limits,
zombies. Real processes and signals; the autouse leak check fails any test that leaves one."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import eventually, tagged_processes, wait_until
from support import RawServer, call_over_http, mcp_client

from process_mcp.core import ProcessManager, Settings, Status, platform
from process_mcp.core.options import StartRequest
from process_mcp.core.spawn import fdlimit
from process_mcp.core.trees import proc
from process_mcp.supervisor.paths import SupervisorPaths

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def manager_in_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The end-to-end tests here are of the manager's guarantees in the process that runs it
    (its sentinel is that process's child; SIGKILL that process): the server, run
    ``--standalone``. With a supervisor, the same guarantees are the supervisor process's:
    ``test_e2e_supervisor.py`` kills and replaces it, and the 200-children test below runs
    in both modes."""
    monkeypatch.setenv("PROCESS_MCP_STANDALONE", "1")


ESCAPEES = "setsid sleep 300 & (setsid sleep 301 &); wait"  # a setsid child, a daemon
STUBBORN = "trap '' TERM; exec sleep 300"  # a sleep that ignores SIGTERM


def ignores_sigterm(pid: int) -> bool:
    """Whether ``pid`` is a process that ignores SIGTERM (from /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = int(status.split("SigIgn:")[1].split()[0], 16)
    return bool(ignored & (1 << (signal.SIGTERM - 1))) and "sleep" in status.split()[1]


SUBREAPER = platform.name() == platform.LINUX  # posix: orphans go to init, not to us


def ended(pid: int) -> bool:
    """``pid`` is gone and reaped; with no subreaper (the posix backend), a zombie left for
    init to reap also counts: it was killed, and reaping it is init's work, not ours."""
    info = proc.read_proc(pid)
    return info is None or (not SUBREAPER and info.zombie and info.ppid != os.getpid())


def ppid_of(pid: int) -> int | None:
    info = proc.read_proc(pid)
    return info.ppid if info else None


def sentinel_of(server_pid: int) -> int | None:
    for info in proc.process_table():
        if info.ppid == server_pid and not info.zombie:
            cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
            if b"sentinel_program.py" in cmdline:
                return info.pid
    return None


# ------------------------------------------------------------------ stop
async def test_stop_ends_setsid_escapee_and_double_forked_daemon(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", ESCAPEES]))

    def escaped() -> bool:
        # three processes in three sessions (the leader's and two escaped ones), and the
        # daemon orphaned and re-parented to us (subreaper), not to init
        pids = manager.tree_pids(record.id)
        sessions = {info.sid for pid in pids if (info := proc.read_proc(pid))}
        adopted = not SUBREAPER or os.getpid() in map(ppid_of, pids)
        return len(pids) == 3 and len(sessions) == 3 and adopted

    assert await eventually(escaped, 10)
    pids = manager.tree_pids(record.id)
    await manager.stop(record.id)
    assert record.status is Status.STOPPED
    assert manager.tree_pids(record.id) == []
    assert all(ended(pid) for pid in pids)  # gone, and reaped


async def test_stop_of_an_ended_process_ends_the_daemon_it_left(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "(setsid sleep 300 &); echo forked"]))
    await manager.wait_ended(record.id)
    assert record.status is Status.EXITED
    assert await eventually(lambda: len(manager.tree_pids(record.id)) == 1, 10)
    stopped = await manager.stop(record.id)
    assert stopped.tree_gone
    assert record.status is Status.EXITED  # its status does not change
    assert manager.tree_pids(record.id) == []


async def test_remove_ends_the_daemon_an_ended_process_left(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "(setsid sleep 300 &)"]))
    await manager.wait_ended(record.id)
    assert await eventually(lambda: len(manager.tree_pids(record.id)) == 1, 10)
    daemon = manager.tree_pids(record.id)[0]
    await manager.remove(record.id)
    assert ended(daemon)


async def test_shutdown_ends_daemons_of_ended_processes(settings: Settings) -> None:
    manager = ProcessManager(settings)
    record = await manager.start(StartRequest("sh", ["-c", "(setsid sleep 300 &)"]))
    await manager.wait_ended(record.id)
    assert await eventually(lambda: len(manager.tree_pids(record.id)) == 1, 10)
    daemon = manager.tree_pids(record.id)[0]
    await manager.shutdown()
    assert ended(daemon)


async def test_stop_escalates_for_a_sigterm_ignoring_escapee(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", f"setsid sh -c {STUBBORN!r} & wait"]))
    assert await eventually(lambda: len(manager.tree_pids(record.id)) == 2, 10)
    [escapee] = [pid for pid in manager.tree_pids(record.id) if pid != record.pid]
    assert await eventually(lambda: ignores_sigterm(escapee), 10)
    started = time.monotonic()
    stopped = await manager.stop(record.id)
    assert time.monotonic() - started >= manager.settings.stop_grace * 0.9
    assert (stopped.tree_gone, stopped.survivors) == (True, [])
    assert ended(escapee)
    assert manager.tree_pids(record.id) == []


async def test_shutdown_escalates_for_a_sigterm_ignoring_daemon(settings: Settings) -> None:
    manager = ProcessManager(settings)
    record = await manager.start(StartRequest("sh", ["-c", f"(setsid sh -c {STUBBORN!r} &)"]))
    await manager.wait_ended(record.id)
    assert await eventually(lambda: len(manager.tree_pids(record.id)) == 1, 10)
    [daemon] = manager.tree_pids(record.id)
    assert await eventually(lambda: ignores_sigterm(daemon), 10)
    await manager.shutdown()
    assert ended(daemon)


@pytest.mark.server_process  # counts the server among the processes left
async def test_e2e_stop_says_the_tree_is_gone(no_leftover_processes: str) -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "sh", "args": ["-c", ESCAPEES]})
        assert await eventually(lambda: len(tagged_processes(no_leftover_processes)) == 5, 10)
        stopped = await client.ok("stop", {"id": started["id"]})
        assert (stopped["status"], stopped["treeGone"], stopped.get("survivors", [])) == (
            "stopped",
            True,
            [],
        )
        # only the server and its sentinel are left
        assert await eventually(lambda: len(tagged_processes(no_leftover_processes)) == 2, 5)


async def test_each_process_is_recorded_with_a_start_window_holding_its_start(
    manager: ProcessManager,
) -> None:
    record = await manager.start(StartRequest("sleep", ["300"]))
    actual = proc.read_proc(record.pid).start_ticks
    records = manager.instance_dir / "processes.jsonl"
    assert await eventually(records.exists, 5)  # written in a batch, 20 ms after
    lines = records.read_text().splitlines()
    [entry] = [json.loads(line) for line in lines]
    earliest, latest = entry.pop("startTicks")
    assert earliest <= actual <= latest
    assert latest - earliest <= 10  # ticks are 10 ms; a spawn takes about 1
    assert entry == {
        "id": record.id,
        "pid": record.pid,
        "pgid": record.pid,
        "command": "sleep",
        "args": ["300"],
    }
    owner = json.loads((manager.instance_dir / "server.json").read_text())
    assert owner["pid"] == os.getpid() and owner["token"] == manager.ownership.token
    await manager.stop(record.id)


# ------------------------------------------------------------ server SIGKILL
def test_200_running_children_end_within_5s_of_manager_sigkill(
    no_leftover_processes: str, frontend_mode: str
) -> None:
    """SIGKILL of the process running the manager: the server, or its supervisor."""
    server = RawServer()
    try:
        server.initialize()
        for _ in range(200):
            server.call_tool("start", {"command": "sh", "args": ["-c", "sleep 300 & wait"]})
        # sh + sleep each, the server (+ the supervisor), the sentinel
        expected = 2 * 200 + (2 if frontend_mode == "standalone" else 3)
        assert wait_until(lambda: len(tagged_processes(no_leftover_processes)) == expected, 20)
        started = time.monotonic()
        if frontend_mode == "standalone":
            server.proc.kill()
        else:
            holder = SupervisorPaths.from_env().holder_pid()
            assert holder is not None
            os.kill(holder, signal.SIGKILL)
        survivors = {server.proc.pid} if frontend_mode == "supervisor" else set()
        assert wait_until(lambda: set(tagged_processes(no_leftover_processes)) == survivors, 5)
        assert time.monotonic() - started < 5
    finally:
        server.kill()


def test_sentinel_escalates_for_sigterm_ignoring_children(no_leftover_processes: str) -> None:
    server = RawServer(PROCESS_MCP_STOP_GRACE="0.5")
    try:
        server.initialize()
        tree = f"setsid sh -c {STUBBORN!r} & trap '' TERM; sleep 301 & wait"
        server.call_tool("start", {"command": "sh", "args": ["-c", tree]})
        # the leader, the escapee, the sleep, the server, the sentinel
        assert wait_until(lambda: len(tagged_processes(no_leftover_processes)) == 5, 10)
        started = time.monotonic()
        server.proc.kill()
        assert wait_until(lambda: not tagged_processes(no_leftover_processes), 5)
        assert time.monotonic() - started >= 0.45  # SIGTERM was tried for the grace first
    finally:
        server.kill()


def test_a_killed_sentinel_is_replaced(no_leftover_processes: str) -> None:
    server = RawServer()
    try:
        server.initialize()
        server.call_tool("start", {"command": "sh", "args": ["-c", ESCAPEES]})
        assert wait_until(lambda: sentinel_of(server.proc.pid) is not None, 10)
        first = sentinel_of(server.proc.pid)
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: sentinel_of(server.proc.pid) not in (None, first), 10)
        assert wait_until(lambda: len(tagged_processes(no_leftover_processes)) == 3 + 2, 10)
        server.proc.kill()
        assert wait_until(lambda: not tagged_processes(no_leftover_processes), 5)
    finally:
        server.kill()


# ------------------------------------------------------- leftovers of a crash
def test_next_server_ends_leftovers_of_a_crash_but_not_a_reused_pid(
    isolated_state_dir: Path, no_leftover_processes: str
) -> None:
    state = isolated_state_dir
    first = RawServer(PROCESS_MCP_STATE_DIR=str(state))
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    second = None
    try:
        first.initialize()
        first.call_tool("start", {"command": "sh", "args": ["-c", ESCAPEES]})
        leftovers = 3  # sh, the setsid sleep, the daemon
        count = lambda: len(tagged_processes(no_leftover_processes))  # noqa: E731
        assert wait_until(lambda: count() == leftovers + 3, 10)  # + server, sentinel, bystander
        [instance] = list(state.glob(f"{first.proc.pid}-*"))  # beside it: the history
        assert wait_until((instance / "processes.jsonl").exists, 5)
        # Server and sentinel die together: freeze the sentinel, kill the server, kill it.
        sentinel = sentinel_of(first.proc.pid)
        assert sentinel is not None
        os.kill(sentinel, signal.SIGSTOP)
        first.proc.kill()
        first.wait()
        os.kill(sentinel, signal.SIGKILL)
        assert wait_until(lambda: count() == leftovers + 1, 5)  # the leftovers still run
        # A record whose pid now names an unrelated process (own group, pgid == pid).
        real = proc.read_proc(bystander.pid)
        with open(instance / "processes.jsonl", "a") as records:
            fake = {"id": "reused", "pid": bystander.pid, "pgid": bystander.pid}
            ticks = [real.start_ticks - 100, real.start_ticks - 1]  # not this process's
            fake |= {"startTicks": ticks, "command": "sleep", "args": []}
            records.write(json.dumps(fake) + "\n")

        second = RawServer(PROCESS_MCP_STATE_DIR=str(state))
        second.initialize()
        expected = sorted([second.proc.pid, bystander.pid])
        assert wait_until(lambda: sorted(tagged_processes(no_leftover_processes)) == expected, 5)
        assert bystander.poll() is None  # left alone
        assert not instance.exists()
    finally:
        bystander.kill()
        bystander.wait()
        first.kill()
        if second is not None:
            second.kill()


# ----------------------------------------------------------------- fd limit
def test_soft_fd_limit_is_raised_to_hard() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        assert fdlimit.raise_soft_limit()[0] == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_start_is_refused_cleanly_under_ulimit_64(no_leftover_processes: str) -> None:
    server = RawServer()
    try:
        server.initialize()
        resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (64, 64))
        started, error = [], None
        for _ in range(64):
            result = server.call_tool("start", {"command": "sleep", "args": ["300"]})
            if result.get("isError"):
                error = result["content"][0]["text"]
                break
            started.append(result["structuredContent"]["id"])
        assert error is not None and len(started) >= 3
        assert "RLIMIT_NOFILE" in error and "soft 64, hard 64" in error
        assert "ulimit -n" in error
        # nothing half-started: each started sleep, the server, its sentinel
        assert wait_until(
            lambda: len(tagged_processes(no_leftover_processes)) == len(started) + 2, 5
        )
        # still serving: stopping a few frees enough for the next start
        for process_id in started[:3]:
            stopped = server.call_tool("stop", {"id": process_id, "force": True})
            assert stopped["structuredContent"]["treeGone"] is True
        again = server.call_tool("start", {"command": "sleep", "args": ["300"]})
        assert not again.get("isError"), again
        server.close_stdin()
        assert server.wait() == 0
    finally:
        server.kill()


# ------------------------------------------------------------------ zombies
def test_1000_starts_of_true_leave_no_zombie(no_leftover_processes: str) -> None:
    server = RawServer()
    try:
        server.initialize()
        for _ in range(1000):
            server.call_tool("start", {"command": "true"})

        def all_exited() -> bool:
            listed = server.call_tool("list", {"ended": 1000})["structuredContent"]["processes"]
            return len(listed) == 1000 and all(p["status"] == "exited" for p in listed)

        assert wait_until(all_exited, 30, interval=0.2)
        children = [p for p in proc.process_table() if p.ppid == server.proc.pid]
        assert [p for p in children if p.zombie] == []
        assert len(children) == 1  # the sentinel
    finally:
        server.kill()


# ------------------------------------------------------------ nested servers


@pytest.mark.parametrize("how", ["SIGKILL", "stdin-eof"])
async def test_a_server_run_by_a_server_is_owned_by_both(
    how: str, no_leftover_processes: str
) -> None:
    outer = RawServer()
    try:
        outer.initialize()
        inner_argv = ["-m", "process_mcp", "--transport", "http", "--port", "0"]
        inner = outer.call_tool(
            "start",
            {"command": sys.executable, "args": inner_argv, "env": {"PROCESS_MCP_TOKEN": "t0k"}},
        )["structuredContent"]

        def inner_url() -> str | None:
            log = outer.call_tool("get-log", {"id": inner["id"]})["structuredContent"]
            found = [line for line in log["lines"] if "serving MCP at " in line]
            return found[0].split("serving MCP at ")[1].split()[0] if found else None

        assert await eventually(inner_url, 20, interval=0.1)
        # keep: the HTTP session that starts it ends right after (which would stop it)
        await call_over_http(
            inner_url(), "t0k", "start", {"command": "sh", "args": ["-c", ESCAPEES], "keep": True}
        )
        # outer + its sentinel, inner + its sentinel, the tree (3)
        count = lambda: len(tagged_processes(no_leftover_processes))  # noqa: E731
        assert await eventually(lambda: count() == 7, 10)
        if how == "SIGKILL":
            outer.proc.kill()
        else:
            outer.close_stdin()
        assert await eventually(lambda: count() == 0, 5), tagged_processes(no_leftover_processes)
    finally:
        outer.kill()
