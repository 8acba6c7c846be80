"""Interop with a client we did not write: the MCP Inspector CLI (npm package
@modelcontextprotocol/inspector).

``.ci/run`` installs it under ``.ci/inspector``; elsewhere set ``PROCESS_MCP_INSPECTOR`` to its
``mcp-inspector`` binary. Under CI the tests must run, never skip.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TAG_VAR
from support import HttpServer, server_env

ROOT = Path(__file__).resolve().parent.parent
LOCAL_INSPECTOR = ROOT / ".ci" / "inspector" / "node_modules" / ".bin" / "mcp-inspector"
TOKEN = "interop-test-token"


def inspector_binary() -> str:
    candidate = os.environ.get("PROCESS_MCP_INSPECTOR") or str(LOCAL_INSPECTOR)
    if Path(candidate).exists():
        return candidate
    if os.environ.get("CI"):
        pytest.fail(f"MCP Inspector not installed at {candidate}: .ci/run must install it")
    pytest.skip("MCP Inspector not installed (run .ci/run or set PROCESS_MCP_INSPECTOR)")


def inspect(*args: str, expect_error: bool = False) -> dict[str, Any]:
    result = subprocess.run(
        [inspector_binary(), "--cli", *args, "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env=server_env(),
        check=False,
    )
    # The Inspector exits non-zero when a tool answers isError; the payload is still on stdout.
    assert (result.returncode != 0) == expect_error, f"inspector: {result.stderr}\n{result.stdout}"
    return json.loads(result.stdout)


def isolation_flags() -> list[str]:
    """The Inspector gives a stdio server only a few safe variables (HOME, PATH, ...): pass
    the test's own folders, idle timeout and tag with ``-e``, so the supervisor that server
    starts is this test's (found by the leftover check, gone 0.5 s after it)."""
    names = ("PROCESS_MCP_STATE_DIR", "PROCESS_MCP_RUNTIME_DIR", "PROCESS_MCP_SUPERVISOR_IDLE")
    flags: list[str] = []
    for name in (*names, TAG_VAR):
        flags += ["-e", f"{name}={os.environ[name]}"]
    return flags


def test_inspector_lists_tools_over_stdio() -> None:
    listed = inspect(
        *isolation_flags(), sys.executable, "-m", "process_mcp", "--method", "tools/list"
    )
    names = {tool["name"] for tool in listed["tools"]}
    assert names >= {"start", "stop", "get-status", "get-log", "list", "get-pid", "remove"}
    start = next(tool for tool in listed["tools"] if tool["name"] == "start")
    assert start["inputSchema"]["required"] == ["command"]
    assert start["outputSchema"]["type"] == "object"


def call_over_http(
    server: HttpServer, tool: str, arguments: dict[str, Any], expect_error: bool = False
) -> dict[str, Any]:
    return inspect(
        server.url,
        "--header",
        f"Authorization: Bearer {server.token}",
        "--method",
        "tools/call",
        "--tool-name",
        tool,
        "--tool-args-json",
        json.dumps(arguments),
        expect_error=expect_error,
    )


def test_inspector_start_get_log_stop_over_http() -> None:
    inspector_binary()
    server = HttpServer(TOKEN)
    call = functools.partial(call_over_http, server)
    try:
        started = call("start", {"command": "sh", "args": ["-c", "echo ready; exec sleep 300"]})
        assert started["isError"] is False
        record = started["structuredContent"]
        assert record["status"] == "running"
        deadline = time.monotonic() + 30
        while True:
            log = call("get-log", {"id": record["id"]})["structuredContent"]
            if log["lines"] or time.monotonic() > deadline:
                break
        assert log["lines"] == ["ready"]
        stopped = call("stop", {"id": record["id"]})["structuredContent"]
        assert (stopped["status"], stopped["signal"]) == ("stopped", "SIGTERM")
        missing = call("stop", {"id": "nope"}, expect_error=True)
        assert missing["isError"] is True
        assert "no process with id 'nope'" in missing["content"][0]["text"]
    finally:
        server.close()


def test_inspector_waits_for_a_dev_server_and_for_a_crash_over_http() -> None:
    """The issue's "done when": start a dev server and learn, in one call, ready or why not."""
    inspector_binary()
    server = HttpServer(TOKEN)
    call = functools.partial(call_over_http, server)
    devserver = str(Path(__file__).with_name("devserver.py"))
    try:
        started = call("start", {"command": sys.executable, "args": [devserver, "--delay", "1"]})
        process_id = started["structuredContent"]["id"]
        ready = call("wait", {"id": process_id, "pattern": "ready on", "timeoutSeconds": 60})
        answer = ready["structuredContent"]
        assert (answer["met"], answer["reason"], answer["status"]) == (True, "pattern", "running")
        url = answer["matchedLine"].split(" on ", 1)[1]
        by_url = call("wait", {"id": process_id, "url": url})["structuredContent"]
        assert (by_url["met"], by_url["reason"]) == (True, "url")
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        by_port = call("wait", {"id": process_id, "port": port})["structuredContent"]
        assert (by_port["met"], by_port["reason"]) == (True, "port")
        log = inspect(
            server.url,
            "--header",
            f"Authorization: Bearer {server.token}",
            "--method",
            "resources/read",
            "--uri",
            f"process://{process_id}/log",
        )
        assert log["contents"][0]["text"].startswith("starting up\nready on http://")
        call("stop", {"id": process_id})

        doomed = call(
            "start",
            {
                "command": sys.executable,
                "args": [devserver, "--delay", "0.3", "--die", "EADDRINUSE"],
            },
        )
        doomed_id = doomed["structuredContent"]["id"]
        died = call("wait", {"id": doomed_id, "pattern": "ready on", "timeoutSeconds": 60})
        answer = died["structuredContent"]
        assert (answer["met"], answer["reason"], answer["exitCode"]) == (False, "exited", 3)
        assert "EADDRINUSE" in answer["tail"]
        assert answer["elapsedSeconds"] < 5
        assert answer["status"] == "crashed"
        # The answer shows the crash itself, so its 'events' never repeat it.
        assert [e for e in answer.get("events", []) if e["id"] == doomed_id] == []
    finally:
        server.close()
