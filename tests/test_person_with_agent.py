"""The person and the agent share one view: an agent's process (MCP over
stdio, through the supervisor) is in ``process-mcp ps`` and ``logs``; the person's
``stop`` reaches the agent as ``stopped`` with an ``events`` entry; a process the person
starts is in the agent's ``list``. Real server, real supervisor, CLI as a subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from support import mcp_client
from test_person_cli import cli, cli_json, stop_all

pytestmark = pytest.mark.anyio


async def test_an_agents_process_is_the_persons_to_see_and_stop(tmp_path: Path) -> None:
    program = "import time\nprint('agent says hi', flush=True)\ntime.sleep(300)"
    async with mcp_client(cwd=str(tmp_path)) as client:
        started = await client.ok(
            "start", {"command": sys.executable, "args": ["-c", program], "label": "api"}
        )
        await client.ok("wait", {"id": started["id"], "pattern": "agent says hi"})
        listed = await anyio.to_thread.run_sync(lambda: cli_json("ps", cwd=tmp_path))
        assert [(p["id"], p["label"], p["owner"]) for p in listed] == [  # type: ignore[union-attr]
            (started["id"], "api", "other")
        ]
        logs = await anyio.to_thread.run_sync(lambda: cli("logs", "api"))
        assert logs.stdout == "agent says hi\n", logs
        stopped = await anyio.to_thread.run_sync(lambda: cli("stop", "api"))
        assert stopped.returncode == 0, stopped.stderr
        with anyio.fail_after(10):  # the exit reaches this session's front-end as an event
            while True:
                answer = await client.ok("list", {})
                events = [e for e in answer.get("events", []) if e["id"] == started["id"]]
                if events:
                    break
                await anyio.sleep(0.05)
        assert events[0]["status"] == "stopped", events
        status = await client.ok("get-status", {"id": started["id"]})
        assert status["status"] == "stopped"


async def test_a_persons_process_is_in_the_agents_list(tmp_path: Path) -> None:
    try:
        started = cli_json("start", "--label", "web", "--", "sleep", "300", cwd=tmp_path)
        async with mcp_client(cwd=str(tmp_path)) as client:
            answer = await client.ok("list", {})
            assert started["id"] in str(answer), answer  # type: ignore[index]
            status = await client.ok("get-status", {"id": started["id"]})  # type: ignore[index]
            assert status["status"] == "running"
    finally:
        stop_all()
