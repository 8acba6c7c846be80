"""The core's interactive side with real processes: stdin pipes, pseudo-terminals, shell
mode, signals, restart, timeouts, labels and live facts."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import anyio
import pytest
from conftest import eventually

from process_mcp.core import InvalidRequest, ProcessManager, StartFailed, Status
from process_mcp.core.logs.query import LogQuery, run_query
from process_mcp.core.options import StartOptions, StartRequest
from process_mcp.core.trees import proc

pytestmark = pytest.mark.anyio

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def texts(manager: ProcessManager, process_id: str) -> list[str]:
    """Stored lines and any pending partial line, decoded, ANSI sequences removed."""
    every = LogQuery(since=0, raw=True, limit=1 << 20, max_bytes=1 << 24)
    answer = run_query(manager.log(process_id).snapshot(), every)
    return [ANSI.sub("", line) for line in answer.lines]


async def has_line(manager: ProcessManager, process_id: str, wanted: str, timeout=15) -> bool:
    return await eventually(lambda: wanted in texts(manager, process_id), timeout)


# ------------------------------------------------------------------- stdin pipe
async def test_python_repl_driven_over_a_pipe(manager: ProcessManager) -> None:
    record = await manager.start(
        StartRequest(sys.executable, ["-q", "-i", "-u"], options=StartOptions(stdin="pipe"))
    )
    await manager.send_input(record.id, "print(6 * 7)\n")
    assert await has_line(manager, record.id, "42")
    await manager.send_input(record.id, "x = 'abc'\nprint(x.upper())\n")
    assert await has_line(manager, record.id, "ABC")
    receipt = await manager.send_input(record.id, eof=True)
    assert receipt.stdin_open is False
    await manager.wait_ended(record.id)
    assert (record.status, record.exit_code) == (Status.EXITED, 0)


async def test_eof_ends_cat(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("cat", options=StartOptions(stdin="pipe")))
    await manager.send_input(record.id, "no newline yet")
    assert await eventually(lambda: manager.log(record.id).pending(), 10)
    assert record.running  # cat waits for more input until EOF
    await manager.send_input(record.id, "\n", eof=True)
    await manager.wait_ended(record.id)
    assert (record.status, record.exit_code) == (Status.EXITED, 0)
    assert texts(manager, record.id) == ["no newline yet"]


async def test_send_input_errors_name_the_fix(manager: ProcessManager) -> None:
    closed = await manager.start(StartRequest("sleep", ["30"]))
    with pytest.raises(InvalidRequest, match="stdin: 'pipe'"):
        await manager.send_input(closed.id, "hi\n")
    cat = await manager.start(StartRequest("cat", options=StartOptions(stdin="pipe")))
    await manager.send_input(cat.id, eof=True)
    with pytest.raises(InvalidRequest, match="eof"):
        await manager.send_input(cat.id, "more")
    await manager.wait_ended(cat.id)
    with pytest.raises(InvalidRequest, match=f"{cat.id!r} has ended"):
        await manager.send_input(cat.id, "more")


async def test_input_to_a_process_that_does_not_read_never_blocks(
    manager: ProcessManager,
) -> None:
    record = await manager.start(StartRequest("sleep", ["30"], options=StartOptions(stdin="pipe")))
    receipt = await manager.send_input(record.id, "x" * 300_000)  # > any pipe buffer
    assert receipt.bytes_pending > 0 and receipt.bytes_written < 300_000
    with pytest.raises(InvalidRequest, match="still waiting to be read"):
        await manager.send_input(record.id, "y" * 900_000)


# ---------------------------------------------------------------------- pty
async def test_prompt_without_newline_is_visible_under_a_pty(manager: ProcessManager) -> None:
    code = (
        "import os, sys\n"
        "print('tty', sys.stdin.isatty(), sys.stdout.isatty())\n"
        "print('ctty', os.tcgetpgrp(0) == os.getpgrp())\n"
        "open('/dev/tty').close()\n"
        "name = input('name? ')\n"
        "print('hello', name)\n"
    )
    record = await manager.start(
        StartRequest(sys.executable, ["-c", code], options=StartOptions(pty=True))
    )
    log = manager.log(record.id)
    assert await eventually(lambda: [p.data for p in log.pending()] == [b"name? "], 15), texts(
        manager, record.id
    )
    assert texts(manager, record.id)[:2] == ["tty True True", "ctty True"]
    await manager.send_input(record.id, "bob\n")
    await manager.wait_ended(record.id)
    assert (record.status, record.exit_code) == (Status.EXITED, 0)
    assert texts(manager, record.id)[2:] == ["name? bob", "hello bob"]  # echo, as typed


async def test_python_repl_driven_over_a_pty(manager: ProcessManager) -> None:
    record = await manager.start(
        StartRequest(sys.executable, ["-q"], env={"TERM": "dumb"}, options=StartOptions(pty=True))
    )
    assert await eventually(lambda: any(">>> " in line for line in texts(manager, record.id)), 15)
    await manager.send_input(record.id, "print(6 * 7)\n")
    assert await has_line(manager, record.id, "42")
    await manager.send_input(record.id, "", eof=True)  # Ctrl-D at the prompt
    await manager.wait_ended(record.id)
    assert (record.status, record.exit_code) == (Status.EXITED, 0)


async def test_eof_under_a_pty_after_a_partial_line_ends_cat(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("cat", options=StartOptions(pty=True)))
    await manager.send_input(record.id, "abc")  # echoed, but cat has read nothing yet
    await manager.send_input(record.id, eof=True)  # Ctrl-D delivers "abc", a second one EOF
    with anyio.fail_after(15):
        await manager.wait_ended(record.id)
    assert (record.status, record.exit_code) == (Status.EXITED, 0)
    assert texts(manager, record.id) == ["abcabc"]  # the echo, then cat's copy


def terminal_state(pid: int, log: list[str]) -> str:
    """What a failed Ctrl-C leaves to look at: the terminal the process holds, its
    terminal's foreground group, its group and its signal masks, and its log."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        masks = [
            line
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith(("SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd"))
        ]
    except OSError as exc:
        return f"pid {pid} unreadable: {exc}; log {log!r}"
    pgrp, tty, tpgid = fields[2], fields[4], fields[5]
    return f"pid {pid} pgrp {pgrp} tty_nr {tty} tpgid {tpgid} {masks} log {log!r}"


