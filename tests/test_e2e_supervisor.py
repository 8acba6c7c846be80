"""One supervisor for every session, end to end: real servers (front-ends) over
stdio, the real supervisor they start, real processes.

Sessions share a project folder's view, own what they start (stopped when the session ends,
even by SIGKILL), ``keep`` detaches; a SIGKILLed supervisor leaves no managed process, the
next one ends what a dead one left, and a supervisor of another version is never used.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import eventually, group_pids, tagged_processes, wait_until
from support import SERVER_ARGV, RawServer, mcp_client, server_env, wait_status

from process_mcp.supervisor.paths import SupervisorPaths

pytestmark = [pytest.mark.anyio, pytest.mark.server_process]  # front-ends are processes

SLEEP = {"command": "sleep", "args": ["300"]}
# A leader, a grandchild, a setsid escapee and a double-forked daemon.
TREE = "sleep 300 & setsid sleep 301 & (setsid sleep 302 &); wait"


def supervisor_pid() -> int:
    pid = SupervisorPaths.from_env().holder_pid()
    assert pid is not None and psutil.pid_exists(pid), "no supervisor runs"
    return pid


def command_line(pid: int) -> bytes:
    try:
        return "\0".join(psutil.Process(pid).cmdline()).encode()
    except (psutil.Error, OSError):
        return b""


def managed() -> dict[int, bytes]:
    """The test's processes that are not ours (supervisor, sentinel), with command lines."""
    lines = {pid: command_line(pid) for pid in tagged_processes(os.environ["PROCESS_MCP_TEST_TAG"])}
    return {pid: line for pid, line in lines.items() if line and b"process_mcp" not in line}


# What TREE runs once settled: the subshell that forked the daemon has exited.
TREE_RUNS = [b"sh\0-c\0" + TREE.encode(), b"sleep\x00300", b"sleep\x00301", b"sleep\x00302"]


def alive(pids: list[int] | set[int]) -> list[int]:
    """Those of ``pids`` still running (not zombies), by the test's tag."""
    tagged = set(tagged_processes(os.environ["PROCESS_MCP_TEST_TAG"]))
    return sorted(tagged & set(pids))


async def test_two_sessions_in_one_folder_share_the_view_and_either_may_stop(
    tmp_path: Path,
) -> None:
    async with mcp_client() as alice, mcp_client() as bob:
        started = await alice.ok("start", {**SLEEP, "label": "web"})
        listed = (await bob.ok("list"))["processes"]
        assert [(p["id"], p["owner"], p["label"]) for p in listed] == [
            (started["id"], "other", "web")
        ]
        assert [p["owner"] for p in (await alice.ok("list"))["processes"]] == ["self"]
        stopped = await bob.ok("stop", {"id": started["id"]})
        assert stopped["status"] == "stopped" and stopped["treeGone"] is True
        assert group_pids(started["pid"]) == []
        # Bob stopped it: his answer shows the end itself, so its 'events' does not repeat
        # it, nor does his next answer. Alice started it: her next answer reports it.
        assert "events" not in stopped
        assert "events" not in await bob.ok("list")
        listed = await alice.ok("list")
        assert [(e["id"], e["status"]) for e in listed["events"]] == [(started["id"], "stopped")]
        assert "events" not in await alice.ok("list")
        # Both front-ends talk to one supervisor.
        tagged = tagged_processes(os.environ["PROCESS_MCP_TEST_TAG"])
        assert len([pid for pid in tagged if b"supervisor" in command_line(pid)]) == 1


