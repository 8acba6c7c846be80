"""Every tool through the real server over stdio, driven by the official SDK client."""

from __future__ import annotations

import sys

import anyio
import pytest
from support import mcp_client, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("frontend_mode")]


async def test_tools_are_listed_with_schemas_and_annotations() -> None:
    async with mcp_client() as client:
        tools = {tool.name: tool for tool in (await client.session.list_tools()).tools}
        assert set(tools) == {
            "start",
            "stop",
            "get-status",
            "get-log",
            "list",
            "get-pid",
            "remove",
            "wait",
            "send-input",
            "signal",
            "restart",
        }
        for tool in tools.values():
            assert tool.output_schema and tool.output_schema["type"] == "object"
            assert tool.input_schema.get("additionalProperties") is False
            assert tool.description
            for name, prop in tool.input_schema.get("properties", {}).items():
                assert prop.get("description"), f"{tool.name}.{name} has no description"
        assert tools["get-log"].annotations.read_only_hint is True
        assert tools["stop"].annotations.destructive_hint is True
        assert tools["remove"].annotations.destructive_hint is True
        assert set(tools["start"].input_schema["properties"]) >= {
            "command",
            "args",
            "cwd",
            "env",
            "notifyOnExit",
        }


async def test_start_status_log_list_pid_stop_remove() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": "sh", "args": ["-c", "echo out; echo err >&2; exec sleep 30"]}
        )
        assert started["status"] == "running"
        assert len(started["id"]) == 6 and isinstance(started["pid"], int)
        assert started["command"] == "sh" and started["args"][0] == "-c"
        pid_answer = await client.ok("get-pid", {"id": started["id"]})
        assert pid_answer == {"id": started["id"], "pid": started["pid"]}
        with anyio.fail_after(10):
            while len((await client.ok("get-log", {"id": started["id"]}))["lines"]) < 2:
                await anyio.sleep(0.05)
        log = await client.ok("get-log", {"id": started["id"]})
        assert sorted(log["lines"]) == ["err", "out"]
        listed = await client.ok("list")
        assert [p["id"] for p in listed["processes"]] == [started["id"]]
        assert listed["processes"][0]["status"] == "running"
        assert "still running" in await client.fail("remove", {"id": started["id"]})
        stopped = await client.ok("stop", {"id": started["id"]})
        assert stopped["status"] == "stopped" and stopped["signal"] == "SIGTERM"
        assert (await client.ok("get-status", {"id": started["id"]}))["status"] == "stopped"
        removed = await client.ok("remove", {"id": started["id"]})
        assert removed["removed"] is True
        gone = await client.ok("get-status", {"id": started["id"]})
        assert gone == {"id": started["id"], "status": "not-exists"}
        assert (await client.ok("list"))["processes"] == []


async def test_statuses_exited_and_crashed_with_codes() -> None:
    async with mcp_client() as client:
        ok = await client.ok("start", {"command": "true"})
        bad = await client.ok("start", {"command": "sh", "args": ["-c", "exit 5"]})
        assert (await wait_status(client, ok["id"], {"exited", "crashed"}))["status"] == "exited"
        crashed = await wait_status(client, bad["id"], {"exited", "crashed"})
        assert (crashed["status"], crashed["exitCode"]) == ("crashed", 5)


async def test_process_exit_notification_once_when_asked_never_otherwise() -> None:
    async with mcp_client() as client:
        quiet = await client.ok("start", {"command": "sh", "args": ["-c", "exit 0"]})
        loud = await client.ok(
            "start", {"command": "sh", "args": ["-c", "echo bye; exit 3"], "notifyOnExit": True}
        )
        await wait_status(client, quiet["id"], {"exited"})
        await wait_status(client, loud["id"], {"crashed"})
        with anyio.fail_after(10):
            while not client.exits:
                await anyio.sleep(0.02)
        await client.ok("list")  # a round trip: any duplicate would have arrived by now
        assert len(client.exits) == 1
        note = client.exits[0]
        assert (note.id, note.status, note.exit_code, note.signal) == (
            loud["id"],
            "crashed",
            3,
            None,
        )
        assert note.timestamp.endswith("Z")


