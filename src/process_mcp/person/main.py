"""``process-mcp <command>``: the person's commands (see the README's "For the person").

Exit statuses a script can use: 0 done (for ``wait``: the condition was met), 1 not met or
failed (a wait that timed out or whose process ended first, a stop that left survivors, a
process that cannot be found), 2 usage (bad arguments, ambiguous label), 3 the supervisor
could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

from process_mcp.person.link import Link, LinkError, RequestFailed
from process_mcp.person.render import PS_COLUMNS, command_line, outcome, ps_row, show_table

COMMANDS = ("ps", "logs", "start", "stop", "restart", "wait", "history", "top")
OK, NOT_MET, USAGE, UNREACHABLE = 0, 1, 2, 3


class Refusal(Exception):
    """A command that cannot go on: its message and exit status."""

    def __init__(self, message: str, status: int = NOT_MET) -> None:
        super().__init__(message)
        self.status = status


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="process-mcp",
        description="See and steer the processes your agents run (the same supervisor).",
    )
    commands = top.add_subparsers(dest="command", required=True)
    ps = commands.add_parser("ps", help="list processes under this folder (--all: every one)")
    ps.add_argument("--all", action="store_true", help="every process, whatever its folder")
    ps.add_argument("--json", action="store_true", help="JSON for scripts")
    logs = commands.add_parser("logs", help="print a process's output (-f: follow)")
    logs.add_argument("ref", metavar="ID|LABEL")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until it ends")
    logs.add_argument("-n", "--lines", type=int, default=50, help="newest lines (default 50)")
    logs.add_argument("--grep", help="only lines matching this RE2 regular expression")
    logs.add_argument("--stream", choices=["stdout", "stderr"], help="one stream only")
    start = commands.add_parser("start", help="start a command (kept: outlives this command)")
    start.add_argument("--label")
    start.add_argument("--cwd", help="working folder (default: this one)")
    start.add_argument("--shell", action="store_true", help="run CMD as a shell line")
    start.add_argument(
        "--owned", action="store_true", help="stop it when this command exits (default: kept)"
    )
    start.add_argument("--json", action="store_true")
    start.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    stop = commands.add_parser("stop", help="stop a process and its whole tree")
    stop.add_argument("ref", metavar="ID|LABEL")
    stop.add_argument("--force", action="store_true", help="SIGKILL at once")
    stop.add_argument("--json", action="store_true")
    restart = commands.add_parser("restart", help="stop and start again with the same command")
    restart.add_argument("ref", metavar="ID|LABEL")
    restart.add_argument("--json", action="store_true")
    wait = commands.add_parser("wait", help="wait for a line, a port, a URL or the end")
    wait.add_argument("ref", metavar="ID|LABEL")
    condition = wait.add_mutually_exclusive_group()
    condition.add_argument("--pattern", help="RE2 regular expression for a log line")
    condition.add_argument("--port", type=int, help="a TCP port its tree listens on")
    condition.add_argument("--url", help="an http(s) URL that answers")
    wait.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    wait.add_argument("--json", action="store_true")
    history = commands.add_parser("history", help="past runs, newest first")
    history.add_argument("match", nargs="?", help="a label or part of a command")
    history.add_argument("-n", "--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")
    commands.add_parser("top", help="live view: arrows select, l logs, s stop, r restart, q quit")
    return top


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `ps | head` ends quietly, as Unix tools do
    options = parser().parse_args(argv)
    try:
        if options.command == "history":
            from process_mcp.person.past import history

            return history(options)
        if options.command == "top":
            from process_mcp.person.top import run_top

            return run_top()
        with Link.open() as link:
            return RUNNERS[options.command](link, options)
    except LinkError as exc:
        print(f"process-mcp: {exc}", file=sys.stderr)
        return UNREACHABLE
    except Refusal as exc:
        print(f"process-mcp: {exc}", file=sys.stderr)
        return exc.status
    except RequestFailed as exc:
        print(f"process-mcp: {exc}", file=sys.stderr)
        return USAGE if exc.code in ("bad_request", "invalid") else NOT_MET
    except KeyboardInterrupt:
        return 130


def resolve(link: Link, ref: str) -> dict[str, Any]:
    """The process ``ref`` names: an id, else a label (the running one first, then the
    newest). Raises Refusal naming what exists."""
    processes = link.request("list", {"all": True})["processes"]
    for process in processes:
        if process["id"] == ref:
            return process
    labelled = [p for p in processes if p.get("label") == ref]
    if not labelled:
        raise Refusal(f"no process with id or label {ref!r}; `process-mcp ps --all` lists them")
    running = [p for p in labelled if p["status"] == "running"]
    return (running or labelled)[-1]


def emit(options: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data) if getattr(options, "json", False) else text)


def ps(link: Link, options: argparse.Namespace) -> int:
    answer = link.request("list", {"folder": os.getcwd(), "all": options.all, "facts": True})
    processes = answer["processes"]
    if options.json:
        print(json.dumps(processes))
        return OK
    if not processes:
        where = "" if options.all else f" under {os.getcwd()} (--all shows every folder)"
        print(f"no processes{where}")
        return OK
    home = os.path.expanduser("~")
    show_table(PS_COLUMNS, [ps_row(p, home) for p in processes], status_column=2)
    return OK


def logs(link: Link, options: argparse.Namespace) -> int:
    from process_mcp.person.follow import follow, print_log

    process = resolve(link, options.ref)
    query: dict[str, Any] = {"last_lines": max(options.lines, 0)}
    if options.grep:
        query["grep"] = options.grep
    if options.stream:
        query["stream"] = options.stream
    if not options.follow:
        print_log(link.request("read_log", {"id": process["id"], "query": query})["answer"])
        return OK
    return follow(link, process["id"], query)


def start(link: Link, options: argparse.Namespace) -> int:
    argv = options.argv[1:] if options.argv[:1] == ["--"] else options.argv
    if not argv:
        raise Refusal("nothing to start: process-mcp start [--label L] -- CMD [ARGS...]", USAGE)
    command, args = (" ".join(argv), []) if options.shell else (argv[0], argv[1:])
    started = link.request(
        "start",
        {
            "command": command,
            "args": args,
            "cwd": options.cwd,
            "folder": os.getcwd(),
            "base_env": dict(os.environ),
            "keep": not options.owned,
            "options": {"label": options.label, "shell": options.shell},
        },
    )["record"]
    emit(
        options, started, f"started {started['id']} (pid {started['pid']}): {command_line(started)}"
    )
    if options.owned:
        from process_mcp.person.follow import follow

        return follow(link, started["id"], {"last_lines": 0})  # stopped when this one ends
    return OK


def stop(link: Link, options: argparse.Namespace) -> int:
    process = resolve(link, options.ref)
    stopped = link.request("stop", {"id": process["id"], "force": options.force})
    record, survivors = stopped["record"], stopped.get("survivors") or []
    text = f"{record['id']} {record['status']} ({outcome(record) or 'ended'})"
    if survivors:
        text += f"; still running: pids {survivors}"
    emit(options, {**record, "survivors": survivors}, text)
    return NOT_MET if survivors else OK


def restart(link: Link, options: argparse.Namespace) -> int:
    process = resolve(link, options.ref)
    record = link.request("restart", {"id": process["id"]})["record"]
    emit(options, record, f"restarted {record['id']} (pid {record['pid']})")
    return OK


def wait(link: Link, options: argparse.Namespace) -> int:
    process = resolve(link, options.ref)
    args: dict[str, Any] = {"id": process["id"], "timeout": options.timeout}
    for key in ("pattern", "port", "url"):
        if getattr(options, key) is not None:
            args[key] = getattr(options, key)
    outcome_ = link.request("wait", args)
    record = outcome_["record"]
    if options.json:
        print(json.dumps(outcome_))
    else:
        said = outcome_.get("matched_line") or outcome_["reason"]
        print(f"{record['id']} {'met' if outcome_['met'] else 'not met'}: {said}")
        for line in outcome_.get("tail") or []:
            print(f"  {line}")
    return OK if outcome_["met"] else NOT_MET


RUNNERS = {"ps": ps, "logs": logs, "start": start, "stop": stop, "restart": restart}
RUNNERS["wait"] = wait
