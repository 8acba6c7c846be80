"""Issue 6 over the real stdio server with the official SDK client: send-input (pipe and
pty), signal, restart, timeouts, labels, shell mode and live facts."""

from __future__ import annotations

import re
import sys

import anyio
import pytest
from support import mcp_client, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("frontend_mode")]

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


async def log_lines(client, process_id: str) -> list[str]:
    return [
        ANSI.sub("", line) for line in (await client.ok("get-log", {"id": process_id}))["lines"]
    ]


async def until_line(client, process_id: str, check, timeout: float = 15) -> list[str]:
    """Poll get-log until some line satisfies ``check`` (a string: equality)."""
    test = check if callable(check) else (lambda line: line == check)
    with anyio.fail_after(timeout):
        while True:
            lines = await log_lines(client, process_id)
            if any(test(line) for line in lines):
                return lines
            await anyio.sleep(0.05)


async def test_python_repl_over_a_pipe() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": sys.executable, "args": ["-q", "-i"], "stdin": "pipe"}
        )
        assert started["stdin"] == "pipe"
        answer = await client.ok("send-input", {"id": started["id"], "text": "print(6 * 7)\n"})
        assert answer["bytesWritten"] == len("print(6 * 7)\n") and answer["stdinOpen"] is True
        await until_line(client, started["id"], "42")
        closed = await client.ok("send-input", {"id": started["id"], "eof": True})
        assert closed["stdinOpen"] is False
        ended = await wait_status(client, started["id"], {"exited", "crashed"})
        assert (ended["status"], ended["exitCode"]) == ("exited", 0)
        late = await client.fail("send-input", {"id": started["id"], "text": "x"})
        assert started["id"] in late and "ended" in late


async def test_pty_prompt_is_visible_and_answered() -> None:
    code = "import sys\nprint('tty', sys.stdin.isatty())\nprint('hello', input('name? '))\n"
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": sys.executable, "args": ["-c", code], "pty": True}
        )
        lines = await until_line(client, started["id"], "name? ")  # no newline yet
        assert lines == ["tty True", "name? "]
        await client.ok("send-input", {"id": started["id"], "text": "Ada\n"})
        lines = await until_line(client, started["id"], "hello Ada")
        assert lines == ["tty True", "name? Ada", "hello Ada"]
        assert (await wait_status(client, started["id"], {"exited"}))["pty"] is True


async def test_python_repl_over_a_pty() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start",
            {"command": sys.executable, "args": ["-q"], "pty": True, "env": {"TERM": "dumb"}},
        )
        await until_line(client, started["id"], lambda line: line.startswith(">>>"))
        await client.ok("send-input", {"id": started["id"], "text": "sum(range(10))\n"})
        await until_line(client, started["id"], "45")
        await client.ok("send-input", {"id": started["id"], "eof": True})
        assert (await wait_status(client, started["id"], {"exited", "crashed"}))["exitCode"] == 0


async def test_eof_ends_cat_and_input_needs_a_pipe() -> None:
    async with mcp_client() as client:
        cat = await client.ok("start", {"command": "cat", "stdin": "pipe"})
        await client.ok("send-input", {"id": cat["id"], "text": "meow\n", "eof": True})
        assert (await wait_status(client, cat["id"], {"exited", "crashed"}))["status"] == "exited"
        assert await log_lines(client, cat["id"]) == ["meow"]
        sleeper = await client.ok("start", {"command": "sleep", "args": ["30"]})
        refused = await client.fail("send-input", {"id": sleeper["id"], "text": "hi\n"})
        assert "stdin: 'pipe'" in refused and sleeper["id"] in refused
        empty = await client.fail("send-input", {"id": sleeper["id"]})
        assert "text" in empty and "eof" in empty
        await client.ok("stop", {"id": sleeper["id"]})