async def test_ctrl_c_typed_under_a_pty_interrupts(manager: ProcessManager) -> None:
    code = "import time\nprint('ready')\ntime.sleep(60)\n"
    record = await manager.start(
        StartRequest(sys.executable, ["-c", code], options=StartOptions(pty=True))
    )
    assert await has_line(manager, record.id, "ready")
    await manager.send_input(record.id, "\x03")
    with anyio.move_on_after(15):  # without a controlling terminal it would sleep on
        await manager.wait_ended(record.id)
    assert record.status is not Status.RUNNING, terminal_state(
        record.pid, texts(manager, record.id)
    )
    assert record.signal == "SIGINT" or record.exit_code == 130
    assert record.status is Status.STOPPED  # typed by our client: not a crash


async def test_pty_start_of_a_missing_program_is_an_error(manager: ProcessManager) -> None:
    with pytest.raises(StartFailed, match="No such file"):
        await manager.start(StartRequest("no-such-program-xyz", options=StartOptions(pty=True)))
    with pytest.raises(StartFailed, match="shell: true"):
        await manager.start(StartRequest("npm run dev", options=StartOptions(pty=True)))
    assert manager.records() == []


# -------------------------------------------------------------------- shell
async def test_shell_mode_runs_a_pipeline(manager: ProcessManager) -> None:
    record = await manager.start(
        StartRequest("echo abc | tr a-z A-Z && echo second", options=StartOptions(shell=True))
    )
    await manager.wait_ended(record.id)
    assert record.status is Status.EXITED
    assert texts(manager, record.id) == ["ABC", "second"]
    assert (record.command, record.args) == ("echo abc | tr a-z A-Z && echo second", [])


async def test_shell_mode_refuses_args(manager: ProcessManager) -> None:
    with pytest.raises(InvalidRequest, match="'args' must be empty"):
        await manager.start(StartRequest("echo", ["hi"], options=StartOptions(shell=True)))


# ------------------------------------------------------------------ signals
async def test_signal_reaches_a_handler_and_the_process_runs_on(manager: ProcessManager) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGUSR1, lambda *_: print('got SIGUSR1', flush=True))\n"
        # one write: unbuffered print() writes 'ready' and '\n' apart, and a handler run
        # between the two would land inside the line the test waits for
        "import os; os.write(1, b'ready\\n')\n"
        "while True: time.sleep(1)\n"
    )
    record = await manager.start(StartRequest(sys.executable, ["-c", code]))
    assert await has_line(manager, record.id, "ready")
    await manager.send_signal(record.id, "SIGUSR1")
    assert await has_line(manager, record.id, "got SIGUSR1")
    assert record.running