async def test_a_session_ending_stops_its_processes_not_others_nor_kept_ones() -> None:
    tag = os.environ["PROCESS_MCP_TEST_TAG"]
    async with mcp_client() as bob:
        others = await bob.ok("start", SLEEP)
        async with mcp_client() as alice:
            await alice.ok("list")
            before = set(tagged_processes(tag))
            own = await alice.ok("start", {"command": "sh", "args": ["-c", TREE]})

            def own_tree() -> set[int]:
                new = set(tagged_processes(tag)) - before
                return {pid for pid in new if b"sentinel" not in command_line(pid)}

            assert await eventually(lambda: len(own_tree()) == 4, timeout=10)
            tree = own_tree()
            kept = await alice.ok("start", {**SLEEP, "keep": True, "label": "kept"})
        # Alice's server exited: its session ended, its processes (escapees too) with it.
        assert (await bob.ok("get-status", {"id": own["id"]}))["status"] == "stopped"
        assert group_pids(own["pid"]) == []
        assert await eventually(lambda: not alive(tree), timeout=5), alive(tree)
        assert (await bob.ok("get-status", {"id": others["id"]}))["status"] == "running"
        assert (await bob.ok("get-status", {"id": kept["id"]}))["status"] == "running"
        async with mcp_client() as carol:
            owners = {p["id"]: p["owner"] for p in (await carol.ok("list"))["processes"]}
            assert owners == {own["id"]: "other", kept["id"]: "kept", others["id"]: "other"}
            await carol.ok("stop", {"id": kept["id"]})
        assert (await bob.ok("get-status", {"id": others["id"]}))["status"] == "running"


async def test_a_sigkilled_front_end_loses_its_processes_and_only_those() -> None:
    tag = os.environ["PROCESS_MCP_TEST_TAG"]
    async with mcp_client() as bob:
        others = await bob.ok("start", SLEEP)
        alice = RawServer()
        try:
            alice.initialize()
            alice.call_tool("list", {})
            before = set(tagged_processes(tag))
            tree = alice.call_tool("start", {"command": "sh", "args": ["-c", TREE]})
            pgid = tree["structuredContent"]["pid"]
            assert wait_until(lambda: len(set(tagged_processes(tag)) - before) == 4, 10)
            ends = set(tagged_processes(tag)) - before
            killed = time.monotonic()
            alice.proc.send_signal(signal.SIGKILL)
            assert wait_until(lambda: not alive(ends), 5), alive(ends)
            assert time.monotonic() - killed < 5
            assert group_pids(pgid) == []
        finally:
            alice.kill()
        status = await wait_status(bob, tree["structuredContent"]["id"], {"stopped"})
        assert status["status"] == "stopped"
        assert (await bob.ok("get-status", {"id": others["id"]}))["status"] == "running"


async def test_two_front_ends_sigkilled_at_once_lose_only_their_own() -> None:
    async with mcp_client() as carol:
        servers = [RawServer(), RawServer()]
        try:
            groups = []
            for server in servers:
                server.initialize()
                started = server.call_tool("start", SLEEP)["structuredContent"]
                groups.append(started["pid"])
            kept = await carol.ok("start", SLEEP)
            for server in servers:
                server.proc.send_signal(signal.SIGKILL)
            assert wait_until(lambda: not any(group_pids(g) for g in groups), 5)
        finally:
            for server in servers:
                server.kill()
        assert (await carol.ok("get-status", {"id": kept["id"]}))["status"] == "running"
        assert group_pids(kept["pid"]) == [kept["pid"]]


async def test_a_sigkilled_supervisor_leaves_no_managed_process_and_is_replaced() -> None:
    async with mcp_client() as client:
        first = await client.ok("start", {"command": "sh", "args": ["-c", TREE]})
        kept = await client.ok("start", {**SLEEP, "keep": True})
        wanted = sorted([*TREE_RUNS, b"sleep\x00300"])
        assert await eventually(lambda: sorted(managed().values()) == wanted, timeout=10)
        old = supervisor_pid()
        running = set(managed())
        assert {first["pid"], kept["pid"]} <= running
        killed = time.monotonic()
        os.kill(old, signal.SIGKILL)
        assert wait_until(lambda: not alive(running), 5), alive(running)
        assert time.monotonic() - killed < 5
        # The front-end lives on: its next call meets a fresh supervisor.
        again = await client.ok("start", SLEEP)
        assert supervisor_pid() != old
        assert [p["id"] for p in (await client.ok("list"))["processes"]] == [again["id"]]


