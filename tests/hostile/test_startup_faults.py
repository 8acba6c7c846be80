"""Start-up faults: an unusable state dir, an address in use or out of range, a
bad flag or ``PROCESS_MCP_*`` variable → one clear line on stderr, a non-zero exit status,
no traceback, and nothing left running."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import server_env

SERVER = [sys.executable, "-m", "process_mcp"]
HTTP = [*SERVER, "--transport", "http"]


def run_server(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """The server with stdin at EOF: a healthy stdio server exits 0 at once, a healthy
    HTTP server keeps serving (and fails the test by its timeout)."""
    try:
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=server_env(**env),
            timeout=30,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the server started instead of refusing: {exc.stderr!r}") from None


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("process-mcp: "), lines[0]
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only filesystem (root ignores permission bits, so a mode is not enough)."""
    path = tmp_path / "ro"
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_state_dir_is_a_file(tmp_path: Path) -> None:
    state = tmp_path / "state-file"
    state.write_text("not a folder")
    line = assert_one_line_refusal(
        run_server(SERVER, PROCESS_MCP_STATE_DIR=str(state)), str(state), "PROCESS_MCP_STATE_DIR"
    )
    assert "Not a directory" in line


def test_state_dir_is_read_only(read_only_dir: Path) -> None:
    assert_one_line_refusal(
        run_server(SERVER, PROCESS_MCP_STATE_DIR=str(read_only_dir / "state")),
        "Read-only file system",
    )


def test_port_in_use(busy_port: int) -> None:
    assert_one_line_refusal(
        run_server([*HTTP, "--port", str(busy_port)]), f"127.0.0.1:{busy_port}", "--port"
    )


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_port_out_of_range(port: str) -> None:
    assert_one_line_refusal(run_server([*HTTP, "--port", port]), "--port")


def test_bad_log_level() -> None:
    assert_one_line_refusal(run_server([*SERVER, "--log-level", "LOUD"]), "LOUD", "WARNING")
    assert_one_line_refusal(run_server(SERVER, PROCESS_MCP_LOG_LEVEL="chatty"), "chatty")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PROCESS_MCP_STOP_GRACE", "soon"),
        ("PROCESS_MCP_LOG_MAX_BYTES", "12"),
        ("PROCESS_MCP_HTTP_SESSION_IDLE", "-5"),
        ("PROCESS_MCP_SUPERVISOR_IDLE", "soon"),
        ("PROCESS_MCP_CGROUPS", "maybe"),
        ("PROCESS_MCP_DISK_CAP", "lots"),
    ],
)
def test_bad_variable(variable: str, value: str) -> None:
    result = run_server(SERVER, **{variable: value})
    assert_one_line_refusal(result, f"{variable}={value!r}")
    assert result.returncode == 2


def test_unknown_flag() -> None:
    assert_one_line_refusal(run_server([*SERVER, "--colour"]), "--colour", "--help")


def test_missing_token_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    assert_one_line_refusal(run_server([*HTTP, "--token-file", str(missing)]), str(missing))
