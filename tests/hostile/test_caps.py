"""Issue 12 items 8, 9 and 13: caps with clear errors, big answers that do not block the
event loop, and a cut count that tells what is missing.

Before: ``maxBytes`` 16 MiB of binary output built a 71 MB answer and blocked the loop
12.6 s; 100 000 args were accepted (and carried by every ``list``); labels took control
characters; a 1 MB command gave a 2 MB error; a 200 000-byte line read ``…[54 bytes cut]``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pinger import assert_responsive, raw_request_while_pinging
from support import RawServer, mcp_client, wait_status

from process_mcp.core import InvalidRequest, ProcessManager, limits
from process_mcp.core.logs.format import split_cut_marker
from process_mcp.core.options import StartRequest

pytestmark = pytest.mark.anyio

ERROR_CHARS = 2000  # an error about a huge value stays this small


async def test_start_caps_refuse_with_short_clear_errors() -> None:
    huge = "x" * 1_000_000
    async with mcp_client() as client:
        cases = {
            "command": {"command": huge},
            "4096": {"command": "true", "args": ["a"] * (limits.MAX_ARGS + 1)},
            "1048576": {"command": "true", "args": ["y" * 4000] * 300},
            "env": {"command": "true", "env": {f"V{i}": "z" * 4000 for i in range(300)}},
            "label": {"command": "true", "label": "L" * (limits.MAX_LABEL_CHARS + 1)},
            "control character": {"command": "true", "label": "build\x1b[2J\x00"},
        }
        for named, arguments in cases.items():
            text = await client.fail("start", arguments)
            assert named in text, text
            assert len(text) < ERROR_CHARS, f"{len(text)} characters: {text[:300]}"
        missing = await client.fail("start", {"command": "/no/such/" + "p/" * 30_000})
        assert "cannot start" in missing and len(missing) < ERROR_CHARS, missing[:300]
        assert (await client.ok("list"))["processes"] == []


async def test_processes_running_are_capped(manager: ProcessManager, monkeypatch) -> None:
    monkeypatch.setattr(limits, "MAX_PROCESSES", 2)
    for _ in range(2):
        await manager.start(StartRequest("sleep", ("300",)))
    with pytest.raises(InvalidRequest, match=r"2 processes are running, .* limit is 2; 'stop'"):
        await manager.start(StartRequest("true"))
    await manager.stop(manager.records()[0].id)
    await manager.start(StartRequest("true"))  # room again: ended ones do not count


async def test_max_bytes_is_capped_at_one_mib() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "true"})
        text = await client.fail("get-log", {"id": started["id"], "maxBytes": 16 * 1024 * 1024})
        assert "maxBytes" in text and str(limits.MAX_ANSWER_BYTES) in text


def test_one_mib_of_binary_output_is_answered_while_ping_stays_fast() -> None:
    """The attack of item 8 at the new cap: random bytes (invalid UTF-8), then lines of
    control characters (JSON sends each as six bytes), read raw and cleaned. The answer
    stays near its budget on the wire and ``ping`` is answered while it is built and sent."""
    flood = (
        "import os, sys; w = sys.stdout.buffer.write; w(os.urandom(4 << 20)); "
        "w((bytes(range(1, 10)) + bytes(range(11, 32)) + b'\\n') * 100_000)"
    )
    server = RawServer()
    try:
        server.initialize()
        started = server.call_tool("start", {"command": sys.executable, "args": ["-c", flood]})
        process_id = started["structuredContent"]["id"]
        waited = server.call_tool("wait", {"id": process_id, "timeoutSeconds": 60})
        assert waited["structuredContent"]["status"] == "exited", waited
        for raw in (True, False):
            arguments = {"id": process_id, "raw": raw, "maxBytes": limits.MAX_ANSWER_BYTES}
            answer, pings = raw_request_while_pinging(
                server, "tools/call", {"name": "get-log", "arguments": arguments}
            )
            result = answer["result"]
            assert result.get("isError") is not True, result
            log = result["structuredContent"]
            assert log["truncated"] is True and log["lines"]
            sent = len(result["content"][0]["text"].encode())
            assert sent < 2 * limits.MAX_ANSWER_BYTES, sent  # budget counts bytes as sent
            assert_responsive(pings)
    finally:
        server.kill()


async def test_a_line_longer_than_the_line_cap_shows_what_is_missing() -> None:
    long_line = "import sys; sys.stdout.write('q' * 200_000 + '\\nend\\n')"
    async with mcp_client() as client:
        started = await client.ok("start", {"command": sys.executable, "args": ["-c", long_line]})
        await wait_status(client, started["id"], {"exited"})
        for arguments in ({}, {"grep": "^q"}, {"maxBytes": 4096}):
            log = await client.ok("get-log", {"id": started["id"], **arguments})
            first = log["lines"][0]
            if "grep" in arguments:  # grep -n form: "1:" before the text
                assert first.startswith("1:"), first[:10]
                first = first[2:]
            kept, cut = split_cut_marker(first)
            assert set(kept) == {"q"}, kept[-40:]
            assert len(kept) + cut == 200_000, (len(kept), cut, first[-40:])


def test_stored_cut_counts_add_up_in_a_smaller_answer(tmp_path: Path) -> None:
    from process_mcp.core.logs.query import LogQuery, run_query
    from process_mcp.core.logs.store import LogStore

    log = LogStore(tmp_path / "log", 1 << 24, 1000)
    log.append("stdout", "é".encode() * 600 + b"\n")  # 1200 bytes, stored cut to 1000
    for budget in (10_000, 700, 300):
        line = run_query(log.snapshot(), LogQuery(max_bytes=budget)).lines[0]
        kept, cut = split_cut_marker(line)
        assert len(kept.encode()) + cut == 1200, (budget, len(kept.encode()), cut)
