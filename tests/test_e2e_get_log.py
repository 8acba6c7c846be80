"""get-log through the real server over stdio, on real processes."""

from __future__ import annotations

import re
import sys

import anyio
import pytest
from support import mcp_client
from test_e2e_tools import wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("frontend_mode")]


def py(code: str) -> dict:
    return {"command": sys.executable, "args": ["-c", code]}


def answer_bytes(lines: list[str]) -> int:
    return sum(len(line.encode()) + 1 for line in lines)


async def finished(client, code: str, **env) -> str:
    started = await client.ok("start", py(code))
    await wait_status(client, started["id"], {"exited"})
    return started["id"]


async def test_answer_fields_and_seed_calls() -> None:
    async with mcp_client() as client:
        pid = await finished(client, "print('a'); print('b'); print('c')")
        log = await client.ok("get-log", {"id": pid})
        assert log["lines"] == ["a", "b", "c"]
        assert {k: log[k] for k in ("firstLine", "lastLine", "nextCursor", "totalLines")} == {
            "firstLine": 1,
            "lastLine": 3,
            "nextCursor": 3,
            "totalLines": 3,
        }
        assert log["status"] == "exited"
        # Slim: fields at their default are left out, not sent as false/0/null.
        assert set(log) == {
            "id",
            "status",
            "lines",
            "firstLine",
            "lastLine",
            "nextCursor",
            "totalLines",
        }
        assert (await client.ok("get-log", {"id": pid, "lastLines": 1}))["lines"] == ["c"]


async def test_stdout_and_stderr_interleave_in_arrival_order_and_filter() -> None:
    code = (
        "import sys\n"
        "for i in range(4):\n"
        "    s = sys.stdout if i % 2 == 0 else sys.stderr\n"
        "    s.write(f'{s.name[4:-1]} {i}\\n'); s.flush(); sys.stdin.readline()\n"
    )
    async with mcp_client() as client:
        pid = (await client.ok("start", {**py(code), "stdin": "pipe"}))["id"]
        for count in range(1, 5):  # each line is written once the one before is in the log
            with anyio.fail_after(10):
                while len((await client.ok("get-log", {"id": pid}))["lines"]) < count:
                    await anyio.sleep(0.02)
            await client.ok("send-input", {"id": pid, "text": "\n"})
        await wait_status(client, pid, {"exited"})
        assert (await client.ok("get-log", {"id": pid}))["lines"] == [
            "out 0",
            "err 1",
            "out 2",
            "err 3",
        ]
        err = await client.ok("get-log", {"id": pid, "stream": "stderr"})
        assert err["lines"] == ["err 1", "err 3"] and err["firstLine"] == 2
        out = await client.ok("get-log", {"id": pid, "stream": "stdout", "lastLines": 1})
        assert out["lines"] == ["out 2"] and out["lastLine"] == 3


async def test_following_a_running_process_with_since_reads_only_new_lines() -> None:
    code = (
        "import sys\n"
        "print('ready', flush=True)\n"
        "for line in sys.stdin: pass\n"  # stdin is /dev/null: ends at once
        "import time\n"
        "for i in range(3):\n"
        "    print(f'tick {i}', flush=True); time.sleep(0.1)\n"
    )
    async with mcp_client() as client:
        pid = await finished(client, code)
        first = await client.ok("get-log", {"id": pid, "since": 0, "limit": 2})
        assert first["lines"] == ["ready", "tick 0"] and first["nextCursor"] == 2
        rest = await client.ok("get-log", {"id": pid, "since": first["nextCursor"]})
        assert rest["lines"] == ["tick 1", "tick 2"] and rest["nextCursor"] == 4
        empty = await client.ok("get-log", {"id": pid, "since": rest["nextCursor"]})
        assert empty["lines"] == [] and empty["nextCursor"] == 4


async def test_grep_context_and_progress_and_colours_cleaned() -> None:
    code = (
        "import sys\n"
        "w = sys.stdout.write\n"
        "w('\\x1b[32mcompiling\\x1b[0m a\\n')\n"
        "w('[=   ] 10%\\r[==  ] 50%\\r[====] 100%\\n')\n"
        "w('\\x1b[1;31merror\\x1b[0m: boom\\n')\n"
        "w('after\\n')\n"
    )
    async with mcp_client() as client:
        pid = await finished(client, code)
        log = await client.ok("get-log", {"id": pid})
        assert log["lines"] == ["compiling a", "[====] 100%", "error: boom", "after"]
        found = await client.ok("get-log", {"id": pid, "grep": "^error:", "context": 1})
        assert found["lines"] == ["2-[====] 100%", "3:error: boom", "4-after"]  # grep -n -C
        assert found["firstLine"] == 2 and found["lastLine"] == 4
        raw = await client.ok("get-log", {"id": pid, "raw": True, "lastLines": 3})
        assert raw["lines"][0] == "[=   ] 10%\r[==  ] 50%\r[====] 100%"
        assert raw["lines"][1].startswith("\x1b[1;31merror")


