"""Regenerate the pictures of ``process-mcp ps`` and ``process-mcp top`` in ``docs/``.

    uv run python scripts/docs_pictures.py

It starts a real supervisor of its own (a private state and runtime folder, so the
person's own supervisor is never touched), starts a few demo processes with
``process-mcp start``, runs ``ps`` and ``top`` in a real terminal (a private tmux
server), captures each screen with its colours (``tmux capture-pane -e``), and renders
the capture as SVG with rich (``Console.save_svg``). Then it stops every demo process,
stops the supervisor and removes its folders. Needs tmux.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
from rich.console import Console
from rich.text import Text

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CLI = [sys.executable, "-m", "process_mcp"]
COLUMNS, ROWS = 112, 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"docs_pictures: timed out waiting for {what}")
        time.sleep(0.1)


class Demo:
    """A private supervisor with a few demo processes, and a private tmux server."""

    def __init__(self, base: Path) -> None:
        self.home = base / "home"
        self.project = self.home / "shop"
        self.project.mkdir(parents=True)
        self.env = {
            **os.environ,
            "HOME": str(self.home),  # ps shows folders under ~ as ~/...
            "PROCESS_MCP_STATE_DIR": str(base / "state"),
            "PROCESS_MCP_RUNTIME_DIR": str(base / "run"),
            "PROCESS_MCP_STOP_GRACE": "1",
        }
        self.tmux = ["tmux", "-L", f"pm-docs-{uuid.uuid4().hex[:8]}"]
        (self.project / "worker.sh").write_text(
            'i=0\nwhile true; do i=$((i+1)); echo "job $i done"; sleep 0.5; done\n'
        )
        (self.project / "build.sh").write_text(
            "echo 'watching src/ for changes'\nwhile true; do sleep 1; done\n"
        )
        (self.project / "test.sh").write_text(
            "echo '41 passed, 1 failed (test_checkout)'\nexit 1\n"
        )

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*CLI, *args], cwd=self.project, env=self.env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"docs_pictures: process-mcp {' '.join(args)}: {done.stderr}")
        return done.stdout

    def start_demo_processes(self) -> None:
        port = free_port()
        self.cli("start", "--label", "web", "--", "python3", "-m", "http.server", str(port))
        self.cli("start", "--label", "worker", "--", "sh", "worker.sh")
        self.cli("start", "--label", "tests", "--", "sh", "test.sh")
        until(lambda: self.listed("web").get("listeningPorts") == [port], 15, "the web port")
        until(lambda: self.listed("tests").get("status") == "crashed", 15, "the test run's end")
        time.sleep(2)  # an age of a few seconds, and a CPU sample, as a person would see

    def listed(self, label: str) -> dict:
        for process in json.loads(self.cli("ps", "--json")):
            if process.get("label") == label:
                return process
        return {}

    def screen(self, name: str, command: list[str], ready: Callable[[str], bool]) -> str:
        """Run ``command`` in a fresh tmux window; return the screen with its colours."""
        env_args = [
            arg
            for key in ("HOME", "PROCESS_MCP_STATE_DIR", "PROCESS_MCP_RUNTIME_DIR")
            for arg in ("-e", f"{key}={self.env[key]}")
        ]
        shell_line = " ".join(command)
        subprocess.run(
            [
                *self.tmux,
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                str(COLUMNS),
                "-y",
                str(ROWS),
                "-c",
                str(self.project),
                *env_args,
                shell_line,
            ],
            check=True,
            env={**self.env, "TERM": "xterm-256color"},
        )

        def capture(colours: bool) -> str:
            flags = ["-e"] if colours else []
            return subprocess.run(
                [*self.tmux, "capture-pane", "-p", *flags, "-t", name],
                capture_output=True,
                text=True,
            ).stdout

        until(lambda: ready(capture(False)), 20, f"the {name} screen")
        return capture(True)

    def stop(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)
        try:
            processes = json.loads(self.cli("ps", "--all", "--json"))
        except SystemExit:
            processes = []
        for process in processes:
            if process["status"] == "running":
                self.cli("stop", process["id"])
        lock = Path(self.env["PROCESS_MCP_RUNTIME_DIR"]) / "supervisor.lock"
        try:
            pid = int(lock.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        until(lambda: not Path(f"/proc/{pid}").exists(), 15, "the supervisor's exit")


def save_svg(ansi: str, path: Path, title: str) -> None:
    console = Console(record=True, width=COLUMNS, file=io.StringIO(), force_terminal=True)
    console.print(Text.from_ansi(ansi.rstrip("\n")), soft_wrap=True)
    console.save_svg(str(path), title=title)
    print(f"wrote {path.relative_to(ROOT)}")


def take_pictures(demo: Demo) -> None:
    demo.start_demo_processes()
    typed = ["printf", "'$ process-mcp ps\\n';", *CLI, "ps;", "sleep", "600"]
    shot = demo.screen("ps", typed, lambda s: "COMMAND" in s and "other" in s)
    save_svg(shot, DOCS / "ps.svg", "process-mcp ps")
    shot = demo.screen("top", [*CLI, "top"], lambda s: "job" in s and "failed" in s)
    save_svg(shot, DOCS / "top.svg", "process-mcp top")


async def with_an_agent(demo: Demo) -> None:
    """An agent's session (the real MCP server over stdio) holds one process while the
    pictures are taken, so they show the shared view: its owner reads ``other``."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    server = StdioServerParameters(
        command=CLI[0], args=CLI[1:], env=demo.env, cwd=str(demo.project)
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        started = await session.call_tool(
            "start", {"command": "sh", "args": ["build.sh"], "label": "build"}
        )
        assert not started.is_error, started.content
        await anyio.to_thread.run_sync(take_pictures, demo)


def main() -> int:
    if shutil.which("tmux") is None:
        print("docs_pictures: needs tmux", file=sys.stderr)
        return 2
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pm-docs-") as base:
        demo = Demo(Path(base))
        try:
            anyio.run(with_an_agent, demo)
        finally:
            demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