async def test_signal_reaches_a_handler() -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGUSR1, lambda *_: print('got SIGUSR1', flush=True))\n"
        # one write: unbuffered print() writes 'ready' and '\n' apart, and a handler run
        # between the two would land inside the line the test waits for
        "import os; os.write(1, b'ready\\n')\n"
        "while True: time.sleep(1)\n"
    )
    async with mcp_client() as client:
        started = await client.ok("start", {"command": sys.executable, "args": ["-c", code]})
        await until_line(client, started["id"], "ready")
        sent = await client.ok("signal", {"id": started["id"], "signal": "SIGUSR1"})
        assert (sent["sent"], sent["status"]) == ("SIGUSR1", "running")
        await until_line(client, started["id"], "got SIGUSR1")
        await client.ok("signal", {"id": started["id"], "signal": "SIGKILL"})
        ended = await wait_status(client, started["id"], {"stopped", "crashed"})
        assert (ended["status"], ended["signal"]) == ("stopped", "SIGKILL")
        bad = await client.fail("signal", {"id": started["id"], "signal": "SIGSEGV"})
        assert "signal" in bad


async def test_restart_keeps_the_id_and_the_numbering() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": "sh", "args": ["-c", "echo one; exec sleep 30"], "label": "svc"}
        )
        await until_line(client, started["id"], "one")
        restarted = await client.ok("restart", {"id": started["id"]})
        assert restarted["id"] == started["id"] and restarted["pid"] != started["pid"]
        assert (restarted["status"], restarted["restarts"], restarted["label"]) == (
            "running",
            1,
            "svc",
        )
        with anyio.fail_after(15):
            while (log := await client.ok("get-log", {"id": started["id"]}))["lastLine"] != 3:
                await anyio.sleep(0.05)
        assert log["lines"][0] == "one" and log["lines"][2] == "one"
        assert "restarted" in log["lines"][1] and (log["firstLine"], log["lastLine"]) == (1, 3)
        await client.ok("stop", {"id": started["id"]})


async def test_timeout_gives_stopped_and_timed_out() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": "sleep", "args": ["30"], "timeoutSeconds": 0.5}
        )
        assert started["timeoutSeconds"] == 0.5 and "timedOut" not in started
        ended = await wait_status(client, started["id"], {"stopped", "crashed", "exited"})
        assert (ended["status"], ended["timedOut"]) == ("stopped", True)
        assert "greater than 0" in await client.fail(
            "start", {"command": "true", "timeoutSeconds": 0}
        )


async def test_duplicate_running_label_is_refused() -> None:
    async with mcp_client() as client:
        web = await client.ok("start", {"command": "sleep", "args": ["30"], "label": "web"})
        refused = await client.fail("start", {"command": "sleep", "args": ["30"], "label": "web"})
        assert web["id"] in refused and "web" in refused
        listed = (await client.ok("list"))["processes"]
        assert [(p["id"], p["label"]) for p in listed] == [(web["id"], "web")]
        await client.ok("stop", {"id": web["id"]})


async def test_shell_mode_and_its_errors() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "echo a b | wc -w", "shell": True})
        await wait_status(client, started["id"], {"exited"})
        assert [line.strip() for line in await log_lines(client, started["id"])] == ["2"]
        refused = await client.fail("start", {"command": "echo", "args": ["x"], "shell": True})
        assert "'args' must be empty" in refused
        hint = await client.fail("start", {"command": "ls -la | head"})
        assert "shell: true" in hint


async def test_http_server_port_in_live_facts_and_list() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start",
            {"command": sys.executable, "args": ["-m", "http.server", "0", "--bind", "127.0.0.1"]},
        )
        lines = await until_line(client, started["id"], lambda line: "port" in line)
        port = int(next(m.group(1) for line in lines if (m := re.search(r"port (\d+)", line))))
        with anyio.fail_after(15):
            while port not in (
                (status := await client.ok("get-status", {"id": started["id"]})).get(
                    "listeningPorts"
                )
                or []
            ):
                await anyio.sleep(0.1)
        assert status["processCount"] == 1 and status["memoryBytes"] > 0
        assert status.get("cpuPercent", 0) >= 0 and status["logBytes"] > 0  # 0 is left out
        assert status["idleSeconds"] > 0 and status["command"] == sys.executable
        # list's ports come from the background port watch: within about a second
        with anyio.fail_after(10):
            while (await client.ok("list"))["processes"][0].get("listeningPorts") != [port]:
                await anyio.sleep(0.1)
        stopped = await client.ok("stop", {"id": started["id"]})
        assert stopped["status"] == "stopped"
        after = await client.ok("get-status", {"id": started["id"]})
        assert "listeningPorts" not in after and "cpuPercent" not in after  # ended: no facts
        assert "listeningPorts" not in (await client.ok("list"))["processes"][0]
