"""Every malformed request gets a clear error and the server keeps serving."""

from __future__ import annotations

import json

import pytest
from support import RawServer, mcp_client

pytestmark = pytest.mark.anyio

BAD_CALLS = [
    ("start", {}, "command: field required"),
    ("start", {"command": ""}, "command: string should have at least 1 character"),
    ("start", {"command": 5}, "command: input should be a valid string"),
    ("start", {"command": "true", "args": "a b"}, "args: input should be a valid list"),
    ("start", {"command": "true", "args": [1]}, "args.0: input should be a valid string"),
    ("start", {"command": "true", "env": {"A": 1}}, "env.A: input should be a valid string"),
    (
        "start",
        {"command": "true", "notifyOnExit": "yes"},
        "notifyOnExit: input should be a valid boolean",
    ),
    ("start", {"command": "true", "notify_on_exit": True}, "unknown parameter 'notify_on_exit'"),
    ("start", {"command": "true", "cwd": ""}, "cwd: string should have at least 1 character"),
    (
        "get-log",
        {"id": "x", "lastLines": 0},
        "lastLines: input should be greater than or equal to 1",
    ),
    (
        "get-log",
        {"id": "x", "lastLines": -3},
        "lastLines: input should be greater than or equal to 1",
    ),
    ("get-log", {"id": "x", "lastLines": 1.5}, "lastLines: input should be a valid integer"),
    ("get-log", {"id": "nope"}, "no process with id 'nope'"),
    ("stop", {"id": "nope"}, "no process with id 'nope'"),
    ("stop", {"id": "x", "force": "true"}, "force: input should be a valid boolean"),
    ("remove", {"id": "nope"}, "no process with id 'nope'"),
    ("get-status", {}, "id: field required"),
    ("list", {"every": True}, "unknown parameter 'every'"),
    ("frobnicate", {}, "unknown tool 'frobnicate'"),
]


async def test_bad_calls_are_clear_errors_and_server_keeps_serving() -> None:
    async with mcp_client() as client:
        for tool, arguments, expected in BAD_CALLS:
            text = await client.fail(tool, arguments)
            assert expected in text, (tool, arguments, text)
        assert (await client.ok("get-status", {"id": "nope"}))["status"] == "not-exists"
        unknown_pid = await client.ok("get-pid", {"id": "nope"})
        assert unknown_pid["pid"] is None and "no process with id 'nope'" in unknown_pid["notice"]


async def test_huge_arguments_start_and_too_huge_ones_are_a_clear_error() -> None:
    async with mcp_client() as client:
        huge = await client.ok("start", {"command": "true", "args": ["a" * 100_000] * 10})
        assert len(huge["args"]) == 10
        too_big = await client.fail("start", {"command": "true", "args": ["a" * 200_000]})
        assert "Argument list too long" in too_big  # one argument over the kernel's 128 KiB
        over_cap = await client.fail("start", {"command": "true", "args": ["a" * 200_000] * 20})
        assert "more than the limit of 1048576" in over_cap and len(over_cap) < 1000
        assert (await client.ok("list"))["processes"][0]["id"] == huge["id"]


def test_garbage_lines_on_stdin_do_not_kill_the_server() -> None:
    server = RawServer()
    try:
        server.initialize()
        for garbage in [
            b"not json",
            b"{",
            b"[]",
            b'{"jsonrpc":"2.0","id":99,"method":5}',
            b"\xff\xfe",
            b"",
        ]:
            server.send_line(garbage)
        result = server.call_tool("get-status", {"id": "abc"})
        # An unknown id is {id, status} and nothing else (no nulls, no events: []).
        assert result["structuredContent"] == {"id": "abc", "status": "not-exists"}
        reply = server.request("no/such/method", {})
        assert "error" in reply
        assert server.call_tool("list", {})["structuredContent"] == {"processes": []}
        assert json.loads(server.call_tool("list", {})["content"][0]["text"]) == {"processes": []}
    finally:
        server.close_stdin()
        assert server.wait() == 0
        server.kill()
