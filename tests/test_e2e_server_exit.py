"""The server ends every process tree it manages when it exits (stdin EOF or a signal)."""

from __future__ import annotations

import signal
import time

import pytest
from conftest import tagged_processes, wait_until
from support import RawServer


def start_tree(server: RawServer) -> int:
    result = server.call_tool(
        "start", {"command": "sh", "args": ["-c", "sleep 300 & sleep 301 & wait"]}
    )
    return result["structuredContent"]["pid"]


@pytest.mark.parametrize("how", ["stdin-eof", "SIGTERM", "SIGINT", "SIGHUP"])
def test_server_exit_ends_every_tree(how: str, no_leftover_processes: str) -> None:
    server = RawServer()
    try:
        server.initialize()
        for _ in range(3):
            start_tree(server)
        # 3 leaders + 6 sleeps, plus the server itself
        assert wait_until(lambda: len(tagged_processes(no_leftover_processes)) == 10, 10)
        started = time.monotonic()
        if how == "stdin-eof":
            server.close_stdin()
        else:
            server.proc.send_signal(getattr(signal, how))
        assert server.wait(timeout=15) == 0
        assert time.monotonic() - started < 5
        assert tagged_processes(no_leftover_processes) == []
    finally:
        server.kill()


def test_server_exit_escalates_for_sigterm_ignoring_children(no_leftover_processes: str) -> None:
    server = RawServer(PROCESS_MCP_STOP_GRACE="0.5")
    try:
        server.initialize()
        server.call_tool(
            "start", {"command": "sh", "args": ["-c", "trap '' TERM; sleep 300 & wait"]}
        )
        assert wait_until(lambda: len(tagged_processes(no_leftover_processes)) == 3, 10)
        server.close_stdin()
        assert server.wait(timeout=15) == 0
        assert tagged_processes(no_leftover_processes) == []
    finally:
        server.kill()
