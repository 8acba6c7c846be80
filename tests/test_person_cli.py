"""The person's commands as a person runs them: ``process-mcp <command>`` as a
subprocess against a real supervisor (this test's own runtime folder), real processes,
``top`` in a real terminal (tmux)."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import lock_holder, wait_until

from process_mcp.supervisor.client import ensure_supervisor
from process_mcp.supervisor.paths import SupervisorPaths

CLI = [sys.executable, "-m", "process_mcp"]


def cli(*args: str, cwd: Path | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
    )


def cli_json(*args: str, cwd: Path | None = None) -> object:
    done = cli(args[0], "--json", *args[1:], cwd=cwd)  # before a '--' and its command
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def stop_all() -> None:
    """Stop every kept process, so the test's supervisor can go idle and exit."""
    for process in cli_json("ps", "--all"):  # type: ignore[union-attr]
        if process["status"] == "running":
            cli("stop", process["id"])


@pytest.fixture
def kept(isolated_supervisor: Path, monkeypatch: pytest.MonkeyPatch):
    """The test's supervisor lives through the whole test, as a person's does: each
    command is a new process, and on a loaded machine the gap between two could pass the
    suite's 0.5 s idle exit, and a fresh supervisor holds what ended only in its history.
    At the end: every kept process stopped, then the supervisor asked to exit (SIGTERM)."""
    monkeypatch.setenv("PROCESS_MCP_SUPERVISOR_IDLE", "60")
    yield
    stop_all()
    holder = lock_holder(isolated_supervisor)
    if holder is not None and holder > 0:
        os.kill(holder, signal.SIGTERM)