async def test_our_sigterm_ends_it_as_stopped_not_crashed(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sleep", ["30"]))
    await manager.send_signal(record.id, "SIGTERM")
    await manager.wait_ended(record.id)
    assert (record.status, record.signal) == (Status.STOPPED, "SIGTERM")


async def test_signal_to_an_ended_process_is_refused(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("true"))
    await manager.wait_ended(record.id)
    with pytest.raises(InvalidRequest, match=f"{record.id!r} has already ended"):
        await manager.send_signal(record.id, "SIGTERM")


async def test_stop_and_cont_keep_it_running(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sleep", ["30"]))

    def state() -> str:
        info = proc.read_proc(record.pid)  # type: ignore[arg-type]
        return info.state if info else "gone"

    await manager.send_signal(record.id, "SIGSTOP")
    assert await eventually(lambda: state() == "T", 5)
    await manager.send_signal(record.id, "SIGCONT")
    assert await eventually(lambda: state() == "S", 5)
    assert record.running


# ------------------------------------------------------------------ restart
async def test_restart_keeps_id_and_numbering(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "echo one; echo two; exec sleep 30"]))
    log = manager.log(record.id)
    assert await eventually(lambda: log.last_line == 2, 10)
    first_pid = record.pid
    again = await manager.restart(record.id)
    assert again is record and again.id == record.id
    assert (record.status, record.restarts) == (Status.RUNNING, 1)
    assert record.pid != first_pid and record.ended_at is None
    assert await eventually(lambda: log.last_line == 5, 10)
    lines = await manager.read_log(record.id, LogQuery(since=0, raw=True))
    assert lines.numbers == [1, 2, 3, 4, 5] and lines.pending_lines == 0
    # A marker belongs to every stream selection; line 3 is the only non-stdout line.
    stdout = await manager.read_log(record.id, LogQuery(since=0, stream="stdout"))
    stderr = await manager.read_log(record.id, LogQuery(since=0, stream="stderr"))
    assert (stdout.numbers, stderr.numbers) == ([1, 2, 3, 4, 5], [3])
    assert "restarted" in lines.lines[2] and str(record.pid) in lines.lines[2]
    assert lines.lines[3:] == ["one", "two"]


