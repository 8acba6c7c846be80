"""The ``process-mcp`` command: picks the path before importing anything heavy.

``supervisor`` and the person's commands (``ps``, ``logs``, ...) import neither MCP nor
the front-end's start-up code: ``ps`` is typed by a person waiting for it, and the
supervisor's start-up is paid on an agent's first call. Everything else is the MCP server
(``cli.py``)."""

from __future__ import annotations

import sys

PERSON_COMMANDS = ("ps", "logs", "start", "stop", "restart", "wait", "history", "top")


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["supervisor"]:
        from process_mcp.supervisor.__main__ import main as supervisor_main

        sys.exit(supervisor_main(args[1:]))
    if args[:1] and args[0] in PERSON_COMMANDS:
        from process_mcp.person.main import main as person_main

        sys.exit(person_main(args))
    from process_mcp.cli import main as serve

    serve()


if __name__ == "__main__":
    main()
