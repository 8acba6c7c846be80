"""The posix backend uses nothing Linux-only: the supervisor (and through it the sentinel)
runs under an audit hook (``audited.py``) while the person's commands drive a whole life:
a tree with a ``setsid`` escapee and a port, ``wait --port``, ``wait --url``, ``ps``,
``logs``, ``stop``, then a supervisor SIGKILL that the sentinel answers. In posix mode not
one ``/proc`` or ``/sys/fs/cgroup`` access, ``prctl`` or ``inotify`` lookup is made outside
psutil, with ``pidfd_open``, ``pidfd_send_signal`` and ``CLOCK_BOOTTIME`` deleted; the same
run in linux mode shows the hook does catch them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import lock_holder, tagged_processes, wait_until

AUDITED = Path(__file__).with_name("audited.py")
CLI = [sys.executable, "-m", "process_mcp"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_audited_life(platform: str, tmp_path: Path, runtime: Path) -> str:
    """One supervisor life under the hook; returns what the hook recorded."""
    violations = tmp_path / "violations"
    env = {
        **os.environ,
        "PROCESS_MCP_PLATFORM": platform,
        "PROCESS_MCP_STOP_GRACE": "1",
        "AUDIT_VIOLATIONS": str(violations),
        "AUDIT_STRICT": "1" if platform == "posix" else "0",
    }
    argv = [sys.executable, str(AUDITED), "supervisor", "--runtime-dir", str(runtime)]
    with open(tmp_path / "supervisor.log", "wb") as log:
        supervisor = subprocess.Popen([*argv, "--idle-timeout", "60"], env=env, stderr=log)
    try:
        assert wait_until(lambda: (runtime / "supervisor.sock").exists(), 20)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True)
            assert done.returncode == 0, (args, done.stdout, done.stderr)
            return done

        port = free_port()
        server = f"setsid sleep 300 & exec {sys.executable} -m http.server {port} --bind 127.0.0.1"
        started = json.loads(cli("start", "--json", "--shell", "--", server).stdout)
        cli("wait", started["id"], "--port", str(port), "--timeout", "20")
        cli("wait", started["id"], "--url", f"http://127.0.0.1:{port}/", "--timeout", "20")
        assert wait_until(
            lambda: json.loads(cli("ps", "--json").stdout)[0].get("listeningPorts") == [port], 10
        ), cli("ps", "--json").stdout
        cli("logs", started["id"])
        assert " stopped " in cli("stop", started["id"]).stdout
        cli("start", "--shell", "--", "setsid sleep 300 & sleep 300")
        supervisor.kill()  # the sentinel (audited too) ends that tree
        supervisor.wait(10)
        tag = os.environ["PROCESS_MCP_TEST_TAG"]
        assert wait_until(lambda: not tagged_processes(tag), 10), tagged_processes(tag)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(10)
    assert wait_until(lambda: lock_holder(runtime) is None, 10)
    return violations.read_text() if violations.exists() else ""


def test_posix_mode_touches_nothing_linux_only(tmp_path: Path, isolated_supervisor: Path) -> None:
    assert run_audited_life("posix", tmp_path, isolated_supervisor) == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the linux backend")
def test_the_audit_catches_the_linux_backend(tmp_path: Path, isolated_supervisor: Path) -> None:
    found = run_audited_life("linux", tmp_path, isolated_supervisor)
    assert " open /proc/" in found
    assert "dlsym prctl" in found
    sentinel_lines = [line for line in found.splitlines() if "sentinel_program.py" in line]
    assert any(" os.listdir /proc " in line for line in sentinel_lines), found  # audited too
