"""The HTTP bearer token and the ownership token: never on a command line (which
every local user can read), never inherited by a child, never printed unless generated."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until
from support import HttpServer, HttpSession, RawServer, server_env

from process_mcp.core.trees import proc
from process_mcp.supervisor.paths import SupervisorPaths

NOBODY = 65534
HTTP_ARGV = [sys.executable, "-m", "process_mcp", "--transport", "http", "--port", "0"]


def as_other_user(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """``argv`` run as user ``nobody``: what another local account gets to see."""
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
        capture_output=True,
        timeout=10,
    )


def managers_of(server_pid: int) -> list[int]:
    """The processes running the process manager for this server: the server itself, and
    its supervisor when it is a front-end of one (the default)."""
    supervisor = SupervisorPaths.from_env().holder_pid()
    alive = supervisor is not None and Path(f"/proc/{supervisor}").exists()
    return [server_pid, supervisor] if alive and supervisor is not None else [server_pid]


def sentinel_of(server_pid: int) -> int:
    """The sentinel of the server's manager (the server's child, or its supervisor's)."""

    def find() -> int | None:
        managers = managers_of(server_pid)
        for info in proc.process_table():
            ours = info.ppid in managers and not info.zombie
            if ours and b"sentinel_program.py" in Path(f"/proc/{info.pid}/cmdline").read_bytes():
                return info.pid
        return None

    assert wait_until(lambda: find() is not None, 10)
    found = find()
    assert found is not None
    return found


def ownership_token(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    marks = [e for e in environ if e.startswith(b"PROCESS_MCP_OWNER_")]
    assert marks, "a managed process carries its owner's mark"
    return marks[0].split(b"=")[0].removeprefix(b"PROCESS_MCP_OWNER_").decode()


def test_token_flag_is_refused_with_a_hint() -> None:
    try:
        result = subprocess.run(
            [*HTTP_ARGV, "--token", "s3cret-on-the-command-line"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=server_env(),
            timeout=30,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"--token was accepted: {exc.stderr!r}") from None
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--token-file" in result.stderr and "PROCESS_MCP_TOKEN" in result.stderr
    assert "s3cret-on-the-command-line" not in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_another_user_sees_no_token_on_any_command_line(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-0123456789\n")
    token_file.chmod(0o600)
    server = HttpServer("file-token-0123456789", "--token-file", str(token_file))
    session = HttpSession(server.url, server.token)
    try:
        assert b"file-token" not in server.announced  # printed only when generated
        child = session.call("start", {"command": "sleep", "args": ["300"]})
        sentinel = sentinel_of(server.proc.pid)
        secrets = [b"file-token-0123456789", ownership_token(child["pid"]).encode()]
        for pid in (*managers_of(server.proc.pid), sentinel, child["pid"]):
            seen = as_other_user("cat", f"/proc/{pid}/cmdline")
            assert seen.returncode == 0, seen.stderr  # command lines are public...
            for secret in secrets:
                assert secret not in seen.stdout, (pid, seen.stdout)
            environ = as_other_user("cat", f"/proc/{pid}/environ")
            assert environ.returncode != 0  # ...environments are not
    finally:
        session.close()
        server.close()


def test_children_never_inherit_the_token() -> None:
    server = HttpServer("env-token-9876543210")
    session = HttpSession(server.url, server.token)
    try:
        assert b"env-token" not in server.announced
        assert b"from PROCESS_MCP_TOKEN" in server.announced
        script = 'echo "token=${PROCESS_MCP_TOKEN:-unset}"; sleep 300'
        child = session.call("start", {"command": "sh", "args": ["-c", script]})
        lines: list[str] = []

        def logged() -> bool:
            lines[:] = session.call("get-log", {"id": child["id"]})["lines"]
            return bool(lines)

        assert wait_until(logged, 10)
        assert lines == ["token=unset"]
        assert b"env-token" not in Path(f"/proc/{child['pid']}/environ").read_bytes()
        sentinel = sentinel_of(server.proc.pid)
        for pid in (*managers_of(server.proc.pid)[1:], sentinel):  # supervisor, sentinel
            assert b"env-token" not in Path(f"/proc/{pid}/environ").read_bytes()
    finally:
        session.close()
        server.close()


def test_sentinel_command_line_has_no_ownership_token() -> None:
    server = RawServer()
    try:
        server.initialize()
        child = server.call_tool("start", {"command": "sleep", "args": ["300"]})
        token = ownership_token(child["structuredContent"]["pid"])
        cmdline = Path(f"/proc/{sentinel_of(server.proc.pid)}/cmdline").read_bytes()
        assert token.encode() not in cmdline, cmdline
        server.close_stdin()
        assert server.wait() == 0
    finally:
        server.kill()


def test_token_file_must_be_private_and_works(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("shared-token-abcdef")
    token_file.chmod(0o644)
    refused = subprocess.run(
        [*HTTP_ARGV, "--token-file", str(token_file)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=30,
    )
    assert refused.returncode != 0
    assert "chmod 600" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    token_file.chmod(0o600)
    server = HttpServer("shared-token-abcdef", "--token-file", str(token_file))
    try:
        assert HttpSession(server.url, server.token).request("ping")["result"] == {}
        wrong = HttpSession(server.url, "not-the-token", initialize=False)
        assert wrong.post({"jsonrpc": "2.0", "id": 1, "method": "ping"}).status_code == 401
    finally:
        server.close()


def test_a_generated_token_is_printed_once() -> None:
    proc_ = subprocess.Popen(
        HTTP_ARGV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={k: v for k, v in server_env().items() if k != "PROCESS_MCP_TOKEN"},
    )
    try:
        assert proc_.stderr is not None
        line = proc_.stderr.readline().decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/mcp \(bearer token: (\S+)\)", line)
        assert match, line
        session = HttpSession(f"http://127.0.0.1:{match[1]}/mcp", match[2])
        assert session.call("list", {})["processes"] == []
        session.close()
    finally:
        proc_.terminate()
        _, rest = proc_.communicate(timeout=20)
    assert match[2].encode() not in rest
