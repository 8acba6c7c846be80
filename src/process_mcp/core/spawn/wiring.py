"""How a child's standard streams are wired: stdin from /dev/null or a pipe, outputs to
pipes, or all three on a pseudo-terminal. Returns raw fds for the run to drain and write."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from subprocess import Popen

from process_mcp.core.errors import StartFailed
from process_mcp.core.options import StartOptions
from process_mcp.core.spawn import launch, terminal


@dataclass
class Wired:
    """A started child and the fds we own: ``outputs`` by stream name, ``input`` (or None).

    ``eof`` is what ``send-input``'s ``eof`` writes instead of closing: under a terminal,
    closing the master would hang the terminal up (SIGHUP), so EOF is the VEOF character.
    """

    popen: Popen[bytes]
    outputs: dict[str, int] = field(default_factory=dict)
    input: int | None = None
    eof: bytes | None = None


def _placed(place: Callable[[list[str]], list[str]] | None, argv: list[str]) -> list[str]:
    if place is None:
        return argv
    try:
        return place(argv)
    except OSError as exc:
        raise StartFailed(
            f"cannot start {argv[0]!r}: {exc}; stop what still runs of this process id "
            "or set PROCESS_MCP_CGROUPS=0 to contain trees by process group"
        ) from None


def _take(pipe: object) -> int:
    """Our own fd for a Popen pipe (Popen's file object is closed, it must not buffer)."""
    fd = os.dup(pipe.fileno())  # type: ignore[attr-defined]
    pipe.close()  # type: ignore[attr-defined]
    return fd


def start_wired(
    command: str,
    args: list[str],
    cwd: str,
    env: dict[str, str],
    options: StartOptions,
    place: Callable[[list[str]], list[str]] | None = None,
) -> Wired:
    """Start the child with its streams wired as ``options`` say (pipes, or a terminal).

    ``place`` (cgroup containment) wraps the final argv so that the child joins its cgroup
    before its first instruction, keeping its pid; the program is then checked here first,
    so a missing one fails as a direct spawn would. Returns the child and our ends of its
    streams. Raises StartFailed/InvalidRequest, leaking no fd."""
    argv = options.argv(command, args)
    if place is not None:
        launch.check_argv(argv)
        terminal.check_program(argv[0], cwd, env, check_format=True)
    if not options.pty:
        argv = _placed(place, argv)
        stdin = subprocess.PIPE if options.stdin == "pipe" else subprocess.DEVNULL
        popen = launch.start_session_leader(argv, cwd, env, stdin=stdin)
        wired = Wired(popen, {"stdout": _take(popen.stdout), "stderr": _take(popen.stderr)})
        if popen.stdin is not None:
            wired.input = _take(popen.stdin)
        return wired
    launch.check_argv(argv)
    terminal.check_program(argv[0], cwd, env)
    term = terminal.Terminal.open()
    try:
        popen = launch.start_session_leader(
            _placed(place, terminal.wrap(argv, term)),
            cwd,
            env,
            stdin=term.slave,
            stdout=term.slave,
            stderr=term.slave,
        )
    except BaseException:
        os.close(term.master)
        raise
    finally:
        term.close_slave()
    return Wired(popen, {"stdout": term.master}, input=os.dup(term.master), eof=term.eof_bytes())