async def test_the_next_supervisor_ends_what_a_dead_one_and_its_sentinel_left() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "sh", "args": ["-c", TREE]})
        assert await eventually(lambda: sorted(managed().values()) == sorted(TREE_RUNS), 10)
        old = supervisor_pid()
        tagged = set(tagged_processes(os.environ["PROCESS_MCP_TEST_TAG"]))
        sentinel = [pid for pid in tagged if b"sentinel" in command_line(pid)]
        assert len(sentinel) == 1
        leftovers = set(managed())
        os.kill(sentinel[0], signal.SIGKILL)  # first, so it cannot act on the next kill
        os.kill(old, signal.SIGKILL)
        assert len(leftovers) == 4 and started["pid"] in leftovers
        assert wait_until(lambda: command_line(old) == b"", 5)  # gone (or a zombie)
        assert alive(leftovers) == sorted(leftovers)  # nobody ended them yet
        await client.ok("list")  # reconnects: a new supervisor, which ends them at its start
        assert wait_until(lambda: not alive(leftovers), 5), alive(leftovers)


async def test_environment_and_folder_travel_with_each_start(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    (second / "sub").mkdir(parents=True)
    first.mkdir()
    script = "echo FLAVOUR=$FLAVOUR ONLY_FIRST=${ONLY_FIRST:-unset} X=$X; pwd"
    async with (
        mcp_client(cwd=str(first), FLAVOUR="first", ONLY_FIRST="yes") as one,
        mcp_client(cwd=str(second), FLAVOUR="second") as two,
    ):
        ran = await two.ok("start", {"command": "sh", "args": ["-c", script], "env": {"X": "1"}})
        sub = await two.ok("start", {"command": "pwd", "cwd": "sub"})
        assert ran["cwd"] == str(second.resolve()) and sub["cwd"] == str((second / "sub").resolve())
        await two.ok("wait", {"id": ran["id"]})
        lines = (await two.ok("get-log", {"id": ran["id"]}))["lines"]
        assert lines == ["FLAVOUR=second ONLY_FIRST=unset X=1", str(second.resolve())]
        # Scope: each session lists its own folder's processes; all: true lists every one.
        assert (await one.ok("list"))["processes"] == []
        assert {p["id"] for p in (await one.ok("list", {"all": True}))["processes"]} == {
            ran["id"],
            sub["id"],
        }


async def test_the_token_never_reaches_a_child() -> None:
    async with mcp_client(PROCESS_MCP_TOKEN="s3cret-token") as client:
        started = await client.ok("start", {"command": "env"})
        await client.ok("wait", {"id": started["id"]})
        text = "\n".join((await client.ok("get-log", {"id": started["id"]}))["lines"])
        assert "PROCESS_MCP_TEST_TAG" in text and "s3cret-token" not in text


async def test_a_busy_supervisor_of_another_version_is_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    from process_mcp.supervisor.client import (
        SupervisorClient,
        launch_supervisor,
        supervisor_command,
    )

    paths = SupervisorPaths.from_env()
    command = supervisor_command(paths, ["--report-version", "0.0.1-old"])
    assert await launch_supervisor(paths, command, timeout=20) == 0
    old = await SupervisorClient.connect(paths.socket, kind="old", version="0.0.1-old")
    try:
        await old.request(
            "start",
            {**SLEEP, "base_env": dict(os.environ), "folder": str(tmp_path)},
        )
        front = subprocess.run(
            SERVER_ARGV,
            env=server_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
        assert front.returncode == 1
        message = front.stderr.decode()
        assert "0.0.1-old" in message and "Traceback" not in message, message
        assert len(message.strip().splitlines()) == 1
    finally:
        await old.close()  # its session's sleep stops; the old supervisor then idles out


async def test_standalone_runs_no_supervisor_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCESS_MCP_STANDALONE", "1")
    async with mcp_client() as client:
        started = await client.ok("start", SLEEP)
        assert [p["owner"] for p in (await client.ok("list"))["processes"]] == ["self"]
        tagged = tagged_processes(os.environ["PROCESS_MCP_TEST_TAG"])
        assert not [pid for pid in tagged if b"supervisor" in command_line(pid)]
        assert not SupervisorPaths.from_env().socket.exists()
        await client.ok("stop", {"id": started["id"]})


async def test_reuse_restart_changes_and_waits_work_across_sessions() -> None:
    async with mcp_client() as alice, mcp_client() as bob:
        web = await alice.ok("start", {**SLEEP, "label": "web"})
        # Bob asks for 'web' with reuse: Alice's running process answers, nothing starts.
        reused = await bob.ok(
            "start", {"command": "sleep", "args": ["9"], "label": "web", "reuse": True}
        )
        assert (reused["id"], reused["pid"], reused["reused"]) == (web["id"], web["pid"], True)
        # Bob restarts it with other args: same id, new pid, still Alice's.
        again = await bob.ok("restart", {"id": web["id"], "args": ["301"]})
        assert (again["args"], again["restarts"]) == (["301"], 1) and again["pid"] != web["pid"]
        [listed] = (await alice.ok("list"))["processes"]
        assert (listed["command"], listed["owner"]) == ("sleep 301", "self")
        # A wait for several: one ends (its tail comes along), the other runs on.
        echo = await bob.ok("start", {"command": "sh", "args": ["-c", "echo one; echo two"]})
        waited = await alice.ok(
            "wait", {"ids": [echo["id"], web["id"]], "mode": "any", "tailLines": 1}
        )
        assert waited["met"] is True and waited["running"] == [web["id"]]
        assert [(e["id"], e["tail"]) for e in waited["ended"]] == [(echo["id"], ["two"])]
        # One process: the honest answer, with the cursor to read on from.
        single = await alice.ok("wait", {"id": echo["id"], "pattern": "one"})
        assert (single["met"], single["reason"], single["nextCursor"]) == (False, "exited", 2)
        status = await bob.ok("get-status", {"id": web["id"]})
        assert status["status"] == "running" and status["restarts"] == 1


async def test_an_earlier_supervisors_run_is_read_from_the_history() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "sh", "args": ["-c", "echo from-before"]})
        await client.ok("wait", {"id": started["id"]})
        old = supervisor_pid()
    # No client and nothing running: the supervisor idles out (0.5 s in tests).
    assert wait_until(lambda: command_line(old) == b"", 15)
    async with mcp_client() as client:
        status = await client.ok("get-status", {"id": started["id"]})
        assert (status["status"], status["exitCode"]) == ("exited", 0)
        log = await client.ok("get-log", {"id": started["id"]})
        assert log["lines"] == ["from-before"]
        assert (await client.ok("list"))["processes"] == []  # a new supervisor's view
        assert supervisor_pid() != old
        unknown = await client.ok("get-status", {"id": "nope00"})
        assert unknown == {"id": "nope00", "status": "not-exists"}


