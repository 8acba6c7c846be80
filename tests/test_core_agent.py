"""The agent's working set in the core: default folder joining, restart overrides, start
reuse, the list summary (no /proc read per process), waits on several processes, honest
``met``, wait tails and cursors, and which grep lines matched."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import eventually

from process_mcp.core import InvalidRequest, ProcessManager, ProcessRecord, StartFailed
from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.logs.query import LogQuery, run_query
from process_mcp.core.logs.store import LogStore
from process_mcp.core.options import RestartChanges, StartOptions, StartRequest
from process_mcp.core.spawn.launch import join_cwd
from process_mcp.core.waiting import TAIL_LINES, WaitCondition, wait_for, wait_for_exits
from process_mcp.server import answers
from process_mcp.server import schemas as s

pytestmark = pytest.mark.anyio

PROMPT = (
    "import sys; print('Apply? [y/N] ', end='', flush=True); "
    "sys.exit(0 if sys.stdin.readline().strip() == 'y' else 1)"
)


# ------------------------------------------------------------ default folder
def test_cwd_joins_against_the_default_folder() -> None:
    assert join_cwd(None, "/proj") == "/proj"
    assert join_cwd("web", "/proj") == "/proj/web"
    assert join_cwd("/abs", "/proj") == "/abs"
    assert join_cwd("~", "/proj") == os.path.expanduser("~")
    assert join_cwd("web", None) == "web"  # the server's own, as before
    assert join_cwd(None, None) == ""


async def test_start_runs_in_the_default_folder_and_relative_cwd_joins_it(
    manager: ProcessManager, tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    here = await manager.start(StartRequest("pwd", folder=str(tmp_path)))
    below = await manager.start(StartRequest("pwd", cwd="sub", folder=str(tmp_path)))
    assert (here.cwd, below.cwd) == (str(tmp_path), str(tmp_path / "sub"))
    for record in (here, below):
        ended = await manager.wait_ended(record.id)
        lines = run_query(manager.log(record.id).snapshot(), LogQuery()).lines
        assert lines == [ended.cwd]


# ---------------------------------------------------------- restart overrides
async def test_restart_with_stdin_pipe_makes_a_prompt_answerable(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest(sys.executable, ["-c", PROMPT]))
    await manager.wait_ended(record.id)
    assert record.status.value == "crashed"  # the prompt read EOF from /dev/null
    again = await manager.restart(record.id, RestartChanges(stdin="pipe"))
    assert again.id == record.id and again.options.stdin == "pipe"
    await manager.send_input(record.id, "y\n")
    assert (await manager.wait_ended(record.id)).status.value == "exited"


async def test_restart_overrides_args_cwd_env_and_timeout(
    manager: ProcessManager, tmp_path: Path
) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "echo first"], env={"A": "1", "B": "2"}))
    await manager.wait_ended(record.id)
    changes = RestartChanges(
        args=["-c", 'echo "$A-$B" $(pwd); exec sleep 30'],
        cwd=".",
        env={"A": "9"},
        timeout_seconds=0.5,
    )
    again = await manager.restart(record.id, changes, default_cwd=str(tmp_path))
    assert again.args[1].startswith("echo") and again.cwd == str(tmp_path)
    assert again.env == {"A": "9"} and again.options.timeout_seconds == 0.5
    ended = await manager.wait_ended(record.id)
    assert (ended.status.value, ended.timed_out) == ("stopped", True)
    lines = run_query(manager.log(record.id).snapshot(), LogQuery()).lines
    assert lines[0] == "first" and lines[-1] == f"9- {tmp_path}"  # B is gone: env replaced


async def test_a_restart_that_cannot_start_keeps_what_it_was_started_with(
    manager: ProcessManager, tmp_path: Path
) -> None:
    record = await manager.start(StartRequest("true", cwd=str(tmp_path)))
    await manager.wait_ended(record.id)
    with pytest.raises(StartFailed, match="does not exist"):
        await manager.restart(record.id, RestartChanges(args=["x"], cwd="/no/such/dir"))
    assert (record.args, record.cwd, record.restarts) == ([], str(tmp_path), 0)
    with pytest.raises(InvalidRequest, match="timeoutSeconds"):
        await manager.restart(record.id, RestartChanges(timeout_seconds=-1))
    assert record.options.timeout_seconds is None


# ------------------------------------------------------------------- reuse
async def test_reuse_answers_the_running_process_with_the_label(manager: ProcessManager) -> None:
    web = StartOptions(label="web")
    first, reused = await manager.start_or_reuse(StartRequest("sleep", ["30"], options=web))
    assert not reused
    again, reused = await manager.start_or_reuse(StartRequest("sleep", ["30"], options=web))
    assert reused and again is first and len(manager.records()) == 1
    await manager.stop(first.id)
    third, reused = await manager.start_or_reuse(StartRequest("sleep", ["30"], options=web))
    assert not reused and third.id != first.id
    with pytest.raises(InvalidRequest, match="needs a 'label'"):
        await manager.start_or_reuse(StartRequest("sleep", ["30"]))
    await manager.stop(third.id)


# -------------------------------------------------------------- list summary
async def test_summaries_are_one_line_each_without_reading_proc(manager: ProcessManager) -> None:
    long_args = ["-c", "exit 3", "x" * 200]
    crashed = await manager.start(StartRequest("sh", long_args))
    running = [
        await manager.start(StartRequest("sleep", ["30"], options=StartOptions(label=f"s{n}")))
        for n in range(5)
    ]
    await manager.wait_ended(crashed.id)
    facts, ports = manager.facts, manager.ports
    before = (facts.table_reads, facts.socket_reads, ports.scans)
    for _ in range(20):
        summaries = manager.summaries()
    assert (facts.table_reads, facts.socket_reads, ports.scans) == before
    first = summaries[0]
    assert first["command"].startswith("sh -c 'exit 3' xxx") and len(first["command"]) == 120
    assert first["command"].endswith("…")
    assert (first["status"], first["exitCode"], first["listeningPorts"]) == ("crashed", 3, [])
    assert [s["label"] for s in summaries[1:]] == [f"s{n}" for n in range(5)]
    shaped = answers.listed(summaries)["processes"]
    assert set(shaped[1]) == {"id", "pid", "status", "label", "command", "startedAt"}
    assert shaped[0]["exitCode"] == 3 and shaped[0]["signal"] is None  # ended: both shown
    for record in running:
        await manager.stop(record.id, force=True)


async def test_shell_command_lines_are_shown_as_given(manager: ProcessManager) -> None:
    record = await manager.start(
        StartRequest("echo 'a b' | wc -w", options=StartOptions(shell=True))
    )
    assert manager.summaries()[0]["command"] == "echo 'a b' | wc -w"
    assert record.command_line() == "echo 'a b' | wc -w"


async def test_listening_ports_reach_the_summary_in_the_background(
    manager: ProcessManager,
) -> None:
    record = await manager.start(
        StartRequest(sys.executable, ["-m", "http.server", "0", "--bind", "127.0.0.1"])
    )
    assert await eventually(lambda: manager.summaries()[0]["listeningPorts"], 15)
    [port] = manager.summaries()[0]["listeningPorts"]
    assert port in manager.listening_ports(record.id)
    await manager.stop(record.id)
    assert manager.summaries()[0]["listeningPorts"] == []


# ------------------------------------------------------------------ waiting
async def test_wait_for_any_and_all_of_several_processes(manager: ProcessManager) -> None:
    quick = await manager.start(StartRequest("sh", ["-c", "sleep 0.3; exit 4"]))
    slow = await manager.start(StartRequest("sleep", ["30"]))
    outcome = await wait_for_exits(manager, [quick.id, slow.id], every=False, timeout=20)
    assert (outcome.met, outcome.reason) == (True, "exited")
    assert [r.id for r in outcome.ended] == [quick.id] and outcome.ended[0].exit_code == 4
    assert [r.id for r in outcome.running] == [slow.id]
    timed = await wait_for_exits(manager, [quick.id, slow.id], every=True, timeout=0.3)
    assert (timed.met, timed.reason) == (False, "timeout")
    assert [r.id for r in timed.running] == [slow.id]
    await manager.stop(slow.id)
    both = await wait_for_exits(manager, [slow.id, quick.id, slow.id], every=True, timeout=5)
    assert both.met and [r.id for r in both.ended] == [slow.id, quick.id]


async def test_a_pattern_on_a_process_that_already_ended_is_not_met(
    manager: ProcessManager,
) -> None:
    record = await manager.start(StartRequest(sys.executable, ["-c", PROMPT]))
    await manager.wait_ended(record.id)  # crashed: the prompt read EOF
    prompt = WaitCondition(pattern=LinePattern.compile(r"\[y/N\]"))
    outcome = await wait_for(manager, record.id, prompt, 5)
    assert (outcome.met, outcome.reason) == (False, "exited")
    assert outcome.matched_line == "Apply? [y/N] "  # still reported
    assert outcome.tail == ["Apply? [y/N] "]  # not met: a tail by default
    ended = await wait_for(manager, record.id, WaitCondition(), 5)
    # met, but it crashed: the tail says why (a clean end brings none)
    assert (ended.met, ended.reason, ended.tail) == (True, "exited", ["Apply? [y/N] "])


async def test_wait_tails_and_cursor(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "seq 1 50; echo ready; exec sleep 30"]))
    ready = WaitCondition(pattern=LinePattern.compile("^ready$"))
    met = await wait_for(manager, record.id, ready, 10)
    assert met.met and met.tail == [] and met.cursor == 51
    some = await wait_for(manager, record.id, ready, 10, tail_lines=3)
    assert some.tail == ["49", "50", "ready"]
    never = WaitCondition(pattern=LinePattern.compile("never"))
    missed = await wait_for(manager, record.id, never, 0.2)
    assert (missed.met, missed.reason) == (False, "timeout")
    assert len(missed.tail) == TAIL_LINES and missed.tail[-1] == "ready"
    await manager.stop(record.id)


# ---------------------------------------------------------------- grep hits
def test_grep_answers_say_which_lines_matched(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 20, 1024)
    log.append("stdout", b"".join(b"line %d\n" % i for i in range(1, 21)))
    log.append("stdout", b"error a\nerror b\nafter\n")
    answer = run_query(log.snapshot(), LogQuery(grep=r"^line (3|9)$|error", context=1))
    listing = answers.grep_listing(answer, separate=True)
    assert listing == [
        "2-line 2", "3:line 3", "4-line 4", "--",
        "8-line 8", "9:line 9", "10-line 10", "--",
        "20-line 20", "21:error a", "22:error b", "23-after",
    ]  # fmt: skip
    plain = run_query(log.snapshot(), LogQuery(grep="error"))
    assert answers.grep_listing(plain, separate=False) == ["21:error a", "22:error b"]


def test_grep_answers_fit_max_bytes_with_their_prefixes(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 22, 1024)
    log.append("stdout", b"".join(b"match %d\nother\n" % i for i in range(5000)))
    for context in (0, 1):
        answer = run_query(log.snapshot(), LogQuery(grep="match", context=context, max_bytes=1000))
        listing = answers.grep_listing(answer, separate=context > 0)
        assert answer.truncated and sum(len(line.encode()) + 1 for line in listing) <= 1000
        assert listing[-1].startswith(("9999:", "10000-"))  # the newest kept


def test_the_hand_built_list_item_is_the_slim_shape() -> None:
    shape = answers.Shape(s.ListedProcess)
    base = {"id": "a", "pid": 1, "label": None, "command": "x", "startedAt": "t"}
    for extra in [
        {"status": "running", "exitCode": None, "signal": None, "listeningPorts": []},
        {"status": "running", "exitCode": None, "signal": None, "listeningPorts": [80]},
        {"status": "crashed", "exitCode": 2, "signal": None, "listeningPorts": [], "label": "w"},
        {"status": "stopped", "exitCode": None, "signal": "SIGTERM", "listeningPorts": []},
    ]:
        merged = {**base, **extra}
        order = ProcessRecord("a", "x", [], "/", {}, False).summary([])  # the real key order
        summary = {key: merged[key] for key in order}
        assert answers.listed_item(summary) == shape(summary)
        assert list(answers.listed_item(summary)) == list(shape(summary))  # same order
