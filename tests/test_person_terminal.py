"""What reaches the person's terminal: agent-controlled text is shown, never obeyed; log
pages are printed whole; ``remove``; every subcommand's help. Real supervisor, real
processes, the CLI as a subprocess, a pseudo-terminal or tmux where the terminal matters."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import wait_until
from test_person_cli import CLI, cli, cli_json, kept, stop_all

from process_mcp.cli.commands import COMMANDS
from process_mcp.cli.terminal import log_line, visible

__all__ = ["kept"]  # the fixture, used by name

TITLE = "\x1b]2;pwned\x1b\\"
WIPE = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;cHduZWQ=\x07"
HOSTILE_ARG = TITLE + WIPE + CLIPBOARD + "\u202e" + "\u009b2J" + "\u009d0;t\u009c"
SLEEPER = ("sh", "-c", "sleep 120", "sh")  # runs on whatever its next argument holds
SGR = re.compile(rb"\x1b\[[0-9;]*m")
RAW_CONTROLS = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\x8b\xae]")


def on_a_terminal(*args: str, cwd: Path | None = None, timeout: float = 30) -> bytes:
    """What ``process-mcp ARGS`` writes to a pseudo-terminal (rich's path), all of it;
    400 columns wide, so that no cell is folded."""
    controller, terminal = pty.openpty()
    done = subprocess.Popen(
        [*CLI, *args],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "400"},
    )
    os.close(terminal)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the other side is closed
                    break
                if not chunk:
                    break
                out += chunk
            elif done.poll() is not None:
                break
    finally:
        os.close(controller)
        done.wait(timeout=10)
    return out


def no_control_but_colours(written: bytes) -> None:
    """Nothing a terminal would obey, but SGR colours (rich's own styling)."""
    left = SGR.sub(b"", written)
    assert not RAW_CONTROLS.search(left.replace(b"\r\n", b"\n")), left


# ------------------------------------------------------------------ the filter itself
def test_visible_shows_controls_and_format_characters_as_escapes() -> None:
    assert visible("plain café ✓ 日本") == "plain café ✓ 日本"
    assert visible(TITLE + WIPE) == "\\x1b]2;pwned\\x1b\\\\x1b[2J"
    shown = visible("a\u202eb\u200bc\u009bd\x07\te\u2028")
    assert shown == "a\\u202eb\\u200bc\\x9bd\\x07\\te\\u2028"
    assert visible("x\U000e0001") == "x\\U000e0001"  # a language tag (Cf)


def test_log_line_strips_escapes_keeps_colours_only_when_asked() -> None:
    line = "\x1b(0lqk\x1b(B \x1b#8\x1bc\x1b7\x1b[31mred\x1b[0m\u009b2J\u009d0;t\u009c" + CLIPBOARD
    assert log_line(line) == "lqk red"
    assert log_line(line, colours=True) == "lqk \x1b[31mred\x1b[0m"
    assert log_line("10%\r50%\r100%") == "100%"
    assert log_line("bell\x07 \u202e so\x0e\ttab") == "bell\\x07 \\u202e so\\x0e\ttab"
    assert log_line("lone \x1b") == "lone \\x1b"


# ------------------------------------------------------------------ ps, history, top
def test_ps_and_history_show_escapes_instead_of_obeying_them(tmp_path: Path, kept: None) -> None:
    started = cli_json("start", "--", *SLEEPER, HOSTILE_ARG, cwd=tmp_path)
    for args in (("ps",), ("ps", "--all")):
        plain = subprocess.run([*CLI, *args], capture_output=True, cwd=tmp_path, check=True)
        assert not RAW_CONTROLS.search(plain.stdout), plain.stdout
        assert b"\\x1b]2;pwned\\x1b\\" in plain.stdout and b"\\u202e" in plain.stdout
        written = on_a_terminal(*args, cwd=tmp_path)
        no_control_but_colours(written)
        assert b"pwned" in written and b"\\u202e" in written
    cli("stop", started["id"])  # type: ignore[index]
    assert wait_until(
        lambda: (
            b"\\x1b]2" in subprocess.run([*CLI, "history"], capture_output=True, check=True).stdout
        ),
        10,
    )
    plain = subprocess.run([*CLI, "history"], capture_output=True, check=True)
    assert not RAW_CONTROLS.search(plain.stdout), plain.stdout
    no_control_but_colours(on_a_terminal("history"))


def tmux_session(width: int, height: int) -> tuple[list[str], str, list[str]]:
    """A private tmux server's command prefix, its session name, and the arguments of
    ``new-session`` for a ``width`` x ``height`` window whose environment carries this
    test's supervisor and tag (and its size: pytest's COLUMNS/LINES would win in curses)."""
    session = f"pm-{uuid.uuid4().hex[:8]}"
    env_args = [
        arg
        for name in ("PROCESS_MCP_RUNTIME_DIR", "PROCESS_MCP_STATE_DIR", "PROCESS_MCP_TEST_TAG")
        if name in os.environ
        for arg in ("-e", f"{name}={os.environ[name]}")
    ]
    env_args += ["-e", f"COLUMNS={width}", "-e", f"LINES={height}"]
    size = ["-x", str(width), "-y", str(height)]
    return ["tmux", "-L", session], session, ["new-session", "-d", "-s", session, *size, *env_args]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_ps_in_a_real_terminal_keeps_its_title_and_screen(tmp_path: Path, kept: None) -> None:
    cli_json("start", "--", *SLEEPER, HOSTILE_ARG, cwd=tmp_path)
    tmux, session, new_session = tmux_session(220, 40)
    script = f"echo BEFORE-PS; {' '.join(CLI)} ps --all; echo AFTER-PS; exec sleep 60"
    subprocess.run([*tmux, *new_session], check=True)
    try:
        subprocess.run([*tmux, "set-option", "-g", "set-clipboard", "on"], check=True)
        subprocess.run([*tmux, "send-keys", "-t", session, script, "Enter"], check=True)

        def screen() -> str:
            return subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout

        assert wait_until(lambda: "AFTER-PS" in screen().replace("echo AFTER-PS", ""), 20)
        shown = screen()
        assert "BEFORE-PS" in shown.replace("echo BEFORE-PS", ""), shown  # not wiped
        assert "\\x1b]2;pwned" in shown
        title = subprocess.run(
            [*tmux, "display-message", "-p", "-t", session, "#{pane_title}"],
            capture_output=True,
            text=True,
        ).stdout
        assert "pwned" not in title, title
        buffers = subprocess.run([*tmux, "list-buffers"], capture_output=True, text=True).stdout
        assert "pwned" not in buffers and "cHduZWQ" not in buffers  # no OSC 52 write
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_top_rows_show_escapes_of_a_hostile_log_line(kept: None) -> None:
    program = (
        "import time\nprint('hostile \\u202e\\u009b2J\\x1b(0\\x07 end', flush=True)\n"
        "time.sleep(120)"
    )
    started = cli_json("start", "--label", "evil", "--", sys.executable, "-c", program)
    assert cli("wait", started["id"], "--pattern", "end", "--timeout", "10").returncode == 0  # type: ignore[index]
    tmux, session, new_session = tmux_session(160, 20)
    subprocess.run([*tmux, *new_session, " ".join([*CLI, "top"])], check=True)

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout

    try:
        assert wait_until(lambda: "hostile \\u202e\\x07 end" in screen(), 15), screen()
        subprocess.run([*tmux, "send-keys", "-t", session, "q"], check=True)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


# ---------------------------------------------------------------------------- logs
ESCAPING_PROGRAM = (
    "import sys\n"
    "sys.stdout.write('\\x1b(0lqk\\x1b(B \\x1b#8 \\x1b[32mgreen\\x1b[0m \\u009b2J"
    "\\u009d2;t\\u009c \\x1b]52;c;cHduZWQ=\\x07 bell\\x07 end\\n')\n"
)


def test_logs_strip_every_escape_keep_colours_on_a_terminal_and_raw_passes_all(
    kept: None,
) -> None:
    started = cli_json("start", "--", sys.executable, "-c", ESCAPING_PROGRAM)
    process_id = started["id"]  # type: ignore[index]
    assert cli("wait", process_id, "--timeout", "10").returncode == 0
    piped = subprocess.run([*CLI, "logs", process_id], capture_output=True, check=True)
    assert piped.stdout == b"lqk  green   bell\\x07 end\n", piped.stdout
    written = on_a_terminal("logs", process_id)
    assert b"\x1b[32mgreen\x1b[0m" in written  # colours kept on a terminal
    no_control_but_colours(written)
    raw = subprocess.run([*CLI, "logs", "--raw", process_id], capture_output=True, check=True)
    assert b"\x1b(0" in raw.stdout and "\u009b2J".encode() in raw.stdout  # as written
    assert "\u009d2;t\u009c".encode() in raw.stdout and b"\x1b]52;c;" in raw.stdout


def test_logs_follow_prints_a_burst_whole_each_line_once(tmp_path: Path, kept: None) -> None:
    """5,000 lines of 120 bytes written at once while ``logs -f`` follows (before: 3,192
    of them printed: each page kept its newest lines and the cursor passed the rest)."""
    gate = tmp_path / "gate"
    program = (
        "import os, sys, time\nprint('ready', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.01)\n"
        "sys.stdout.write(''.join(f'{i:05}: ' + 'x' * 113 + '\\n' for i in range(1, 5001)))\n"
    )
    started = cli_json("start", "--", sys.executable, "-c", program)
    follower = subprocess.Popen(
        [*CLI, "logs", "-f", started["id"]],  # type: ignore[index]
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "ready\n"
        gate.touch()
        rest, _ = follower.communicate(timeout=60)  # it ends with the process
        assert follower.returncode == 0
    finally:
        follower.kill()
    lines = rest.splitlines()
    assert [int(line[:5]) for line in lines] == list(range(1, 5001))


# --------------------------------------------------------------------- label, remove
def test_labels_that_spoof_are_refused_naming_the_character(kept: None) -> None:
    for label, code, position in (("we\u202ebd", "U+202E", 3), ("web\u200b", "U+200B", 4)):
        done = cli("start", "--label", label, "--", "true")
        assert done.returncode == 2, done
        assert code in done.stderr and f"character {position}" in done.stderr, done.stderr
        assert not RAW_CONTROLS.search(done.stderr.encode()), done.stderr
    assert cli_json("ps", "--all") == []


def test_remove_forgets_an_ended_process_and_refuses_a_running_one(kept: None) -> None:
    ended = cli_json("start", "--label", "once", "--", "true")
    assert cli("wait", ended["id"], "--timeout", "10").returncode == 0  # type: ignore[index]
    running = cli_json("start", "--", "sleep", "120")
    refused = cli("remove", running["id"])  # type: ignore[index]
    assert refused.returncode == 1
    assert "still running" in refused.stderr and "stop it first" in refused.stderr
    assert f"process-mcp stop {running['id']}" in refused.stderr  # type: ignore[index]
    done = cli("remove", "once")
    assert done.returncode == 0 and done.stdout.startswith(f"removed {ended['id']} "), done
    ids = [p["id"] for p in cli_json("ps", "--all")]  # type: ignore[union-attr]
    assert ids == [running["id"]]  # type: ignore[index]
    assert cli("remove", ended["id"]).returncode == 1  # type: ignore[index]
    stop_all()
    assert json.loads(cli("remove", "--json", running["id"]).stdout)["status"] == "stopped"  # type: ignore[index]


# ---------------------------------------------------------------------------- help
def test_help_lists_every_subcommand_and_the_servers_flags() -> None:
    shown = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True).stdout
    for name, command in COMMANDS.items():
        assert re.search(rf"^  {name} +{re.escape(command.purpose)}$", shown, re.M), name
    for flag in ("--transport", "--host", "--port", "--token-file", "--standalone"):
        assert flag in shown


def test_each_subcommand_has_help_without_importing_mcp() -> None:
    for name in COMMANDS:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "process_mcp", name, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (name, done.stderr[-500:])
        assert f"process-mcp {name}" in done.stdout, done.stdout
        imported = {
            line.split("|")[-1].strip().split(".")[0]
            for line in done.stderr.splitlines()
            if line.startswith("import time:")
        }
        assert not imported & {"mcp", "pydantic", "asyncio", "anyio"}, (name, imported)
