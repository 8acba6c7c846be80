"""Issue 12 item 1: a catastrophic regular expression must not freeze the server.

With Python's backtracking ``re``, ``(a+)+$`` on a line of 36 ``a``s and a ``!`` takes
2^36 steps while holding the GIL: no answer, not even to ``ping``. Patterns now run on RE2
(linear time); what RE2 cannot run is refused with an error naming the construct."""

from __future__ import annotations

import sys

import anyio
import pytest
from pinger import assert_responsive, pinging
from support import RawServer, mcp_client, wait_status

pytestmark = pytest.mark.anyio

EVIL = "(a+)+$"
LINES = 100_000
PRINT_EVIL = f"import sys; sys.stdout.write(('a' * 36 + '!\\n') * {LINES}); print('done')"


@pytest.mark.server_process  # pings time the server alone, not the client too
async def test_catastrophic_grep_answers_at_once_and_ping_meanwhile() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": sys.executable, "args": ["-c", PRINT_EVIL]})
        await wait_status(client, started["id"], {"exited"})
        async with pinging(client) as pings:
            with anyio.fail_after(10):
                answer = await client.ok("get-log", {"id": started["id"], "grep": EVIL})
                found = await client.ok(
                    "get-log", {"id": started["id"], "grep": "(a+)+!$", "lastLines": 2}
                )
            await anyio.sleep(0.2)  # a few pings after the searches too
        assert answer["lines"] == []
        # grep answers read like grep -n: "N:line"
        assert [line.split(":", 1)[1] for line in found["lines"]] == ["a" * 36 + "!"] * 2
        assert_responsive(pings)


@pytest.mark.server_process  # pings time the server alone, not the client too
async def test_catastrophic_wait_pattern_times_out_normally() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start",
            {
                "command": sys.executable,
                "args": ["-c", PRINT_EVIL + "; import time; time.sleep(30)"],
            },
        )
        async with pinging(client) as pings:
            with anyio.fail_after(10):
                waited = await client.ok(
                    "wait", {"id": started["id"], "pattern": EVIL, "timeoutSeconds": 1}
                )
        assert waited["met"] is False and waited["reason"] == "timeout"
        assert_responsive(pings)
        await client.ok("stop", {"id": started["id"], "force": True})


REFUSED = [
    (r"(a)\1", "back-references"),
    (r"(?P<x>a)(?P=x)", "back-reference"),
    (r"error(?=:)", "look-ahead"),
    (r"error(?!:)", "negative look-ahead"),
    (r"(?<=x)error", "look-behind"),
    (r"(?<!x)error", "negative look-behind"),
    (r"(?>ab)", "atomic group"),
    (r"a*+", "possessive"),
    (r"done\Z", r"'\Z'"),
]


async def test_patterns_re2_cannot_run_name_the_construct() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "true"})
        for pattern, named in REFUSED:
            for tool, field in (("get-log", "grep"), ("wait", "pattern")):
                text = await client.fail(tool, {"id": started["id"], field: pattern})
                assert f"in '{field}'" in text and named in text and "use " in text, text
                assert "RE2" in text


def test_refused_patterns_leave_stderr_quiet() -> None:
    """RE2 logs every refused pattern on stderr unless told not to: nothing may show."""
    server = RawServer()
    try:
        server.initialize()
        started = server.call_tool("start", {"command": "true"})["structuredContent"]
        for pattern in (r"(a)\1", "(?=x)", "(unclosed"):
            answer = server.call_tool("get-log", {"id": started["id"], "grep": pattern})
            assert answer["isError"] is True
        server.close_stdin()
        assert server.wait() == 0
        stderr = server.stderr_text()
        assert "re2" not in stderr.lower() and "absl" not in stderr.lower(), stderr
    finally:
        server.kill()
