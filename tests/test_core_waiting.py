"""The core of ``wait``: log scanning, cleaning and conditions, without MCP."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import eventually, log_lines

from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.logs.query import LogQuery, run_query
from process_mcp.core.logs.store import LogStore
from process_mcp.core.options import StartRequest
from process_mcp.core.waiting import WaitCondition, find_match, wait_for

pytestmark = pytest.mark.anyio


def test_cleaning_removes_escapes_and_keeps_the_final_carriage_return_state(
    tmp_path: Path,
) -> None:
    log = LogStore(tmp_path / "log", 1 << 20, 1024)
    log.append("stdout", b"\x1b[1;32mready\x1b[0m in 3 ms\n10%\r50%\r100%\n")
    log.append("stderr", b"\x1b]0;title\x07done\r\nbad \xff byte\n")
    lines = run_query(log.snapshot(), LogQuery()).lines
    assert lines == ["ready in 3 ms", "100%", "done", "bad \ufffd byte"]


async def test_pattern_found_deep_in_a_long_log(manager) -> None:
    # It keeps running: a match on a process that has ended is not met.
    script = (
        "import time; print('\\n'.join(f'noise {i}' for i in range(30000))); "
        "print('NEEDLE here', flush=True); time.sleep(30)"
    )
    record = await manager.start(StartRequest(sys.executable, ["-c", script]))
    needle = WaitCondition(pattern=LinePattern.compile("NEEDLE"))
    outcome = await wait_for(manager, record.id, needle, 20)
    assert outcome.met and outcome.reason == "pattern"
    assert (outcome.matched_line, outcome.matched_line_number) == ("NEEDLE here", 30001)
    await manager.stop(record.id)


async def test_find_match_returns_the_first_match_and_progresses_block_by_block(
    manager,
) -> None:
    script = "print('\\n'.join(f'noise {i}' for i in range(30000))); print('NEEDLE here')"
    record = await manager.start(StartRequest(sys.executable, ["-c", script]))
    await manager.wait_ended(record.id)
    found = await find_match(manager, record.id, LinePattern.compile("noise 5$"), 0)
    assert found[0] == (6, "noise 5")
    absent = LinePattern.compile("absent")
    line, cursor, more = await find_match(manager, record.id, absent, 0, scan_lines=100)
    assert line is None and more and 100 <= cursor < 30001  # block-granular progress
    while more:
        line, after, more = await find_match(manager, record.id, absent, cursor, scan_lines=100)
        assert line is None and min(cursor + 100, 30001) <= after <= 30001
        cursor = after
    assert cursor == manager.log(record.id).last_line == 30001


async def test_pattern_found_in_an_unfinished_line(manager) -> None:
    prompt = await manager.start(StartRequest("sh", ["-c", "printf 'Password: '; exec sleep 30"]))
    password = WaitCondition(pattern=LinePattern.compile("Password"))
    outcome = await wait_for(manager, prompt.id, password, 10)
    assert outcome.met and outcome.matched_line == "Password: "
    await manager.stop(prompt.id, force=True)


async def test_pattern_matches_a_line_whole_not_the_piece_a_read_ended_on(manager) -> None:
    """A line written in two pieces (as Python's unbuffered ``print`` does: text, then
    newline) is matched whole: ``port \\d+$`` must not match ``port 30`` of ``port 3000``."""
    script = "printf 'listening on port 30'; sleep 0.05; echo 00; exec sleep 30"
    record = await manager.start(StartRequest("sh", ["-c", script]))
    listening = WaitCondition(pattern=LinePattern.compile(r"port \d+$"))
    outcome = await wait_for(manager, record.id, listening, 10)
    assert (outcome.matched_line, outcome.matched_line_number) == ("listening on port 3000", 1)
    assert outcome.cursor == 1  # the line is complete: the cursor covers it
    await manager.stop(record.id, force=True)


async def test_pattern_found_in_a_line_printed_before_the_call(manager) -> None:
    """The search starts at the log's first line, not at the end it had when called."""
    record = await manager.start(StartRequest("sh", ["-c", "echo ready; exec sleep 30"]))
    assert await eventually(lambda: log_lines(manager, record.id) == ["ready"], 10)
    ready = WaitCondition(pattern=LinePattern.compile("ready"))
    outcome = await wait_for(manager, record.id, ready, 2)
    assert (outcome.met, outcome.reason, outcome.matched_line_number) == (True, "pattern", 1)
    await manager.stop(record.id, force=True)


async def test_port_condition_ignores_a_listener_outside_the_tree(manager) -> None:
    import socket

    with socket.socket() as other:  # someone else (this test) holds the port
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        record = await manager.start(StartRequest("sleep", ["30"]))
        outcome = await wait_for(manager, record.id, WaitCondition(port=port), 0.6)
        assert (outcome.met, outcome.reason) == (False, "timeout")
    await manager.stop(record.id, force=True)


async def test_a_met_wait_on_a_crash_carries_the_tail_a_clean_end_none(manager) -> None:
    """Waiting for the end is met however it ends; a non-zero exit or a signal brings the
    newest 20 lines (the reason), a clean exit none, unless tail_lines says otherwise."""
    lines = "seq 1 25; echo 'fatal: out of memory' >&2"
    cases = {"crashed": f"{lines}; exit 4", "signal": f"{lines}; kill -9 $$", "clean": lines}
    tails = {}
    for name, script in cases.items():
        record = await manager.start(StartRequest("sh", ["-c", script]))
        outcome = await wait_for(manager, record.id, WaitCondition(), 20)
        assert (outcome.met, outcome.reason) == (True, "exited")
        tails[name] = outcome.tail
    expected = [*map(str, range(7, 26)), "fatal: out of memory"]
    assert tails == {"crashed": expected, "signal": expected, "clean": []}
    record = await manager.start(StartRequest("sh", ["-c", "echo bye; exit 1"]))
    asked = await wait_for(manager, record.id, WaitCondition(), 20, tail_lines=0)
    assert asked.met and asked.tail == []  # asked for none: none
