"""The server ends every process tree its session owns when it exits (stdin EOF or a
signal), in both modes: with the supervisor inside the server (standalone) and as a
front-end of a supervisor process, which then stops them as the session ends."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import group_pids, tagged_processes, wait_until
from support import RawServer

from process_mcp.core.trees import proc

pytestmark = pytest.mark.usefixtures("frontend_mode")

# Three levels (sh -> sh -> sleeps), a setsid escapee (own session, still a child of the
# leader) and a double-forked daemon (own session, orphaned: re-parented to the server).
TREE = 'sh -c "sleep 300 & sleep 301 & wait" & setsid sleep 302 & (setsid sleep 303 &); wait'
PER_TREE = 6  # outer sh, inner sh, 4 sleeps


def server_side(mode: str) -> int:
    """Processes of ours besides the managed ones: server (+ supervisor) + sentinel."""
    return 2 if mode == "standalone" else 3


def manager_pid(server: RawServer, mode: str, tag: str) -> int:
    """The process that runs the manager: the server, or the supervisor it started."""
    if mode == "standalone":
        return server.proc.pid
    for pid in tagged_processes(tag):
        with contextlib.suppress(OSError):
            if b"supervisor" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    raise AssertionError("no supervisor process found")


def start_tree(server: RawServer) -> int:
    result = server.call_tool("start", {"command": "sh", "args": ["-c", TREE]})
    return result["structuredContent"]["pid"]


@pytest.mark.parametrize("how", ["stdin-eof", "SIGTERM", "SIGINT", "SIGHUP", "SIGKILL"])
def test_server_exit_ends_every_tree(
    how: str, no_leftover_processes: str, frontend_mode: str
) -> None:
    server = RawServer()
    try:
        server.initialize()
        for _ in range(2):
            start_tree(server)
        # 2 trees, plus the server (and supervisor) and the sentinel
        expected = 2 * PER_TREE + server_side(frontend_mode)
        assert wait_until(lambda: len(tagged_processes(no_leftover_processes)) >= expected, 10)
        manager = manager_pid(server, frontend_mode, no_leftover_processes)

        def children() -> int:  # 2 leaders, 2 adopted daemons, the sentinel
            return len([p for p in proc.process_table() if p.ppid == manager])

        def settled() -> bool:
            # Both daemons adopted means the subshells that forked them are gone: the
            # count is then of the trees whole, not of a passing subshell.
            count = len(tagged_processes(no_leftover_processes))
            return children() == 2 + 2 + 1 and count == expected

        assert wait_until(settled, 10), (children(), tagged_processes(no_leftover_processes))
        started = time.monotonic()
        if how == "stdin-eof":
            server.close_stdin()
        else:
            server.proc.send_signal(getattr(signal, how))
        assert wait_until(lambda: not tagged_processes(no_leftover_processes), 5), tagged_processes(
            no_leftover_processes
        )
        assert time.monotonic() - started < 5
        assert server.wait(timeout=15) == (-9 if how == "SIGKILL" else 0)
    finally:
        server.kill()


def test_server_exit_escalates_for_sigterm_ignoring_children(
    no_leftover_processes: str, frontend_mode: str
) -> None:
    server = RawServer(PROCESS_MCP_STOP_GRACE="0.5")
    try:
        server.initialize()
        started = server.call_tool(
            "start", {"command": "sh", "args": ["-c", "trap '' TERM; sleep 300 & wait"]}
        )
        pgid = started["structuredContent"]["pid"]
        # leader, sleep, server (+ supervisor), sentinel
        expected = 2 + server_side(frontend_mode)
        assert wait_until(lambda: len(tagged_processes(no_leftover_processes)) == expected, 10)
        assert len(group_pids(pgid)) == 2
        server.close_stdin()
        assert server.wait(timeout=15) == 0
        # The server exits once its session's processes are gone.
        assert group_pids(pgid) == []
    finally:
        server.kill()


def group_commands(pgid: int) -> dict[int, str]:
    commands = {}
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError):
            commands[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return commands


def test_server_sigkill_ends_a_group_member_that_cleared_its_environment(
    no_leftover_processes: str, frontend_mode: str
) -> None:
    """An orphan that ran ``env -i`` carries no mark (nor the test's tag, so the leftover
    check cannot see it): after a SIGKILL of the server, the sentinel ends it because it is
    still in the leader's process group."""
    server = RawServer()
    pgid = None
    try:
        server.initialize()
        started = server.call_tool(
            "start", {"command": "sh", "args": ["-c", "(env -i sleep 309 &); exec sleep 308"]}
        )
        pgid = started["structuredContent"]["pid"]
        wanted = ["sleep 308 ", "sleep 309 "]
        assert wait_until(lambda: sorted(group_commands(pgid).values()) == wanted, 10)
        # Server (+ supervisor), sentinel and leader: a running sentinel was told of the
        # leader at its start.
        expected = 1 + server_side(frontend_mode)
        assert wait_until(lambda: len(tagged_processes(no_leftover_processes)) == expected, 10)
        server.proc.send_signal(signal.SIGKILL)
        assert wait_until(lambda: not group_pids(pgid), 5), group_commands(pgid)
    finally:
        server.kill()
        if pgid is not None:  # a failure must not leave the unmarked sleep behind
            for pid, command in group_commands(pgid).items():
                if command in ("sleep 308 ", "sleep 309 "):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
