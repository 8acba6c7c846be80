"""The core with real processes: statuses, exit codes, signals, stopping, errors."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from conftest import eventually, group_pids, log_lines

from process_mcp.core import (
    ProcessManager,
    ProcessRunning,
    StartFailed,
    Status,
    UnknownProcess,
    platform,
)
from process_mcp.core.options import StartRequest
from process_mcp.core.trees import proc

pytestmark = pytest.mark.anyio


async def test_exit_zero_is_exited(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("true"))
    await manager.wait_ended(record.id)
    assert (record.status, record.exit_code, record.signal) == (Status.EXITED, 0, None)
    assert record.ended_at is not None


async def test_nonzero_exit_is_crashed_with_code(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "exit 3"]))
    await manager.wait_ended(record.id)
    assert (record.status, record.exit_code) == (Status.CRASHED, 3)


async def test_foreign_signal_is_crashed_with_signal_name(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sleep", ["30"]))
    os.kill(record.pid, signal.SIGKILL)
    await manager.wait_ended(record.id)
    assert (record.status, record.exit_code, record.signal) == (Status.CRASHED, None, "SIGKILL")


async def test_stop_answers_after_the_end_with_stopped(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sleep", ["30"]))
    assert record.status is Status.RUNNING
    stopped = await manager.stop(record.id)
    assert stopped.record is record and (stopped.survivors, stopped.tree_gone) == ([], True)
    assert (record.status, record.signal) == (Status.STOPPED, "SIGTERM")
    assert proc.read_proc(record.pid) is None  # reaped, not a zombie


async def test_stop_ended_process_returns_final_record(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "exit 4"]))
    await manager.wait_ended(record.id)
    again = await manager.stop(record.id)
    assert (again.record.status, again.record.exit_code) == (Status.CRASHED, 4)


async def test_force_stop_uses_sigkill(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "trap '' TERM; sleep 30"]))
    started = time.monotonic()
    await manager.stop(record.id, force=True)
    assert (record.status, record.signal) == (Status.STOPPED, "SIGKILL")
    assert time.monotonic() - started < manager.settings.stop_grace


async def test_sigterm_ignoring_child_is_escalated_to_sigkill(manager: ProcessManager) -> None:
    code = (
        "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    record = await manager.start(StartRequest(sys.executable, ["-c", code]))
    log = manager.log(record.id)
    assert await eventually(lambda: log.last_line >= 1, 10)  # the handler is installed
    started = time.monotonic()
    await manager.stop(record.id)
    elapsed = time.monotonic() - started
    assert (record.status, record.signal) == (Status.STOPPED, "SIGKILL")
    assert elapsed >= manager.settings.stop_grace * 0.9


async def test_stop_continues_a_suspended_process_so_it_can_exit_cleanly(
    manager: ProcessManager,
) -> None:
    """SIGCONT follows SIGTERM: a suspended process runs its SIGTERM handler within the grace
    instead of being SIGKILLed after it."""
    code = (
        "import signal,sys,time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
        "print('ready', flush=True); time.sleep(60)"
    )
    record = await manager.start(StartRequest(sys.executable, ["-c", code]))
    log = manager.log(record.id)
    assert await eventually(lambda: log.last_line >= 1, 10)  # the handler is installed
    os.killpg(record.pid, signal.SIGSTOP)
    assert await eventually(lambda: proc.read_proc(record.pid).state == "T", 5)
    started = time.monotonic()
    await manager.stop(record.id)
    assert time.monotonic() - started < manager.settings.stop_grace
    assert (record.status, record.exit_code, record.signal) == (Status.STOPPED, 0, None)


async def test_stop_ends_grandchildren(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "sleep 300 & sleep 301 & wait"]))
    pgid = record.pid
    assert await eventually(lambda: len(proc.group_members(pgid)) == 3, 10)
    grandchildren = [p.pid for p in proc.descendants(record.pid)]
    await manager.stop(record.id)
    assert not proc.group_exists(pgid)
    assert all(proc.read_proc(pid) is None or proc.read_proc(pid).zombie for pid in grandchildren)


async def test_grandchild_ignoring_sigterm_is_killed_after_leader_exits(
    manager: ProcessManager,
) -> None:
    record = await manager.start(
        StartRequest("sh", ["-c", "(trap '' TERM; exec sleep 300) & sleep 301"])
    )
    assert await eventually(lambda: len(proc.group_members(record.pid)) == 3, 10)
    await manager.stop(record.id)
    assert not proc.group_exists(record.pid)


async def test_cwd_is_resolved_and_used(manager: ProcessManager, tmp_path) -> None:
    record = await manager.start(StartRequest("pwd", cwd=str(tmp_path)))
    await manager.wait_ended(record.id)
    assert log_lines(manager, record.id) == [str(tmp_path.resolve())]
    assert record.cwd == str(tmp_path.resolve())


async def test_env_overlay_is_added_to_the_inherited_environment(
    manager: ProcessManager,
) -> None:
    record = await manager.start(
        StartRequest(
            "sh",
            ["-c", 'echo "$GREETING"; echo "$PATH" | head -c 1'],
            env={"GREETING": "hello there"},
        )
    )
    await manager.wait_ended(record.id)
    # "/": the first character of the server's PATH, inherited
    assert log_lines(manager, record.id) == ["hello there", "/"]


async def test_relative_cwd_is_resolved(manager: ProcessManager, tmp_path, monkeypatch) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    record = await manager.start(StartRequest("true", cwd="sub"))
    assert record.cwd == str((tmp_path / "sub").resolve())
    await manager.wait_ended(record.id)


@pytest.mark.parametrize(
    ("command", "args", "cwd", "expected"),
    [
        ("definitely-not-a-command-xyz", [], None, "No such file or directory"),
        ("npm run dev", [], None, "shell: true"),
        ("{plain_file}", [], None, "Permission denied"),
        ("{script_without_shebang}", [], None, "Exec format error"),
        ("true", [], "/nonexistent/dir", "'/nonexistent/dir' does not exist"),
        ("true", [], "/etc/hostname", "is not a directory"),
        ("echo", ["a\0b"], None, "args[0] contains a NUL byte"),
    ],
)
async def test_start_failures_are_errors_without_record(
    manager: ProcessManager, tmp_path, command: str, args: list[str], cwd: str | None, expected: str
) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("hello")
    plain.chmod(0o644)
    script = tmp_path / "script"
    script.write_bytes(b"\x7fELF-not-really")
    script.chmod(0o755)
    command = command.format(plain_file=plain, script_without_shebang=script)
    with pytest.raises(StartFailed, match=expected.replace("[", r"\[").replace("]", r"\]")):
        await manager.start(StartRequest(command, args, cwd=cwd))
    assert manager.records() == []


async def test_invalid_env_name_is_rejected(manager: ProcessManager) -> None:
    with pytest.raises(StartFailed, match="env entry 'A=B'"):
        await manager.start(StartRequest("true", env={"A=B": "x"}))


async def test_unknown_id(manager: ProcessManager) -> None:
    with pytest.raises(UnknownProcess, match="'nope'"):
        await manager.stop("nope")
    assert manager.find("nope") is None


async def test_remove_of_a_running_process_is_refused(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sleep", ["30"]))
    with pytest.raises(ProcessRunning, match=record.id):
        await manager.remove(record.id)
    assert manager.find(record.id) is record
    await manager.stop(record.id)


async def test_remove_forgets_an_ended_process_and_deletes_its_log(
    manager: ProcessManager,
) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "echo logged"]))
    await manager.wait_ended(record.id)
    directory = manager.log(record.id).directory
    assert directory.exists()
    await manager.remove(record.id)
    assert not directory.exists()
    assert manager.find(record.id) is None


async def test_exit_listener_runs_once_after_output(manager: ProcessManager) -> None:
    seen = []
    manager.add_exit_listener(lambda r: seen.append((r.id, r.status, manager.log(r.id).last_line)))
    record = await manager.start(StartRequest("sh", ["-c", "seq 1 500; exit 1"]))
    await manager.wait_ended(record.id)
    await manager.stop(record.id)
    assert seen == [(record.id, Status.CRASHED, 500)]


async def test_fast_failing_process_keeps_all_stderr(manager: ProcessManager) -> None:
    record = await manager.start(
        StartRequest(
            sys.executable,
            [
                "-c",
                "import sys\nfor i in range(20000): print('err', i, file=sys.stderr)\nsys.exit(7)",
            ],
        )
    )
    await manager.wait_ended(record.id)
    log = manager.log(record.id)
    assert record.exit_code == 7
    assert log.last_line == 20000
    assert log_lines(manager, record.id, stream="stderr", last_lines=1) == ["err 19999"]


async def test_grandchild_holding_pipe_does_not_delay_end_forever(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "sleep 30 & echo parent done"]))
    started = time.monotonic()
    await manager.wait_ended(record.id)
    assert record.status is Status.EXITED
    assert time.monotonic() - started < manager.settings.exit_drain_grace + 5
    assert log_lines(manager, record.id) == ["parent done"]
    await manager.stop(record.id)  # ends the leftover grandchild
    assert await eventually(lambda: not proc.group_exists(record.pid), 5)


async def test_many_rapid_starts_leave_no_zombies(manager: ProcessManager) -> None:
    records = [await manager.start(StartRequest("true")) for _ in range(50)]
    for record in records:
        await manager.wait_ended(record.id)
    assert all(r.status is Status.EXITED for r in records)
    me = os.getpid()
    zombies = [p for p in proc.process_table() if p.ppid == me and p.zombie]
    assert zombies == []
    assert len({r.id for r in records}) == 50


async def test_shutdown_stops_everything(settings) -> None:
    manager = ProcessManager(settings)
    records = [
        await manager.start(StartRequest("sh", ["-c", "sleep 300 & sleep 300"])) for _ in range(3)
    ]
    await manager.shutdown()
    assert all(r.status is Status.STOPPED for r in records)
    assert not any(proc.group_exists(r.pid) for r in records)
    assert not manager.instance_dir.exists()


async def test_stop_after_the_leader_ended_by_itself_keeps_its_status(manager_with) -> None:
    """The leader crashed, a grandchild still holds its output: stop ends the grandchild
    but the record says crashed (stopped only when our stop ended it)."""
    manager = manager_with(exit_drain_grace=30)  # the end waits for the grandchild
    record = await manager.start(StartRequest("sh", ["-c", "sleep 30 & exit 3"]))
    # /proc/<pid> goes when the manager reaps the leader; the group lives on in the sleep.
    assert await eventually(lambda: proc.read_proc(record.pid) is None, 10)
    assert group_pids(record.pid)
    assert record.status is Status.RUNNING  # output not captured yet: the drain grace
    await manager.stop(record.id)
    await manager.wait_ended(record.id)
    assert (record.status, record.exit_code) == (Status.CRASHED, 3)
    assert await eventually(lambda: not group_pids(record.pid), 5)


async def test_stop_ends_a_group_that_keeps_forking(manager_with) -> None:
    """A leader that ignores SIGTERM and forks without pause: the SIGKILL reaches the whole
    group (signalled as a group, not as the leader's pid), within the grace plus a second."""
    manager = manager_with(stop_grace=0.3)
    record = await manager.start(
        StartRequest("sh", ["-c", "trap '' TERM; while :; do sleep 300 & done"])
    )
    assert await eventually(lambda: len(group_pids(record.pid)) >= 20, 10)
    started = time.monotonic()
    await manager.stop(record.id)
    elapsed = time.monotonic() - started
    assert group_pids(record.pid) == []
    # posix: every look at a tree is a psutil pass over hundreds of sleeps (docs/platforms.md)
    assert elapsed < manager.settings.stop_grace + (1 if platform.name() == platform.LINUX else 5)


async def test_output_written_after_the_leader_exits_is_in_the_log_at_the_end(
    manager_with,
) -> None:
    """A grandchild writes after the leader exited: the end is published only once that
    output is captured (its pipe closed), so it is in the log when the process has ended."""
    manager = manager_with(exit_drain_grace=30)  # the grandchild closes the pipe long before
    record = await manager.start(
        StartRequest("sh", ["-c", "(sleep 0.2; echo late >&2) & echo early; exit 1"])
    )
    await manager.wait_ended(record.id)
    assert log_lines(manager, record.id) == ["early", "late"]


async def test_output_written_after_the_drain_grace_is_still_captured(manager_with) -> None:
    """The end is published after ``exit_drain_grace`` even though a grandchild holds the
    pipe, but what it writes later still reaches the log."""
    manager = manager_with(exit_drain_grace=0.2)
    record = await manager.start(StartRequest("sh", ["-c", "(sleep 1; echo later) & echo first"]))
    await manager.wait_ended(record.id)
    assert await eventually(lambda: log_lines(manager, record.id) == ["first", "later"], 10)
