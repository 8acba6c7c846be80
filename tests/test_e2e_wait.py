"""``wait``, progress, cancellation and ``events`` through the real server over stdio."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import eventually
from support import RawServer, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("frontend_mode")]

DEVSERVER = str(Path(__file__).with_name("devserver.py"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def devserver(*args: str) -> dict[str, Any]:
    return {"command": sys.executable, "args": [DEVSERVER, *args]}


async def test_dev_server_waited_on_by_pattern_port_and_url() -> None:
    async with mcp_client() as client:
        port_b, port_c = free_port(), free_port()
        a = await client.ok("start", devserver("--delay", "1.5"))
        b = await client.ok("start", devserver("--delay", "1.5", "--port", str(port_b)))
        c = await client.ok("start", devserver("--delay", "1.5", "--port", str(port_c)))
        answers: dict[str, dict[str, Any]] = {}

        async def wait(name: str, arguments: dict[str, Any]) -> None:
            answers[name] = await client.ok("wait", arguments)

        async with anyio.create_task_group() as group:
            group.start_soon(wait, "pattern", {"id": a["id"], "pattern": r"^ready on http"})
            group.start_soon(wait, "port", {"id": b["id"], "port": port_b})
            group.start_soon(wait, "url", {"id": c["id"], "url": f"http://127.0.0.1:{port_c}/"})

        for reason, answer in answers.items():
            assert answer["met"] is True, answer
            assert answer["reason"] == reason
            assert answer["status"] == "running"
            assert answer["elapsedSeconds"] >= 0.5, "returned before the server was ready"
            assert "tail" not in answer  # met: no tail unless asked
            # "starting up" is stored; the "ready on" line follows the bind, so a port or
            # url wait may answer before it is.
            assert answer["nextCursor"] >= (2 if reason == "pattern" else 1)
        pattern = answers["pattern"]
        assert pattern["matchedLine"].startswith("ready on http://127.0.0.1:")  # ANSI removed
        assert pattern["matchedLineNumber"] == 2
        # Searched from the start of the log: a line printed before the call still counts.
        again = await client.ok("wait", {"id": a["id"], "pattern": "starting", "timeoutSeconds": 5})
        assert (again["met"], again["matchedLine"]) == (True, "starting up")
        assert again["elapsedSeconds"] < 1
        for process in (a, b, c):
            assert (await client.ok("get-status", {"id": process["id"]}))["status"] == "running"
            await client.ok("stop", {"id": process["id"]})


async def test_process_dying_before_ready_ends_the_wait_at_once() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", devserver("--delay", "0.5", "--die", "error: config.yml not found")
        )
        began = time.monotonic()
        answer = await client.ok(
            "wait",
            {"id": started["id"], "url": f"http://127.0.0.1:{free_port()}/", "timeoutSeconds": 60},
        )
        assert time.monotonic() - began < 0.5 + 2.0  # a loaded machine starts python slowly
        assert (answer["met"], answer["reason"]) == (False, "exited")
        assert (answer["status"], answer["exitCode"]) == ("crashed", 3)
        assert "error: config.yml not found" in answer["tail"]
        assert answer["tail"][0] == "starting up"


async def test_wait_times_out_and_leaves_the_process_running() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "sleep", "args": ["30"]})
        answer = await client.ok(
            "wait", {"id": started["id"], "pattern": "never printed", "timeoutSeconds": 0.5}
        )
        assert (answer["met"], answer["reason"], answer["status"]) == (False, "timeout", "running")
        assert 0.5 <= answer["elapsedSeconds"] < 3
        assert "tail" not in answer and "matchedLine" not in answer  # nothing to show
        assert answer["nextCursor"] == 0
        await client.ok("stop", {"id": started["id"]})


async def test_wait_without_condition_waits_for_the_end() -> None:
    # 2 s: the first start of a server answers in 0.6 s on a loaded machine (lazy set-up),
    # and the process must still run when the wait begins.
    async with mcp_client() as client:
        script = "sleep 2; seq 1 30; echo 'error: step 3 failed' >&2; exit 4"
        started = await client.ok("start", {"command": "sh", "args": ["-c", script]})
        answer = await client.ok("wait", {"id": started["id"]})
        assert (answer["met"], answer["reason"]) == (True, "exited")
        assert (answer["status"], answer["exitCode"]) == ("crashed", 4)
        assert answer["elapsedSeconds"] >= 0.3
        # A crash brings its reason, met or not: the newest 20 lines.
        assert answer["tail"] == [*map(str, range(12, 31)), "error: step 3 failed"]


async def test_progress_is_sent_about_once_a_second_with_a_token() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "sleep", "args": ["30"]})
        updates: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            updates.append((progress, total, message))

        result = await client.session.call_tool(
            "wait",
            {"id": started["id"], "pattern": "never", "timeoutSeconds": 2.6},
            progress_callback=on_progress,
        )
        assert result.structured_content["reason"] == "timeout"
        assert 2 <= len(updates) <= 3, updates
        assert [u[0] for u in updates] == sorted(u[0] for u in updates)
        assert all(total == 2.6 for _, total, _ in updates)
        assert "a line matching 'never'" in (updates[0][2] or "")
        await client.ok("stop", {"id": started["id"]})


async def test_cancelled_wait_ends_at_once_and_the_process_keeps_running() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "sleep", "args": ["30"]})
        with anyio.move_on_after(0.5) as scope:
            await client.call("wait", {"id": started["id"], "timeoutSeconds": 600})
        assert scope.cancelled_caught
        began = time.monotonic()
        status = await client.ok("get-status", {"id": started["id"]})
        assert status["status"] == "running"
        assert time.monotonic() - began < 2
        # The server is not stuck in the cancelled wait: another one answers normally.
        answer = await client.ok("wait", {"id": started["id"], "timeoutSeconds": 0.2})
        assert answer["reason"] == "timeout"
        await client.ok("stop", {"id": started["id"]})


async def test_events_report_each_exit_exactly_once() -> None:
    async with mcp_client() as client:
        quick = await client.ok("start", {"command": "sh", "args": ["-c", "exit 7"]})
        assert "events" not in quick  # none yet: left out, not []
        seen: list[dict[str, Any]] = []
        with anyio.fail_after(10):
            while not seen:
                seen = (await client.ok("list")).get("events", [])
                await anyio.sleep(0.05)
        assert seen == [
            {
                "id": quick["id"],
                "status": "crashed",
                "exitCode": 7,
                "signal": None,
                "endedAt": seen[0]["endedAt"],
            }
        ]
        assert seen[0]["endedAt"].endswith("Z")
        assert "events" not in await client.ok("list")
        assert "events" not in await client.ok("get-status", {"id": quick["id"]})


async def test_events_survive_an_error_answer() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": "sh", "args": ["-c", "exit 2"], "notifyOnExit": True}
        )
        assert "events" not in started
        # Learn of the exit without a tool answer (which would carry the event).
        assert await eventually(lambda: client.exits, timeout=10)
        await client.fail("stop", {"id": "nope00"})  # an error answer after the exit
        answer = await client.ok("list")
        assert [event["id"] for event in answer["events"]] == [started["id"]]
        assert "events" not in await client.ok("list")


async def test_every_output_schema_declares_events() -> None:
    async with mcp_client() as client:
        for tool in (await client.session.list_tools()).tools:
            assert tool.output_schema["properties"]["events"]["type"] == "array", tool.name
            # Left out when there is nothing to report, so not required.
            assert "events" not in tool.output_schema.get("required", [])


async def test_wait_rejects_bad_arguments_with_the_value_and_the_fix() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "sleep", "args": ["30"]})
        text = await client.fail("wait", {"id": started["id"], "timeoutSeconds": 601})
        assert "timeoutSeconds" in text and "600" in text
        text = await client.fail("wait", {"id": started["id"], "pattern": "ready("})
        assert "'ready('" in text and "regular expression" in text
        text = await client.fail("wait", {"id": started["id"], "url": "localhost:3000"})
        assert "url" in text and "localhost:3000" in text
        text = await client.fail("wait", {"id": started["id"], "port": 70000})
        assert "port" in text
        assert "no process with id 'zzzzzz'" in await client.fail("wait", {"id": "zzzzzz"})
        await client.ok("stop", {"id": started["id"]})


def test_cancelled_wait_stops_its_progress_on_the_server() -> None:
    """After notifications/cancelled the server sends nothing more for that request."""
    server = RawServer()
    try:
        server.initialize()
        started = server.call_tool("start", {"command": "sleep", "args": ["30"]})
        process_id = started["structuredContent"]["id"]
        server.send_line(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 500,
                    "method": "tools/call",
                    "params": {
                        "name": "wait",
                        "arguments": {"id": process_id, "timeoutSeconds": 60},
                        "_meta": {"progressToken": "w1"},
                    },
                }
            ).encode()
        )
        first = server.read_message(timeout=5)  # the first progress, about 1 s in
        while first.get("method") == "notifications/resources/list_changed":
            first = server.read_message(timeout=5)
        assert first["method"] == "notifications/progress"
        assert first["params"]["progressToken"] == "w1"
        server.send_line(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": {"requestId": 500, "reason": "user pressed escape"},
                }
            ).encode()
        )
        # A bounded wait of our own (2.5 s) is the observation window.
        answer = server.call_tool("wait", {"id": process_id, "timeoutSeconds": 2.5})
        assert answer["structuredContent"]["reason"] == "timeout"
        late = [
            m
            for m in server.notifications
            if m.get("id") == 500 or m.get("params", {}).get("progressToken") == "w1"
        ]
        assert late == [], late
        status = server.call_tool("get-status", {"id": process_id})
        assert status["structuredContent"]["status"] == "running"
        server.call_tool("stop", {"id": process_id, "force": True})
    finally:
        server.close_stdin()
        server.wait()
        server.kill()