def test_start_ps_logs_stop(tmp_path: Path, kept: None) -> None:
    program = "import time\nprint('hello from web', flush=True)\ntime.sleep(300)"
    started = cli("start", "--label", "web", "--", sys.executable, "-c", program, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("started ")
    table = cli("ps", cwd=tmp_path)
    assert table.returncode == 0
    header, row = table.stdout.splitlines()[:2]
    assert header.split()[:4] == ["ID", "LABEL", "STATUS", "PID"]
    assert row.split()[1:3] == ["web", "running"] and "kept" in row.split()
    elsewhere = tmp_path.parent / f"elsewhere-{uuid.uuid4().hex[:6]}"
    elsewhere.mkdir()
    assert cli_json("ps", cwd=elsewhere) == []  # scoped to the folder it is run in
    assert wait_until(lambda: "hello from web" in cli("logs", "web").stdout, 10)
    stopped = cli("stop", "web")
    assert stopped.returncode == 0 and " stopped " in stopped.stdout, stopped
    (listed,) = cli_json("ps", "--all")  # type: ignore[misc]
    assert listed["status"] == "stopped" and listed["label"] == "web"


def test_logs_follow_prints_new_lines_and_ends_with_the_process(tmp_path: Path, kept: None) -> None:
    gate = tmp_path / "gate"
    program = (
        "import os, time\nprint('first', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\nprint('second')"
    )
    started = cli_json("start", "--label", "job", "--", sys.executable, "-c", program)
    follower = subprocess.Popen(
        [*CLI, "logs", "-f", started["id"]],
        stdout=subprocess.PIPE,
        text=True,  # type: ignore[index]
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "first\n"
        gate.touch()
        assert follower.stdout.readline() == "second\n"
        assert follower.wait(timeout=15) == 0  # it ended with the process
    finally:
        follower.kill()


def test_another_sessions_process_is_seen_and_stopped_from_the_cli(tmp_path: Path) -> None:
    """An agent's session (a supervisor client, as an MCP front-end is) starts a process it
    owns; the person sees it as "other" and stops it; the agent hears it was stopped."""
    import anyio

    async def scenario() -> None:
        client = await ensure_supervisor("test", paths=SupervisorPaths.from_env())
        try:
            started = await client.request(
                "start",
                {"command": "sleep", "args": ["300"], "folder": str(tmp_path)},
            )
            process_id = started["record"]["id"]
            listed = await anyio.to_thread.run_sync(lambda: cli_json("ps", cwd=tmp_path))
            assert [(p["id"], p["owner"]) for p in listed] == [(process_id, "other")]
            done = await anyio.to_thread.run_sync(lambda: cli("stop", process_id))
            assert done.returncode == 0, done.stderr
            with anyio.fail_after(10):
                async for event in client.events():
                    if event.event == "exited" and event.data["record"]["id"] == process_id:
                        assert event.data["record"]["status"] == "stopped"
                        break
        finally:
            await client.close()

    anyio.run(scenario)


def test_wait_exit_statuses(kept: None) -> None:
    started = cli_json(
        "start", "--", sys.executable, "-c", "print('ready');import time;time.sleep(300)"
    )
    process_id = started["id"]  # type: ignore[index]
    assert cli("wait", process_id, "--pattern", "^ready$", "--timeout", "10").returncode == 0
    late = cli("wait", process_id, "--pattern", "never", "--timeout", "0.3")
    assert late.returncode == 1 and "not met" in late.stdout
    assert cli("wait", "no-such-label").returncode == 1
    assert cli("wait", process_id, "--port", "not-a-port").returncode == 2
    assert cli("start").returncode == 2  # nothing to start


def test_history_outlives_a_killed_supervisor(
    tmp_path: Path, isolated_supervisor: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCESS_MCP_SUPERVISOR_IDLE", "60")  # the one killed below is the one
    word = uuid.uuid4().hex[:8]
    started = cli_json("start", "--label", f"build-{word}", "--", "sh", "-c", "exit 3")
    assert cli("wait", started["id"], "--timeout", "10").returncode == 0  # type: ignore[index]
    holder = lock_holder(isolated_supervisor)
    assert holder and holder > 0
    os.kill(holder, 9)
    assert wait_until(lambda: lock_holder(isolated_supervisor) is None, 10)
    runs = cli_json("history", f"build-{word}")
    assert [(r["label"], r["status"], r["exitCode"]) for r in runs] == [  # type: ignore[union-attr]
        (f"build-{word}", "crashed", 3)
    ]
    shown = cli("history")
    assert f"build-{word}" in shown.stdout and "exit 3" in shown.stdout


@pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"
)
def test_top_shows_a_process_and_stops_it_in_a_real_terminal(tmp_path: Path) -> None:
    started = cli_json("start", "--label", "topped", "--", "sleep", "300")
    process_id = started["id"]  # type: ignore[index]
    session = f"pm-{uuid.uuid4().hex[:8]}"
    env_args = [
        arg
        for name in ("PROCESS_MCP_RUNTIME_DIR", "PROCESS_MCP_STATE_DIR", "PROCESS_MCP_TEST_TAG")
        if name in os.environ
        for arg in ("-e", f"{name}={os.environ[name]}")
    ]
    tmux = ["tmux", "-L", session]
    subprocess.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "160",
            "-y",
            "30",
            *env_args,
            " ".join([*CLI, "top"]),
        ],
        check=True,
    )

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout

    try:
        assert wait_until(lambda: "topped" in screen() and "running" in screen(), 15), screen()
        subprocess.run([*tmux, "send-keys", "-t", session, "s"], check=True)
        assert wait_until(lambda: "stopped" in screen(), 15), screen()
        subprocess.run([*tmux, "send-keys", "-t", session, "l"], check=True)
        assert wait_until(lambda: f"log of {process_id}" in screen(), 10), screen()
        subprocess.run([*tmux, "send-keys", "-t", session, "x"], check=True)  # back
        subprocess.run([*tmux, "send-keys", "-t", session, "q"], check=True)
        assert wait_until(
            lambda: (
                subprocess.run(
                    [*tmux, "has-session", "-t", session], capture_output=True
                ).returncode
                != 0
            ),
            10,
        )
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        stop_all()


def test_serving_in_a_terminal_says_what_it_is() -> None:
    controller, terminal = pty.openpty()
    server = subprocess.Popen(
        [*CLI], stdin=terminal, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    os.close(terminal)
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        assert "serving MCP" in line and "process-mcp ps" in line, line
    finally:
        os.close(controller)  # stdin ends: the server exits
        server.wait(timeout=15)


def test_ids_never_start_with_a_dash() -> None:
    """A person types ids as arguments; ``stop -JMuRm`` would read as an option."""
    from process_mcp.core.ids import new_id

    assert not any(new_id(()).startswith("-") for _ in range(5000))


def test_ps_imports_neither_mcp_nor_asyncio(kept: None) -> None:
    """``ps`` is typed by a person waiting for it: with a supervisor running, its path
    loads no MCP, no pydantic and no event loop (those imports alone outweigh the rest)."""
    cli("start", "--", "sleep", "300")  # the supervisor runs (starting it needs asyncio)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "process_mcp", "ps"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "process_mcp" in imported
    assert not imported & {"mcp", "pydantic", "asyncio", "anyio", "psutil"}, sorted(imported)
