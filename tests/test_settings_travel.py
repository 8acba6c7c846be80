"""Settings are never silently ignored: per-run settings travel with each start and apply to
that run; a supervisor-wide setting that differs from the running supervisor's is told
(stderr, a ``notifications/message`` warning); ``process-mcp supervisor restart`` hands
over to a fresh supervisor with the caller's settings; ``process-mcp doctor`` says all
this with a verdict per check and an exit status.

Real front-ends, CLI commands and supervisors (each test has its own runtime and state
folders, from the autouse fixtures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mcp_types as types
import pytest
from conftest import lock_holder, wait_until
from support import mcp_client

pytestmark = pytest.mark.anyio
CLI = [sys.executable, "-m", "process_mcp"]
FLOOD = "import sys\nfor n in range(5000): print(f'line {n:06d} ' + 'x' * 40)\nsys.stdout.flush()"


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def warnings_in(messages: list[object]) -> list[str]:
    """The ``warning`` log messages a client received, as JSON text."""
    return [
        json.dumps(m.params.data)
        for m in messages
        if isinstance(m, types.LoggingMessageNotification) and m.params.level == "warning"
    ]


@pytest.mark.server_process  # each front-end's own environment is what travels
async def test_two_front_ends_with_different_settings(tmp_path: Path) -> None:
    async with mcp_client(cwd=str(tmp_path)) as first:  # starts the supervisor: defaults
        plain = await first.ok("start", {"command": sys.executable, "args": ["-c", FLOOD]})
        await first.ok("wait", {"id": plain["id"]})
        async with mcp_client(
            cwd=str(tmp_path),
            PROCESS_MCP_LOG_MAX_BYTES="8192",
            PROCESS_MCP_DISK_CAP="3G",
        ) as second:
            capped = await second.ok("start", {"command": sys.executable, "args": ["-c", FLOOD]})
            await second.ok("wait", {"id": capped["id"]})
            mine = await second.ok("get-log", {"id": capped["id"], "lastLines": 1000})
            theirs = await second.ok("get-log", {"id": plain["id"], "lastLines": 1000})
            # the second front-end's log cap applies to its run, and only to its run: its
            # oldest lines are gone (how many of the newest it keeps depends on how the
            # child's writes were chunked into reads: one read may hold 64 KiB)
            oldest = {"grep": "^line 000000 "}
            gone = await second.ok("get-log", {"id": capped["id"], **oldest})
            kept = await second.ok("get-log", {"id": plain["id"], **oldest})
            assert mine["lines"][-1].startswith("line 004999") and gone["lines"] == []
            assert len(theirs["lines"]) == 1000 and len(kept["lines"]) == 1
            # its disk cap cannot: it is told so, once, naming the variable and the fix
            await second.ok("list")
            warned = warnings_in(second.messages)
            assert len(warned) == 1, second.messages
            assert "PROCESS_MCP_DISK_CAP" in warned[0] and "3221225472" in warned[0]
            assert "1073741824" in warned[0] and "process-mcp supervisor restart" in warned[0]
        assert warnings_in(first.messages) == []


def test_the_cli_carries_its_run_settings_and_warns_once_on_stderr(tmp_path: Path) -> None:
    script = tmp_path / "flood.py"
    script.write_text(FLOOD)
    holder = cli("start", "--json", "--", "sleep", "300")  # keeps this supervisor alive
    started = cli("start", "--json", "--", sys.executable, str(script))
    assert started.returncode == 0, started.stderr
    env = {"PROCESS_MCP_LOG_MAX_BYTES": "8192", "PROCESS_MCP_SUPERVISOR_IDLE": "77"}
    capped = cli("start", "--json", "--", sys.executable, str(script), env=env)
    assert capped.returncode == 0 and capped.stderr.count("\n") == 1, capped.stderr
    assert "PROCESS_MCP_SUPERVISOR_IDLE='77' here but '0.5'" in capped.stderr
    ident = json.loads(capped.stdout)["id"]
    assert cli("wait", ident, "--timeout", "30").returncode == 0
    shown = cli("logs", ident, "-n", "1000").stdout.splitlines()
    assert shown[-1].startswith("line 004999")
    plain = json.loads(started.stdout)["id"]
    full = cli("logs", plain, "-n", "1000").stdout.splitlines()
    assert len(full) == 1000

    def first_line_kept(process_id: str) -> bool:  # capped: the oldest lines are gone
        found = cli("logs", process_id, "--grep", "^line 000000 ").stdout
        return "line 000000 " in found

    assert not first_line_kept(ident) and first_line_kept(plain)
    assert cli("stop", json.loads(holder.stdout)["id"]).returncode == 0


def test_doctor_says_what_is_wrong_and_exits_1_only_then(tmp_path: Path) -> None:
    state = Path(os.environ["PROCESS_MCP_STATE_DIR"])
    alone = cli("doctor", "--json")  # no supervisor: fine, none is started
    report = json.loads(alone.stdout)
    assert alone.returncode == 0 and report["ok"] and report["supervisor"] is None
    assert lock_holder(Path(os.environ["PROCESS_MCP_RUNTIME_DIR"])) is None
    assert cli("start", "--", "sleep", "300").returncode == 0  # a supervisor now runs
    os.chmod(state, 0o700)
    good = cli("doctor")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "[     ok] supervisor: pid" in good.stdout and "1 running" in good.stdout
    bad = cli("doctor", "--json", env={"PROCESS_MCP_DISK_CAP": "5G"})
    report = json.loads(bad.stdout)
    assert bad.returncode == 1 and not report["ok"]
    assert report["version"] and report["platform"] and report["containment"] in ("cgroup", "group")
    assert report["supervisor"]["pid"] and report["supervisor"]["uptime"] >= 0
    assert report["supervisor"]["history"]["bytes"] > 0 and report["stateDir"] == str(state)
    assert report["differences"] == [
        {"variable": "PROCESS_MCP_DISK_CAP", "here": "5368709120", "supervisor": "1073741824"}
    ]
    (problem,) = [c for c in report["checks"] if c["verdict"] == "problem"]
    assert problem["fix"] == "process-mcp supervisor restart"
    os.chmod(state, 0o755)
    loose = cli("doctor")
    assert loose.returncode == 1 and f"fix: chmod 700 {state}" in loose.stdout
    os.chmod(state, 0o700)
    for process in json.loads(cli("ps", "--all", "--json").stdout):
        cli("stop", process["id"])


def test_supervisor_restart_waits_then_hands_over_with_the_callers_settings(
    tmp_path: Path,
) -> None:
    runtime = Path(os.environ["PROCESS_MCP_RUNTIME_DIR"])
    started = cli("start", "--json", "--", "sleep", "300")
    ident = json.loads(started.stdout)["id"]
    old = lock_holder(runtime)
    assert old is not None
    waiting = subprocess.Popen(
        [*CLI, "supervisor", "restart"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PROCESS_MCP_DISK_CAP": "2G"},
    )
    try:
        assert wait_until(lambda: lock_holder(runtime) == old, 5)
        assert waiting.poll() is None, "it waits while a process runs"
        assert cli("stop", ident).returncode == 0
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0, err
    new = lock_holder(runtime)
    assert new is not None and new != old and f"handed over to pid {new}" in out
    same = cli("doctor", "--json", env={"PROCESS_MCP_DISK_CAP": "2G"})
    assert json.loads(same.stdout)["differences"] == []  # the caller's settings now rule


def test_supervisor_restart_now_stops_what_runs_first(tmp_path: Path) -> None:
    runtime = Path(os.environ["PROCESS_MCP_RUNTIME_DIR"])
    started = cli("start", "--json", "--", "sleep", "300")
    ident = json.loads(started.stdout)["id"]
    pid = json.loads(started.stdout)["pid"]
    old = lock_holder(runtime)
    done = cli("supervisor", "restart", "--now")
    assert done.returncode == 0, done.stderr
    assert "after stopping 1 process(es)" in done.stdout
    assert not Path(f"/proc/{pid}").exists()
    assert lock_holder(runtime) not in (None, old)
    assert cli("logs", ident).returncode == 0  # its record and log are in the history
