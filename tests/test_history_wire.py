"""The manager's history: runs and their logs outlive the manager that ran them,
within the disk cap. Real SQLite files in the test's state dir, real processes and servers."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import eventually, tagged_processes, wait_until
from support import RawServer
from test_tree_ownership import sentinel_of

from process_mcp.core import ProcessManager, Settings, StartFailed, Status, UnknownProcess
from process_mcp.core.history import DB_NAME, RUNS_DIR, History
from process_mcp.core.logs.query import LogQuery
from process_mcp.core.options import StartOptions, StartRequest
from process_mcp.supervisor.paths import SupervisorPaths

pytestmark = pytest.mark.anyio

WRITE_4000 = "import sys; sys.stdout.write(('x' * 99 + '\\n') * 40)"  # 40 lines, 4000 bytes
# stored with a one-byte stream tag per line: 4040 bytes on disk


async def test_a_run_and_its_log_outlive_the_manager(settings: Settings) -> None:
    first = ProcessManager(settings)
    try:
        record = await first.start(
            StartRequest(
                "sh", ["-c", "echo one; echo two >&2; exit 3"], options=StartOptions(label="job")
            )
        )
        await first.wait_ended(record.id)
        assert record.history is None  # nothing ran it before
        directory = first.log(record.id).directory
        assert directory.parent == settings.state_dir / RUNS_DIR
    finally:
        await first.shutdown()
    assert not first.instance_dir.exists() and directory.exists()  # only the instance goes

    second = ProcessManager(settings)
    try:
        with pytest.raises(UnknownProcess):
            second.get(record.id)  # not live: the history answers
        past = await second.past(record.id)
        assert (past.status, past.exit_code, past.label) == ("crashed", 3, "job")
        assert past.public()["cwd"] == record.cwd
        answer = await second.read_log(record.id, LogQuery())
        assert (answer.lines, answer.numbers) == (["one", "two"], [1, 2])
        stderr = await second.read_log(record.id, LogQuery(stream="stderr"))
        assert stderr.lines == ["two"]
        with pytest.raises(UnknownProcess, match="nosuch"):
            await second.read_log("nosuch", LogQuery())
    finally:
        await second.shutdown()


async def test_restart_continues_one_log_that_a_later_manager_reads(settings: Settings) -> None:
    first = ProcessManager(settings)
    try:
        record = await first.start(StartRequest("sh", ["-c", "echo run"]))
        await first.wait_ended(record.id)
        directory = first.log(record.id).directory
        await first.restart(record.id)
        await first.wait_ended(record.id)
        live = await first.read_log(record.id, LogQuery())
        assert first.log(record.id).directory == directory  # one folder for both runs
    finally:
        await first.shutdown()
    assert live.numbers == [1, 2, 3] and live.lines[0] == live.lines[2] == "run"
    assert "restarted" in live.lines[1]

    second = ProcessManager(settings)
    try:
        answer = await second.read_log(record.id, LogQuery())
        assert (answer.lines, answer.numbers) == (live.lines, live.numbers)
        assert (await second.past(record.id)).run == 2
        runs = second.recorder.history.runs(record.command)
        assert [(run.run, run.status, run.log_dir) for run in runs] == [
            (2, "exited", directory),
            (1, "exited", directory),
        ]
    finally:
        await second.shutdown()


async def test_start_answers_stats_of_earlier_runs(settings: Settings, tmp_path: Path) -> None:
    # The same command, args and cwd: the first run crashes, the next ones exit 0.
    script = ["-c", "[ -e flag ] && exit 0; touch flag; exit 2"]
    first = ProcessManager(settings)
    try:
        crashed = await first.start(StartRequest("sh", script, cwd=str(tmp_path)))
        await first.wait_ended(crashed.id)
        assert crashed.status is Status.CRASHED and crashed.history is None
    finally:
        await first.shutdown()
    second = ProcessManager(settings)
    try:
        exited = await second.start(StartRequest("sh", script, cwd=str(tmp_path)))
        await second.wait_ended(exited.id)
        assert exited.history == {
            "runs": 1,
            "failures": 1,
            "medianSeconds": pytest.approx(0, abs=5),
        }
        third = await second.start(StartRequest("sh", script, cwd=str(tmp_path)))
        await second.wait_ended(third.id)
        assert third.history is not None
        assert (third.history["runs"], third.history["failures"]) == (2, 1)
        assert isinstance(third.history["medianSeconds"], float)
        other = await second.start(
            StartRequest("sh", script, cwd=str(tmp_path / ".."))
        )  # another cwd
        await second.wait_ended(other.id)
        assert other.history is None
    finally:
        await second.shutdown()


async def test_disk_cap_drops_the_oldest_ended_logs_and_keeps_records(
    settings: Settings,
) -> None:
    manager = ProcessManager(dataclasses.replace(settings, disk_cap=6000))
    try:
        old = await manager.start(StartRequest(sys.executable, ["-c", WRITE_4000]))
        await manager.wait_ended(old.id)
        old_dir = manager.log(old.id).directory
        assert (await manager.read_log(old.id, LogQuery())).total_lines == 40
        new = await manager.start(StartRequest(sys.executable, ["-c", WRITE_4000]))
        await manager.wait_ended(new.id)
        # 2 x 4040 bytes > 6000: the older log goes, in the live table too.
        assert await eventually(lambda: manager.log(old.id).size == 0, 10)
        assert not old_dir.exists()
        answer = await manager.read_log(old.id, LogQuery())
        assert (answer.lines, answer.dropped_bytes, answer.total_lines) == ([], 4040, 40)
        assert (await manager.read_log(new.id, LogQuery())).total_lines == 40
        found = manager.recorder.history.find(old.id)
        assert found is not None and found.status == "exited"  # the record is kept
        assert found.public()["logDroppedBytes"] == 4040
        # A restart of the dropped process writes a new folder; numbering goes on.
        await manager.restart(old.id)
        await manager.wait_ended(old.id)
        assert manager.log(old.id).directory not in (old_dir, manager.log(new.id).directory)
        again = await manager.read_log(old.id, LogQuery(since=40, limit=1))
        assert again.numbers == [41] and "restarted" in again.lines[0]
    finally:
        await manager.shutdown()


async def test_remove_deletes_the_log_and_keeps_the_record(settings: Settings) -> None:
    first = ProcessManager(settings)
    try:
        record = await first.start(StartRequest("sh", ["-c", "echo bye"]))
        await first.wait_ended(record.id)
        directory = first.log(record.id).directory
        await first.remove(record.id)
        assert not directory.exists()
        with pytest.raises(UnknownProcess):  # removed here: unknown to this manager
            await first.past(record.id)
    finally:
        await first.shutdown()
    second = ProcessManager(settings)
    try:
        past = await second.past(record.id)
        assert past.status == "exited" and past.public()["logDroppedBytes"] > 0
        assert (await second.read_log(record.id, LogQuery())).lines == []
    finally:
        await second.shutdown()


async def test_a_broken_database_never_stops_the_manager(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.state_dir.mkdir(parents=True)
    (settings.state_dir / DB_NAME).write_bytes(b"not a database, " * 512)
    with caplog.at_level(logging.WARNING):
        manager = ProcessManager(settings)
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and DB_NAME in warnings[0] and "without history" in warnings[0]
        record = await manager.start(StartRequest("sh", ["-c", "echo still works"]))
        await manager.wait_ended(record.id)
        assert (await manager.read_log(record.id, LogQuery())).lines == ["still works"]
        assert manager.log(record.id).directory.is_relative_to(manager.instance_dir)
        await manager.restart(record.id)
        await manager.wait_ended(record.id)
        assert (await manager.read_log(record.id, LogQuery())).total_lines == 3
    finally:
        await manager.shutdown()


def test_after_a_server_sigkill_the_next_server_reads_the_interrupted_run(
    isolated_state_dir: Path, no_leftover_processes: str, frontend_mode: str
) -> None:
    """The sentinel ends the tree of a SIGKILLed manager (the server, or its supervisor);
    the next one marks its run interrupted and still reads its log and answers its stats."""
    command = {"command": "sh", "args": ["-c", "echo hello; echo world; exec sleep 300"]}
    first = RawServer()
    second = None
    try:
        first.initialize()
        started = first.call_tool("start", command)["structuredContent"]
        assert "history" not in started  # a first run: no stats, not even a null
        process_id = started["id"]

        def logged() -> list[str]:
            reply = first.call_tool("get-log", {"id": process_id})
            return reply["structuredContent"]["lines"]

        assert wait_until(lambda: logged() == ["hello", "world"], 10)
        manager_pid = first.proc.pid
        if frontend_mode == "supervisor":
            manager_pid = SupervisorPaths.from_env().holder_pid() or 0
            assert manager_pid > 0
        assert wait_until(lambda: sentinel_of(manager_pid) is not None, 10)
        os.kill(manager_pid, signal.SIGKILL)
        first.kill()  # a front-end has nothing to keep: its supervisor is gone
        first.wait()
        assert wait_until(lambda: not tagged_processes(no_leftover_processes), 10)

        second = RawServer()
        second.initialize()
        status = second.call_tool("get-status", {"id": process_id})["structuredContent"]
        assert (status["id"], status["status"], status["command"]) == (
            process_id,
            "interrupted",
            "sh",
        )
        log = second.call_tool("get-log", {"id": process_id, "lastLines": 1})
        assert log["structuredContent"]["status"] == "interrupted"
        assert (log["structuredContent"]["lines"], log["structuredContent"]["lastLine"]) == (
            ["world"],
            2,
        )
        again = second.call_tool("start", command)["structuredContent"]
        assert again["history"] == {"runs": 1, "failures": 0, "medianSeconds": None}
        second.call_tool("stop", {"id": again["id"]})
        unknown = second.call_tool("get-status", {"id": "nosuch"})["structuredContent"]
        assert unknown["status"] == "not-exists"
    finally:
        first.kill()
        if second is not None:
            second.kill()


def test_disk_cap_from_the_environment_is_said_in_get_log(
    isolated_state_dir: Path, no_leftover_processes: str
) -> None:
    servers = []
    try:
        first = RawServer(PROCESS_MCP_DISK_CAP="6K")
        servers.append(first)
        first.initialize()
        ids = []
        for _ in range(2):
            started = first.call_tool(
                "start", {"command": sys.executable, "args": ["-c", WRITE_4000]}
            )
            ids.append(started["structuredContent"]["id"])
            first.call_tool("wait", {"id": ids[-1]})
        first.close_stdin()
        assert first.wait() == 0

        second = RawServer(PROCESS_MCP_DISK_CAP="6K")
        servers.append(second)
        second.initialize()
        dropped = second.call_tool("get-log", {"id": ids[0]})["structuredContent"]
        assert dropped["status"] == "exited" and dropped["lines"] == []
        assert "PROCESS_MCP_DISK_CAP" in dropped["notice"]
        kept = second.call_tool("get-log", {"id": ids[1]})["structuredContent"]
        assert kept["totalLines"] == 40 and "notice" not in kept  # slim: no notice
        status = second.call_tool("get-status", {"id": ids[0]})["structuredContent"]
        assert status["status"] == "exited" and status["exitCode"] == 0
    finally:
        for server in servers:
            server.kill()


async def test_a_failed_restart_leaves_no_run_and_the_log_droppable(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    manager = ProcessManager(settings)
    try:
        record = await manager.start(StartRequest("sh", ["-c", "echo once"], cwd=str(folder)))
        await manager.wait_ended(record.id)
        folder.rmdir()
        with pytest.raises(StartFailed, match="does not exist"):
            await manager.restart(record.id)
        await manager.recorder.close()  # every queued write done
        with History.in_state_dir(settings.state_dir) as history:
            assert [(run.run, run.status) for run in history.runs("sh")] == [(1, "exited")]
            assert [run.process_id for run in history.enforce_cap(0)] == [record.id]
    finally:
        await manager.shutdown()