SHOW_DISPOSITIONS = (
    "import signal\n"
    "names = ('SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGUSR1')\n"
    "found = (signal.getsignal(getattr(signal, n)) for n in names)\n"
    "print(*(getattr(h, 'name', getattr(h, '__name__', h)) for h in found))\n"
)


@pytest.mark.parametrize("standalone", [False, True], ids=["supervisor", "standalone"])
async def test_children_start_with_every_signal_at_its_default(standalone: bool) -> None:
    """A launch in the background leaves SIGINT and SIGQUIT ignored, ``nohup`` SIGHUP, and
    an ignored signal is inherited through exec: neither the server nor the supervisor
    may pass one on, so Ctrl-C, a hang-up or SIGQUIT reach a child as from a terminal."""
    ignored = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1)
    before = {signum: signal.signal(signum, signal.SIG_IGN) for signum in ignored}
    try:
        env = {"PROCESS_MCP_STANDALONE": "1"} if standalone else {}
        async with mcp_client(process=True, **env) as client:
            started = await client.ok(
                "start", {"command": sys.executable, "args": ["-c", SHOW_DISPOSITIONS]}
            )
            await client.ok("wait", {"id": started["id"]})
            lines = (await client.ok("get-log", {"id": started["id"]}))["lines"]
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    # SIGINT at its default is what makes Python install its KeyboardInterrupt handler
    assert lines == ["SIG_DFL default_int_handler SIG_DFL SIG_DFL SIG_DFL"]
