"""The server ends every process tree it manages when it exits (stdin EOF or a signal)."""

from __future__ import annotations

import signal
import time

import pytest
from conftest import tagged_processes, wait_until
from support import RawServer

from process_mcp.core.trees import proc

# Three levels (sh -> sh -> sleeps), a setsid escapee (own session, still a child of the
# leader) and a double-forked daemon (own session, orphaned: re-parented to the server).
TREE = 'sh -c "sleep 300 & sleep 301 & wait" & setsid sleep 302 & (setsid sleep 303 &); wait'
PER_TREE = 6  # outer sh, inner sh, 4 sleeps


def start_tree(server: RawServer) -> int:
    result = server.call_tool("start", {"command": "sh", "args": ["-c", TREE]})
    return result["structuredContent"]["pid"]


@pytest.mark.parametrize("how", ["stdin-eof", "SIGTERM", "SIGINT", "SIGHUP", "SIGKILL"])
def test_server_exit_ends_every_tree(how: str, no_leftover_processes: str) -> None:
    server = RawServer()
    try:
        server.initialize()
        for _ in range(2):
            start_tree(server)
        # 2 trees, plus the server and its sentinel
        expected = 2 * PER_TREE + 2
        assert wait_until(lambda: len(tagged_processes(no_leftover_processes)) == expected, 10)

        def children() -> int:  # 2 leaders, 2 adopted daemons, the sentinel
            return len([p for p in proc.process_table() if p.ppid == server.proc.pid])

        assert wait_until(lambda: children() == 2 + 2 + 1, 10)
        assert len(tagged_processes(no_leftover_processes)) == expected
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


def test_server_exit_escalates_for_sigterm_ignoring_children(no_leftover_processes: str) -> None:
    server = RawServer(PROCESS_MCP_STOP_GRACE="0.5")
    try:
        server.initialize()
        server.call_tool(
            "start", {"command": "sh", "args": ["-c", "trap '' TERM; sleep 300 & wait"]}
        )
        # leader, sleep, server, sentinel
        assert wait_until(lambda: len(tagged_processes(no_leftover_processes)) == 4, 10)
        server.close_stdin()
        assert server.wait(timeout=15) == 0
        assert tagged_processes(no_leftover_processes) == []
    finally:
        server.kill()