async def test_validation_errors_name_the_value() -> None:
    async with mcp_client() as client:
        pid = await finished(client, "print('x')")
        text = await client.fail("get-log", {"id": pid, "since": 1, "lastLines": 2})
        assert "'since'" in text and "'lastLines'" in text
        assert "'(oops'" in await client.fail("get-log", {"id": pid, "grep": "(oops"})
        assert "stream" in await client.fail("get-log", {"id": pid, "stream": "both"})
        assert "since" in await client.fail("get-log", {"id": pid, "since": -1})
        assert "maxBytes" in await client.fail("get-log", {"id": pid, "maxBytes": 10})
        assert "limit" in await client.fail("get-log", {"id": pid, "since": 0, "limit": 0})
        assert "'context'" in await client.fail("get-log", {"id": pid, "context": 2})
        assert "zzzzzz" in await client.fail("get-log", {"id": "zzzzzz"})


async def test_cap_drops_old_data_numbers_stay_and_since_into_dropped_is_flagged() -> None:
    code = (
        "import sys\n"
        "for i in range(1, 200001):\n"
        "    sys.stdout.write(f'line {i}\\n')\n"
        "    if i % 1000 == 0: sys.stdout.flush()\n"
    )
    async with mcp_client(PROCESS_MCP_LOG_MAX_BYTES=str(256 * 1024)) as client:
        pid = await finished(client, code)
        log = await client.ok("get-log", {"id": pid})
        assert log["droppedBytes"] > 0 and log["totalLines"] == 200_000
        assert log["lines"][-1] == "line 200000" and log["lastLine"] == 200_000
        assert log["truncated"] is True and answer_bytes(log["lines"]) <= 64 * 1024
        assert log["lines"][0] == f"line {log['firstLine']}"
        old = await client.ok("get-log", {"id": pid, "since": 5, "limit": 3})
        assert old["missedLines"] > 0 and old["firstLine"] == 6 + old["missedLines"]
        assert old["lines"][0] == f"line {old['firstLine']}"
        assert "dropped" in old["notice"]


async def test_following_a_noisy_build_never_exceeds_max_bytes() -> None:
    """Paging with since = nextCursor, each page within maxBytes, reads every line exactly
    once: a page full of bytes ends at its last line (before, it kept its newest lines and
    the cursor passed the rest)."""
    code = (
        "import sys\n"
        "for i in range(12000):\n"
        "    print(f'warning: unused variable x{i} ' + 'w' * (i % 200))\n"
        "    if i % 2000 == 0: print('error: failed step', i, file=sys.stderr)\n"
    )
    async with mcp_client() as client:
        started = await client.ok("start", py(code))
        cursor, errors, numbers = 0, [], []
        while True:
            log = await client.ok(
                "get-log",
                {"id": started["id"], "since": cursor, "grep": "error|warning", "maxBytes": 8192},
            )
            assert answer_bytes(log["lines"]) <= 8192
            # grep -n form: "N:" before each matching line (no context, so no "--")
            assert all(re.match(r"\d+:(error|warning)", line) for line in log["lines"])
            numbers += [int(line.split(":", 1)[0]) for line in log["lines"]]
            errors += [line for line in log["lines"] if line.split(":", 1)[1].startswith("error")]
            if log["lines"]:
                assert log["nextCursor"] == int(log["lines"][-1].split(":", 1)[0])
            cursor = log["nextCursor"]
            if log["status"] == "exited" and cursor == log["totalLines"]:
                break
        assert cursor == 12_006
        assert numbers == list(range(1, 12_007)) and len(errors) == 6
        only_errors = await client.ok("get-log", {"id": started["id"], "grep": "^error"})
        assert len(only_errors["lines"]) == 6


async def test_a_burst_paged_with_since_is_read_whole() -> None:
    """5,000 lines of 120 bytes, all stored, read with since = nextCursor and the default
    limit and maxBytes: every line once (before: 2,705 of 5,000)."""
    code = (
        "import sys\n"
        "sys.stdout.write(''.join(f'{i:05}: ' + 'x' * 113 + '\\n' for i in range(1, 5001)))"
    )
    async with mcp_client() as client:
        started = await client.ok("start", py(code))
        await wait_status(client, started["id"], {"exited"})
        cursor, lines = 0, []
        while True:
            page = await client.ok("get-log", {"id": started["id"], "since": cursor})
            assert "truncated" not in page and "omittedLines" not in page
            lines += page["lines"]
            if page["nextCursor"] == cursor:
                break
            assert page["nextCursor"] == page["lastLine"]
            cursor = page["nextCursor"]
        assert [int(line[:5]) for line in lines] == list(range(1, 5001))