async def test_concurrent_restarts_start_one_process(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sleep", ["30"]))
    results: list[object] = []

    async def restart() -> None:
        try:
            results.append(await manager.restart(record.id))
        except InvalidRequest as exc:
            results.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(restart)
        group.start_soon(restart)
    assert sorted(type(r).__name__ for r in results) == ["InvalidRequest", "ProcessRecord"]
    assert "already being restarted" in str(next(r for r in results if r is not record))
    assert (record.restarts, record.status) == (1, Status.RUNNING)


async def test_restart_of_an_ended_process_keeps_its_options(manager: ProcessManager) -> None:
    record = await manager.start(
        StartRequest("cat", options=StartOptions(stdin="pipe", label="echoer"))
    )
    await manager.send_input(record.id, "first\n", eof=True)
    await manager.wait_ended(record.id)
    await manager.restart(record.id)
    await manager.send_input(record.id, "second\n", eof=True)
    await manager.wait_ended(record.id)
    assert record.status is Status.EXITED and record.options.label == "echoer"
    assert texts(manager, record.id)[0] == "first" and texts(manager, record.id)[-1] == "second"


# ------------------------------------------------------------ timeout, label
async def test_timeout_stops_it_and_says_so(manager: ProcessManager) -> None:
    record = await manager.start(
        StartRequest("sleep", ["30"], options=StartOptions(timeout_seconds=0.3))
    )
    await manager.wait_ended(record.id)
    assert (record.status, record.timed_out, record.signal) == (Status.STOPPED, True, "SIGTERM")
    assert record.public()["timedOut"] is True


async def test_timeout_does_not_touch_a_process_that_ends_first(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("true", options=StartOptions(timeout_seconds=30)))
    await manager.wait_ended(record.id)
    assert (record.status, record.timed_out) == (Status.EXITED, False)


async def test_invalid_timeout_is_refused(manager: ProcessManager) -> None:
    with pytest.raises(InvalidRequest, match="timeoutSeconds"):
        await manager.start(StartRequest("true", options=StartOptions(timeout_seconds=0)))


async def test_duplicate_running_label_is_refused_naming_the_other(
    manager: ProcessManager,
) -> None:
    web = await manager.start(StartRequest("sleep", ["30"], options=StartOptions(label="web")))
    with pytest.raises(InvalidRequest, match=f"running process {web.id!r}"):
        await manager.start(StartRequest("sleep", ["30"], options=StartOptions(label="web")))
    assert len(manager.records()) == 1
    await manager.stop(web.id)
    again = await manager.start(StartRequest("sleep", ["30"], options=StartOptions(label="web")))
    assert again.public()["label"] == "web"


# -------------------------------------------------------------- live facts
async def test_http_server_port_is_listed(manager: ProcessManager) -> None:
    record = await manager.start(
        StartRequest(sys.executable, ["-m", "http.server", "0", "--bind", "127.0.0.1"])
    )
    port_line = re.compile(r"port (\d+)")
    assert await eventually(
        lambda: any(port_line.search(line) for line in texts(manager, record.id)), 15
    )
    port = next(
        int(m.group(1)) for line in texts(manager, record.id) if (m := port_line.search(line))
    )
    assert await eventually(lambda: port in manager.listening_ports(record.id), 10)
    # logBytes counts stored lines: the port line may still be arriving
    assert await eventually(lambda: (manager.live_facts(record.id) or {}).get("logBytes"), 10)
    facts = manager.live_facts(record.id)
    assert facts is not None
    assert port in facts["listeningPorts"]
    assert facts["processCount"] == 1 and facts["memoryBytes"] > 1_000_000
    assert facts["cpuPercent"] >= 0 and facts["logBytes"] > 0 and facts["idleSeconds"] >= 0
    await manager.stop(record.id)


async def test_an_ended_process_has_no_live_facts(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sleep", ["30"]))
    assert manager.live_facts(record.id) is not None
    await manager.stop(record.id)
    assert manager.live_facts(record.id) is None and manager.listening_ports(record.id) == []


async def test_port_of_a_grandchild_counts_and_tables_are_read_once(
    manager: ProcessManager,
) -> None:
    server = f"{sys.executable} -m http.server 0 --bind 127.0.0.1; true"  # sh stays the parent
    record = await manager.start(StartRequest(server, options=StartOptions(shell=True)))
    others = [await manager.start(StartRequest("sleep", ["30"])) for _ in range(3)]
    assert await eventually(lambda: manager.listening_ports(record.id), 15)
    facts = manager.facts
    tables, sockets = facts.table_reads, facts.socket_reads
    for _ in range(5):  # like five 'list' calls within the cache's lifetime
        assert [manager.listening_ports(p.id) for p in others] == [[], [], []]
        assert len(manager.listening_ports(record.id)) == 1
    assert facts.socket_reads - sockets <= 1 and facts.table_reads - tables <= 1
    assert manager.live_facts(record.id)["processCount"] == 2  # type: ignore[index]


async def test_facts_cover_the_whole_tree(manager: ProcessManager) -> None:
    record = await manager.start(
        StartRequest("sh", ["-c", "sleep 30 & sleep 30 & echo started; wait"])
    )
    assert await has_line(manager, record.id, "started")
    assert await eventually(
        lambda: manager.live_facts(record.id)["processCount"] == 3,
        10,  # type: ignore[index]
    )


async def test_idle_seconds_counts_from_the_last_output(manager: ProcessManager) -> None:
    record = await manager.start(StartRequest("sh", ["-c", "echo hi; exec sleep 30"]))
    assert await has_line(manager, record.id, "hi")
    assert await eventually(
        lambda: manager.live_facts(record.id)["idleSeconds"] >= 0.3,
        10,  # type: ignore[index]
    )


async def test_terminals_and_pipes_leave_no_fd_behind(manager: ProcessManager) -> None:
    def fd_targets() -> dict[str, str]:
        found = {}
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        return found

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    # The records file and the sentinel are opened once, lazily, by the first registration.
    warm = await manager.start(StartRequest("sleep", ["30"], options=StartOptions(pty=True)))
    manager.ownership.flush()
    await manager.stop(warm.id)
    before, known = open_fds(), fd_targets()
    for options in [StartOptions(pty=True), StartOptions(stdin="pipe")] * 5:
        record = await manager.start(StartRequest("cat", options=options))
        await manager.send_input(record.id, "x\n", eof=True)
        with anyio.fail_after(15):
            await manager.wait_ended(record.id)
    assert await eventually(lambda: open_fds() <= before, 5), {
        fd: target for fd, target in fd_targets().items() if known.get(fd) != target
    }
