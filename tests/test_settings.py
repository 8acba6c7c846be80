"""Settings read from the environment: sizes with units, two groups, and one clear line
(exit status 2) for a bad value at every entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from process_mcp.core.settings import (
    GIB,
    KIB,
    MIB,
    RunSettings,
    Settings,
    SettingsError,
    check_environment,
    parse_size,
    take_token,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1073741824", GIB),
        ("512K", 512 * KIB),
        ("512k", 512 * KIB),
        ("100MB", 100 * MIB),
        ("1.5G", GIB + GIB // 2),
        ("2GiB", 2 * GIB),
        (" 3 M ", 3 * MIB),
        ("0", 0),
    ],
)
def test_sizes_accept_plain_bytes_and_binary_suffixes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["-1", "1X", "G", "1.2.3", "lots", "1e9", "1iB"])
def test_sizes_refuse_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_disk_cap_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROCESS_MCP_DISK_CAP", raising=False)
    assert Settings.from_env().disk_cap == GIB
    monkeypatch.setenv("PROCESS_MCP_DISK_CAP", "256M")
    assert Settings.from_env().disk_cap == 256 * MIB
    monkeypatch.setenv("PROCESS_MCP_DISK_CAP", "a lot")
    with pytest.raises(ValueError, match=r"PROCESS_MCP_DISK_CAP='a lot' is not a size.*512M"):
        Settings.from_env()


BAD_VALUES = [
    ("PROCESS_MCP_STOP_GRACE", "soon", "is not a number from 0 up"),
    ("PROCESS_MCP_STOP_GRACE", "-1", "from 0 up"),
    ("PROCESS_MCP_LOG_MAX_BYTES", "12", "from 4096 up"),
    ("PROCESS_MCP_MAX_LINE_BYTES", "inf", "from 256 up"),
    ("PROCESS_MCP_DISK_CAP", "lots", "K, M, G or T"),
    ("PROCESS_MCP_CGROUPS", "maybe", "0, false, no, off"),
    ("PROCESS_MCP_STANDALONE", "2", "1, true, yes, on"),
    ("PROCESS_MCP_SUPERVISOR_IDLE", "abc", "positive number of seconds"),
    ("PROCESS_MCP_SUPERVISOR_IDLE", "0", "positive number of seconds"),
    ("PROCESS_MCP_HTTP_SESSION_IDLE", "nan", "positive number of seconds"),
    ("PROCESS_MCP_LOG_LEVEL", "chatty", "DEBUG, INFO"),
]


@pytest.mark.parametrize(("variable", "value", "accepted"), BAD_VALUES)
def test_a_bad_value_names_the_variable_the_value_and_what_is_accepted(
    variable: str, value: str, accepted: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        check_environment({variable: value})
    message = str(raised.value)
    assert message.startswith(f"{variable}={value!r} ") and accepted in message, message
    assert "\n" not in message


def test_the_two_groups_and_their_defaults() -> None:
    wide, run = check_environment({"PROCESS_MCP_STATE_DIR": "/s", "XDG_RUNTIME_DIR": ""})
    assert run == RunSettings(stop_grace=5.0, log_max_bytes=64 * MIB, max_line_bytes=64 * KIB)
    assert wide.state_dir == Path("/s") and wide.runtime_dir == Path("/s/run")
    assert (wide.disk_cap, wide.cgroups, wide.standalone) == (GIB, True, False)
    assert (wide.supervisor_idle, wide.http_session_idle, wide.log_level) == (600, 1800, None)
    env = {
        "PROCESS_MCP_STOP_GRACE": "0.5",
        "PROCESS_MCP_CGROUPS": "off",
        "PROCESS_MCP_STANDALONE": "YES",
        "PROCESS_MCP_LOG_LEVEL": "debug",
        "PROCESS_MCP_RUNTIME_DIR": "/r",
        "PROCESS_MCP_SUPERVISOR_IDLE": "",  # empty counts as unset
    }
    wide, run = check_environment(env)
    assert run.stop_grace == 0.5 and wide.runtime_dir == Path("/r")
    assert (wide.cgroups, wide.standalone, wide.log_level) == (False, True, "DEBUG")
    assert wide.supervisor_idle == 600
    assert Settings.of(wide, run).run == run  # the manager's settings carry the run group


def test_the_token_is_taken_out_of_the_environment() -> None:
    env = {"PROCESS_MCP_TOKEN": "s3cret", "PATH": "/bin"}
    assert take_token(env) == "s3cret" and env == {"PATH": "/bin"}
    assert take_token(env) is None


@pytest.mark.parametrize(
    "argv",
    [["supervisor"], ["ps"], ["history"]],
    ids=["supervisor", "cli-ps", "cli-history"],
)
def test_every_entry_point_refuses_a_bad_variable_in_one_line_with_status_2(
    argv: list[str], tmp_path: Path
) -> None:
    """Before, a bad PROCESS_MCP_SUPERVISOR_IDLE was a traceback from the supervisor.
    (The MCP server's refusals are tested with its other start-up faults.)"""
    env = {
        **os.environ,
        "PROCESS_MCP_STATE_DIR": str(tmp_path / "state"),
        "PROCESS_MCP_RUNTIME_DIR": str(tmp_path / "run"),
        "PROCESS_MCP_SUPERVISOR_IDLE": "soon",
    }
    done = subprocess.run(
        [sys.executable, "-m", "process_mcp", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("process-mcp") and "PROCESS_MCP_SUPERVISOR_IDLE='soon'" in lines[0]
    assert not (tmp_path / "run").exists()  # refused before anything started
