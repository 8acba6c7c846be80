"""The ``process-mcp`` command: picks the path before importing anything heavy.

``supervisor`` and the person's commands (``ps``, ``logs``, ...) import neither MCP nor
the front-end's start-up code: ``ps`` is typed by a person waiting for it, and the
supervisor's start-up is paid on an agent's first call. Everything else is the MCP server
(``server/main.py``). The subcommands are one table (``cli/commands.py``); ``process-mcp
--help`` prints it with the server's own options.
"""

from __future__ import annotations

import contextlib
import io
import sys

from process_mcp.cli.commands import COMMANDS, PERSON, SUPERVISOR, table

HELP_FLAGS = ("-h", "--help")


def _refuse(message: str) -> None:
    """One line on stderr and exit 2: no traceback, nothing started."""
    print(f"process-mcp: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    # Before anything POSIX-only is imported (fcntl, termios, AF_UNIX sockets).
    if sys.platform == "win32":
        _refuse(
            "Windows is not supported yet; run process-mcp inside WSL "
            "(Windows Subsystem for Linux), where it works as on Linux"
        )
    args = sys.argv[1:]
    if args[:1] == ["help"]:  # `process-mcp help [COMMAND]`
        args = [*args[1:2], "--help"]
    if args[:2] == ["supervisor", "restart"]:
        from process_mcp.cli.handover import main as handover

        sys.exit(handover(args[2:]))
    if args[:1] == ["doctor"]:  # its own parser: it reads the caller's settings first
        from process_mcp.cli.doctor import main as doctor

        sys.exit(doctor(args[1:]))
    command = COMMANDS.get(args[0]) if args else None
    if command is not None and command.path == SUPERVISOR:
        from process_mcp.supervisor.__main__ import main as supervisor_main

        sys.exit(supervisor_main(args[1:]))
    if command is not None and command.path == PERSON:
        from process_mcp.cli.main import main as person_main

        sys.exit(person_main(args))
    if args and args[0] in HELP_FLAGS:
        print(overview())
        sys.exit(0)
    from process_mcp.server.main import main as serve

    serve(args)


def overview() -> str:
    """``process-mcp --help``: both ways to run it, every subcommand with its purpose, then
    the MCP server's options (its own parser's help, so every flag it has is shown)."""
    server_help = _server_help()
    usage, _, rest = server_help.partition("\n\n")
    options = rest.partition("\n\n")[2] or rest  # the server's description is said below
    lines = [
        usage.rstrip(),
        "       process-mcp COMMAND [ARGS...]   (process-mcp COMMAND --help: its flags)",
        "",
        "Without a command: the MCP server that runs and supervises background processes,",
        "as an MCP client launches it (stdio by default). With a command: see and steer the",
        "same processes from a terminal.",
        "",
        "commands:",
        table(),
        "",
        "MCP server " + options.strip(),
    ]
    return "\n".join(lines)


def _server_help() -> str:
    """The server parser's ``--help`` text (it prints it and exits: caught here)."""
    from process_mcp.server.main import main as serve

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        serve(["--help"])
    return out.getvalue()


if __name__ == "__main__":
    main()