async def test_stop_notification_reports_stopped() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": "sleep", "args": ["30"], "notifyOnExit": True}
        )
        await client.ok("stop", {"id": started["id"], "force": True})
        with anyio.fail_after(10):
            while not client.exits:
                await anyio.sleep(0.02)
        assert (client.exits[0].status, client.exits[0].signal) == ("stopped", "SIGKILL")


async def test_last_lines_and_final_line_without_newline() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": "sh", "args": ["-c", "seq 1 100; printf 'no newline'"]}
        )
        await wait_status(client, started["id"], {"exited"})
        log = await client.ok("get-log", {"id": started["id"], "lastLines": 3})
        assert log["lines"] == ["99", "100", "no newline"]
        assert (log["firstLine"], log["lastLine"], log["totalLines"]) == (99, 101, 101)
        full = await client.ok("get-log", {"id": started["id"]})
        assert len(full["lines"]) == 101


async def test_fast_exit_stderr_is_not_lost() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start",
            {
                "command": sys.executable,
                "args": ["-c", "import sys; sys.stderr.write('fatal: boom\\n'); sys.exit(2)"],
            },
        )
        await wait_status(client, started["id"], {"crashed"})
        log = await client.ok("get-log", {"id": started["id"]})
        assert log["lines"] == ["fatal: boom"]


async def test_binary_output_is_decoded_with_replacement() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": "printf", "args": ["ok\\377\\376\\000end\\n"]}
        )
        await wait_status(client, started["id"], {"exited"})
        log = await client.ok("get-log", {"id": started["id"]})
        assert log["lines"] == ["ok\ufffd\ufffd\x00end"]


async def test_huge_single_line_answer_stays_bounded() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start",
            {
                "command": sys.executable,
                "args": ["-c", "import sys; sys.stdout.write('x' * 5_000_000 + '\\nafter\\n')"],
            },
        )
        await wait_status(client, started["id"], {"exited"})
        result = await client.call("get-log", {"id": started["id"]})
        assert not result.is_error
        log = result.structured_content
        assert len(result.content[0].text) < 200_000
        assert log["lines"][0].startswith("x" * 1000) and log["lines"][0].endswith("bytes cut]")
        assert log["lines"][1] == "after"
        assert log["truncated"] is True and log["cutLines"] == 1


async def test_cwd_and_env_are_applied() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start",
            {"command": "sh", "args": ["-c", "pwd; echo $X"], "cwd": "/tmp", "env": {"X": "42"}},
        )
        await wait_status(client, started["id"], {"exited"})
        assert (await client.ok("get-log", {"id": started["id"]}))["lines"] == ["/tmp", "42"]


async def test_start_errors_name_the_fault_and_leave_no_record() -> None:
    async with mcp_client() as client:
        assert "/nope/dir" in await client.fail("start", {"command": "true", "cwd": "/nope/dir"})
        text = await client.fail("start", {"command": "echo hi && ls"})
        assert "shell: true" in text
        assert "No such file or directory" in await client.fail(
            "start", {"command": "no-such-program-xyz"}
        )
        assert (await client.ok("list"))["processes"] == []


async def test_stateless_2026_era_client_is_served() -> None:
    """The SDK's high-level Client negotiates the 2026-07-28 era (no initialize handshake)."""
    from mcp import StdioServerParameters
    from mcp.client.client import Client
    from support import SERVER_ARGV, server_env

    params = StdioServerParameters(command=SERVER_ARGV[0], args=SERVER_ARGV[1:], env=server_env())
    async with Client(params) as client:
        assert client.protocol_version == "2026-07-28"
        started = await client.call_tool("start", {"command": "sh", "args": ["-c", "echo hi"]})
        ident = started.structured_content["id"]
        with anyio.fail_after(10):
            while (await client.call_tool("get-status", {"id": ident})).structured_content[
                "status"
            ] == "running":
                await anyio.sleep(0.05)
        log = await client.call_tool("get-log", {"id": ident})
        assert log.structured_content["lines"] == ["hi"]
        bad = await client.call_tool("start", {"command": ""})
        assert bad.is_error and "command" in bad.content[0].text


async def test_stop_description_quotes_the_configured_grace() -> None:
    async with mcp_client(PROCESS_MCP_STOP_GRACE="2.5") as client:
        tools = {tool.name: tool for tool in (await client.session.list_tools()).tools}
    assert "SIGKILL after 2.5 s" in (tools["stop"].description or "")
