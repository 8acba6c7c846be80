"""The rails as an MCP client meets them: the real server over stdio (one subprocess for
all scenarios but the elicitation ones), refusals, ask without and with elicitation,
redaction in answers, and answers unchanged when nothing is refused or masked."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp_types import ElicitResult
from support import SAMPLE_POLICY, SERVER_ARGV, Client, mcp_client, server_env

pytestmark = pytest.mark.anyio
POLICY = SAMPLE_POLICY


@pytest.fixture
def policy(isolated_policy: Path) -> Path:
    isolated_policy.parent.mkdir(parents=True)
    isolated_policy.write_text(POLICY)
    return isolated_policy


@asynccontextmanager
async def client(answer: str | None = None, cwd: Path | None = None) -> AsyncIterator[Client]:
    """The server with a client that answers elicitations with ``answer`` (accept or
    decline; None: the client declares no elicitation)."""
    asked: list[Any] = []

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params)
        if answer == "accept":
            return ElicitResult(action="accept", content={"run": True})
        return ElicitResult(action="decline")

    params = StdioServerParameters(
        command=SERVER_ARGV[0],
        args=SERVER_ARGV[1:],
        env=server_env(),
        cwd=str(cwd) if cwd else None,
    )
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, elicitation_callback=on_elicit if answer else None) as session,
    ):
        await session.initialize()
        wrapped = Client(session)
        wrapped.messages = asked  # the elicitations the server sent
        yield wrapped


async def test_refusals_asks_and_redaction_as_an_agent_sees_them(
    policy: Path, tmp_path: Path
) -> None:
    async with client(cwd=tmp_path) as agent:
        text = await agent.fail("start", {"command": "sh", "args": ["-c", "npm run deploy"]})
        assert text == (
            f'refused by policy rule "no-deploy" ({policy}:3): Production deploys are the '
            "person's job. Evaluated: npm run deploy"
        )
        asked = await agent.fail("start", {"command": "sleep", "args": ["301"]})
        assert "process-mcp approve r-" in asked and 'approval: "r-' in asked
        request = asked.split('approval: "', 1)[1].split('"', 1)[0]
        still = await agent.fail(
            "start", {"command": "sleep", "args": ["301"], "approval": request}
        )
        assert "not approved yet" in still
        secret = "ghp_" + "Z9y8X7w6" * 5
        started = await agent.ok(
            "start",
            {
                "command": "sh",
                "args": ["-c", f"echo token {secret}; echo key $MY_TOKEN; echo plain"],
                "env": {"MY_TOKEN": "hunter2hunter2"},
            },
        )
        waited = await agent.ok("wait", {"id": started["id"], "tailLines": 5})
        assert waited["tail"] == [
            "token [redacted:github-token]",
            "key [redacted:env:MY_TOKEN]",
            "plain",
        ]
        assert waited["redacted"] == 2
        log = await agent.ok("get-log", {"id": started["id"]})
        assert log["lines"][0] == "token [redacted:github-token]" and log["redacted"] == 2
        grep = await agent.ok("get-log", {"id": started["id"], "grep": "plain"})
        assert "redacted" not in grep  # nothing masked: the answer has no such field
        plain = await agent.ok("start", {"command": "echo", "args": ["hello"]})
        assert set(plain) <= {
            "id",
            "pid",
            "status",
            "command",
            "args",
            "cwd",
            "startedAt",
            "history",
            "label",
            "shell",
            "stdin",
            "pty",
            "notifyOnExit",
            "timeoutSeconds",
            "restarts",
            "exitCode",
            "signal",
        }
        done = await agent.ok("wait", {"id": plain["id"], "tailLines": 5})
        assert "redacted" not in done and done["tail"] == ["hello"]


async def test_ask_in_the_client_accepted_runs(policy: Path, tmp_path: Path) -> None:
    async with client("accept", cwd=tmp_path) as agent:
        started = await agent.ok("start", {"command": "sleep", "args": ["301"]})
        assert started["status"] == "running"
        assert len(agent.messages) == 1 and "slow-sleep" in agent.messages[0].message
        await agent.ok("stop", {"id": started["id"]})


async def test_ask_in_the_client_declined_is_refused(policy: Path, tmp_path: Path) -> None:
    async with client("decline", cwd=tmp_path) as agent:
        text = await agent.fail("start", {"command": "sleep", "args": ["301"]})
        assert text.startswith("refused: the person declined in the client")
        assert len(agent.messages) == 1
        listed = await agent.ok("list")
        assert listed.get("processes", []) == []  # nothing started


# ------------------------------------------------------------- found by the audit
async def _audit_rows(state: Path, wanted: Any) -> list[Any]:
    """The audit rows once ``wanted(rows)`` holds (the supervisor's writer lags a moment)."""
    from conftest import eventually

    from process_mcp.core.history.audit import AuditLog

    rows: list[Any] = []

    def read() -> bool:
        nonlocal rows
        log = AuditLog(state, create=False)
        try:
            rows = log.entries()
        finally:
            log.close()
        return bool(wanted(rows))

    assert await eventually(read, 20), rows
    return rows


async def test_what_an_agent_greps_or_reads_as_a_resource_is_masked(
    policy: Path, tmp_path: Path
) -> None:
    secret = "ghp_" + "Q1w2E3r4" * 5
    async with mcp_client(cwd=str(tmp_path)) as agent:
        started = await agent.ok(
            "start",
            {"command": "sh", "args": ["-c", f"echo before; echo token {secret}; echo after"]},
        )
        await agent.ok("wait", {"id": started["id"]})
        grep = await agent.ok("get-log", {"id": started["id"], "grep": secret})
        assert grep["lines"] == ["2:token [redacted:github-token]"] and grep["redacted"] == 1
        context = await agent.ok("get-log", {"id": started["id"], "grep": "ghp_", "context": 1})
        assert secret not in json.dumps(context) and context["redacted"] == 1
        waited = await agent.ok("wait", {"id": started["id"], "pattern": "token", "tailLines": 3})
        assert secret not in json.dumps(waited)
        resource = await agent.session.read_resource(f"process://{started['id']}/log")
        text = resource.contents[0].text
        assert secret not in text and "token [redacted:github-token]" in text
        assert "[1 secrets redacted]" in text


async def test_the_audit_names_the_agents_client_session_and_pid(
    policy: Path, tmp_path: Path
) -> None:
    async with mcp_client(cwd=str(tmp_path), CLAUDE_CODE_SESSION_ID="sess-e2e-42") as agent:
        started = await agent.ok("start", {"command": "sleep", "args": ["30"]})
        await agent.fail("start", {"command": "npm", "args": ["run", "deploy"]})
        await agent.ok("stop", {"id": started["id"]})
    rows = await _audit_rows(tmp_path / "state", lambda rows: any(r.action == "stop" for r in rows))
    for row in rows:
        assert row.session == "sess-e2e-42", row
        assert row.pid == os.getpid(), row  # the front-end: in this process here
        assert row.actor == "mcp/0.1.0", row  # the SDK client's clientInfo name/version
    assert {(r.action, r.outcome) for r in rows} >= {
        ("start", "allowed"),
        ("start", "refused"),
        ("stop", "done"),
    }


async def test_no_tool_writes_the_policy(policy: Path, tmp_path: Path) -> None:
    before = policy.read_bytes(), policy.stat().st_mtime_ns
    async with mcp_client(cwd=str(tmp_path)) as agent:
        tools = (await agent.session.list_tools()).tools
        names = {tool.name for tool in tools}
        assert not {name for name in names if "policy" in name or "config" in name}
        for tool in tools:
            schema = json.dumps(tool.input_schema).lower()
            assert "policy.toml" not in schema and "floor_off" not in schema, tool.name
    assert (policy.read_bytes(), policy.stat().st_mtime_ns) == before


async def test_a_memory_limit_stop_is_in_the_status_and_the_exit_event(
    policy: Path, tmp_path: Path
) -> None:
    policy.write_text(POLICY + '\n[limits]\nmemory = "32M"\n')
    hog = (
        "import time\nheld = bytearray(96 * 1024 * 1024)\n"
        "for i in range(0, len(held), 4096): held[i] = 1\ntime.sleep(60)\n"
    )
    async with mcp_client(cwd=str(tmp_path)) as agent:
        started = await agent.ok("start", {"command": sys.executable, "args": ["-c", hog]})
        event: dict[str, Any] = {}
        with anyio.fail_after(30):
            while not event:
                listed = await agent.ok("list")
                event = next((e for e in listed.get("events", []) if e["id"] == started["id"]), {})
                await anyio.sleep(0.1)
        assert event["status"] == "stopped"
        assert event["reason"].startswith("memory limit 32M exceeded ("), event
        status = await agent.ok("get-status", {"id": started["id"]})
        assert status["reason"] == event["reason"]
