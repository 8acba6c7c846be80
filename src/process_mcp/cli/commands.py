"""Every ``process-mcp`` subcommand, in one table: its path and its one-line purpose.

``entry.py`` dispatches on it and prints it for ``process-mcp --help``; the person's
parser (``cli/main.py``) takes each purpose as its subcommand's help. A new subcommand is
one line here (plus its parser and runner). Importing this module imports nothing else:
``--help`` and dispatch stay instant.
"""

from __future__ import annotations

from typing import NamedTuple

PERSON = "cli"
"""Run by ``process_mcp.cli.main`` (no MCP, no event loop)."""
SUPERVISOR = "supervisor"
"""Run by ``process_mcp.supervisor.__main__`` (the supervisor's own entry)."""


class Command(NamedTuple):
    path: str  # PERSON or SUPERVISOR: which entry runs it
    purpose: str  # one line, shown by ``process-mcp --help``


COMMANDS: dict[str, Command] = {
    "ps": Command(PERSON, "list the processes under this folder (--all: every folder)"),
    "logs": Command(PERSON, "print a process's output (-f: follow it until it ends)"),
    "start": Command(PERSON, "start a command that outlives this one (--owned: it does not)"),
    "stop": Command(PERSON, "stop a process and its whole tree"),
    "restart": Command(PERSON, "stop a process and start its command again"),
    "wait": Command(PERSON, "wait for a log line, a port, a URL or the end (0 when met)"),
    "history": Command(PERSON, "past runs, newest first (read from the history database)"),
    "top": Command(PERSON, "live view: select, read the log, stop, restart"),
    "remove": Command(PERSON, "forget an ended process: its record and its log"),
    "policy": Command(PERSON, "policy check -- CMD...: what the policy decides for a command"),
    "approve": Command(PERSON, "approve a start the policy asked you about (once, 10 minutes)"),
    "pending": Command(PERSON, "the requests waiting for your approval"),
    "audit": Command(PERSON, "who started, stopped or was refused what (--since 1h)"),
    "doctor": Command(PERSON, "check the supervisor, its settings against yours, the history"),
    "supervisor": Command(
        SUPERVISOR, "run the per-user supervisor (it starts by itself); restart: hand over"
    ),
}


def person_commands() -> list[str]:
    """The names ``cli/main.py`` runs."""
    return [name for name, command in COMMANDS.items() if command.path == PERSON]


def table(indent: str = "  ") -> str:
    """The commands and their purposes, aligned, one per line."""
    width = max(map(len, COMMANDS)) + 2
    return "\n".join(f"{indent}{name:<{width}}{c.purpose}" for name, c in COMMANDS.items())
