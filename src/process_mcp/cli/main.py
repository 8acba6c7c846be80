"""``process-mcp <command>``: the person's commands (see ``docs/cli.md``).

Exit statuses a script can use: 0 done (for ``wait``: the condition was met), 1 not met or
failed (a wait that timed out or whose process ended first, a stop that left survivors, a
process that cannot be found or is still running), 2 usage (bad arguments, a value the
supervisor refuses), 3 the supervisor could not be reached.

Everything printed from a record, an answer or an error passes the terminal filter
(``cli/terminal.py``): agents wrote it, and the person's terminal must not obey it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

from process_mcp.cli.commands import COMMANDS
from process_mcp.cli.link import Link, LinkError, RequestFailed
from process_mcp.cli.render import PS_COLUMNS, command_line, outcome, ps_row, show_table
from process_mcp.cli.terminal import log_line, visible
from process_mcp.core.options import StartOptions, StartRequest
from process_mcp.core.settings import RunSettings, check_environment, exit_on_error
from process_mcp.supervisor.protocol import ops
from process_mcp.supervisor.protocol.documents import LogQueryArgs

OK, NOT_MET, USAGE, UNREACHABLE = 0, 1, 2, 3
USAGE_CODES = ("bad_request", "invalid", "InvalidRequest")


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

    def command(name: str) -> argparse.ArgumentParser:
        purpose = COMMANDS[name].purpose
        return commands.add_parser(name, help=purpose, description=purpose)

    ps = command("ps")
    ps.add_argument("--all", action="store_true", help="every process, whatever its folder")
    ps.add_argument("--json", action="store_true", help="JSON for scripts")
    logs = command("logs")
    logs.add_argument("ref", metavar="ID|LABEL")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until it ends")
    logs.add_argument("-n", "--lines", type=int, default=50, help="newest lines (default 50)")
    logs.add_argument("--grep", help="only lines matching this RE2 regular expression")
    logs.add_argument("--stream", choices=["stdout", "stderr"], help="one stream only")
    logs.add_argument("--redact", action="store_true", help="mask secrets as agents see them")
    logs.add_argument(
        "--raw",
        action="store_true",
        help="the bytes as written: escape sequences and controls reach your terminal",
    )
    start = command("start")
    start.add_argument("--label")
    start.add_argument("--cwd", help="working folder (default: this one)")
    start.add_argument("--shell", action="store_true", help="run CMD as a shell line")
    start.add_argument(
        "--owned", action="store_true", help="stop it when this command exits (default: kept)"
    )
    start.add_argument("--json", action="store_true")
    start.add_argument(
        "--force", action="store_true", help="run it even if the policy denies it (yours only)"
    )
    start.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    stop = command("stop")
    stop.add_argument("ref", metavar="ID|LABEL")
    stop.add_argument("--force", action="store_true", help="SIGKILL at once")
    stop.add_argument("--json", action="store_true")
    restart = command("restart")
    restart.add_argument("ref", metavar="ID|LABEL")
    restart.add_argument("--json", action="store_true")
    wait = command("wait")
    wait.add_argument("ref", metavar="ID|LABEL")
    condition = wait.add_mutually_exclusive_group()
    condition.add_argument("--pattern", help="RE2 regular expression for a log line")
    condition.add_argument("--port", type=int, help="a TCP port its tree listens on")
    condition.add_argument("--url", help="an http(s) URL that answers")
    wait.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    wait.add_argument("--json", action="store_true")
    history = command("history")
    history.add_argument("match", nargs="?", help="a label or part of a command")
    history.add_argument("-n", "--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")
    command("top").epilog = "keys: arrows select, l log, s stop, r restart, q quit"
    remove = command("remove")
    remove.add_argument("ref", metavar="ID|LABEL")
    remove.add_argument("--json", action="store_true")
    from process_mcp.cli.rails import add_parsers

    add_parsers(commands)
    return top


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `ps | head` ends quietly, as Unix tools do
    options = parser().parse_args(argv)
    with exit_on_error():  # a bad PROCESS_MCP_* variable: one line, status 2 (USAGE)
        check_environment()
    try:
        if options.command == "history":
            from process_mcp.cli.past import history

            return history(options)
        if options.command == "policy":
            from process_mcp.cli.rails import policy_check

            return policy_check(options)
        if options.command == "audit":
            from process_mcp.cli.rails import audit

            return audit(options)
        if options.command == "top":
            from process_mcp.cli.top import run_top

            return run_top()
        with Link.open() as link:
            tell_drift(link)
            return RUNNERS[options.command](link, options)
    except LinkError as exc:
        say(str(exc))
        return UNREACHABLE
    except Refusal as exc:
        say(str(exc))
        return exc.status
    except RequestFailed as exc:
        say(str(exc))
        return USAGE if exc.code in USAGE_CODES else NOT_MET
    except KeyboardInterrupt:
        return 130


def tell_drift(link: Link) -> None:
    """One stderr line when a supervisor-wide setting here differs from the supervisor's."""
    from process_mcp.supervisor.drift import drift_warning

    try:
        reply = link.call(ops.SettingsQuery())
    except RequestFailed:  # a supervisor too old to say
        return
    text = drift_warning(reply.settings, reply.pid)
    if text:
        print(text, file=sys.stderr)


def resolve(link: Link, ref: str) -> dict[str, Any]:
    """The process ``ref`` names: an id, else a label (the running one first, then the
    newest). An id ``list`` leaves out (an older ended process) is asked by ``status``.
    Raises Refusal naming what exists."""
    listed = link.call(ops.ListProcesses(all=True, ended=1000)).processes
    processes = [p.public() for p in listed]
    for process in processes:
        if process["id"] == ref:
            return process
    labelled = [p for p in processes if p.get("label") == ref]
    if not labelled:
        try:
            known = link.call(ops.Status(ref)).record
        except RequestFailed as exc:
            if exc.code != "UnknownProcess":
                raise
            known = None
        if known is not None:
            return known.public()
        raise Refusal(f"no process with id or label {ref!r}; `process-mcp ps --all` lists them")
    running = [p for p in labelled if p["status"] == "running"]
    return (running or labelled)[-1]


def say(message: str) -> None:
    """An error or notice on stderr (it may quote what an agent wrote: filtered)."""
    print(f"process-mcp: {visible(message)}", file=sys.stderr)


def emit(options: argparse.Namespace, data: Any, text: str) -> None:
    """JSON (escapes every control character) with ``--json``, else ``text`` filtered."""
    print(json.dumps(data) if getattr(options, "json", False) else visible(text))


def ps(link: Link, options: argparse.Namespace) -> int:
    request = ops.ListProcesses(os.getcwd(), options.all, facts=True, command_chars=500)
    listed = link.call(request).processes
    processes = [p.public() for p in listed]
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
    from process_mcp.cli.follow import LogView, follow, print_log

    process = resolve(link, options.ref)
    view = LogView.choose(options.raw, bool(options.grep))
    query = LogQueryArgs(
        last_lines=max(options.lines, 0),
        grep=options.grep or None,
        stream=options.stream or "all",
        raw=view.raw,
    )
    try:
        if not options.follow:
            read = link.call(ops.ReadLog(process["id"], query, options.redact))
            print_log(read.answer, view=view)
            return OK
        return follow(link, process["id"], query, redact=options.redact, view=view)
    finally:
        view.finish()


def start(link: Link, options: argparse.Namespace) -> int:
    argv = options.argv[1:] if options.argv[:1] == ["--"] else options.argv
    if not argv:
        raise Refusal("nothing to start: process-mcp start [--label L] -- CMD [ARGS...]", USAGE)
    command, args = (" ".join(argv), []) if options.shell else (argv[0], argv[1:])
    request = StartRequest(
        command,
        tuple(args),
        cwd=options.cwd,
        options=StartOptions(label=options.label, shell=options.shell),
        folder=os.getcwd(),
        base_env=dict(os.environ),
        keep=not options.owned,
        force=options.force,
        run_settings=RunSettings.from_env(),  # this shell's: they apply to this run
    )
    started = link.call(request).record.public()
    emit(
        options, started, f"started {started['id']} (pid {started['pid']}): {command_line(started)}"
    )
    if options.owned:
        from process_mcp.cli.follow import follow

        return follow(link, started["id"], LogQueryArgs(last_lines=0))  # stopped with this one
    return OK


def stop(link: Link, options: argparse.Namespace) -> int:
    process = resolve(link, options.ref)
    stopped = link.call(ops.Stop(process["id"], options.force))
    record, survivors = stopped.record.public(), list(stopped.survivors)
    text = f"{record['id']} {record['status']} ({outcome(record) or 'ended'})"
    if survivors:
        text += f"; still running: pids {survivors}"
    emit(options, {**record, "survivors": survivors}, text)
    return NOT_MET if survivors else OK


def restart(link: Link, options: argparse.Namespace) -> int:
    process = resolve(link, options.ref)
    record = link.call(ops.Restart(process["id"])).record.public()
    emit(options, record, f"restarted {record['id']} (pid {record['pid']})")
    return OK


def wait(link: Link, options: argparse.Namespace) -> int:
    process = resolve(link, options.ref)
    request = ops.Wait(process["id"], options.timeout, options.pattern, options.port, options.url)
    waited = link.call(request)
    if options.json:
        print(json.dumps(wait_json(waited)))
    else:
        said = log_line(waited.matched_line or waited.reason)
        print(f"{waited.record.id} {'met' if waited.met else 'not met'}: {said}")
        for line in waited.tail:
            print(f"  {log_line(line)}")
    return OK if waited.met else NOT_MET


def wait_json(waited: ops.WaitReply) -> dict[str, Any]:
    """``wait --json``: the outcome with the public record, keys as they have always been
    printed (scripts read them)."""
    out: dict[str, Any] = {
        "record": waited.record.public(),
        "rev": waited.rev,
        "met": waited.met,
        "reason": waited.reason,
        "elapsed": waited.elapsed,
        "tail": waited.tail,
        "cursor": waited.cursor,
        "matched_line": waited.matched_line,
        "matched_line_number": waited.matched_line_number,
    }
    if waited.exits:
        out["exits"] = [{"record": e.record.public(), "rev": e.rev} for e in waited.exits]
    return out


def remove(link: Link, options: argparse.Namespace) -> int:
    """Forget an ended process (record and log); a running one is refused, with the fix."""
    process = resolve(link, options.ref)
    try:
        record = link.call(ops.Remove(process["id"])).record.public()
    except RequestFailed as exc:
        if exc.code != "ProcessRunning":
            raise
        raise Refusal(
            f"{process['id']} is still running (pid {process.get('pid')}); stop it first: "
            f"process-mcp stop {process['id']}"
        ) from None
    emit(options, record, f"removed {record['id']} ({record['status']}): {command_line(record)}")
    return OK


RUNNERS = {"ps": ps, "logs": logs, "start": start, "stop": stop, "restart": restart}
RUNNERS["approve"] = lambda link, options: _rails().approve(link, options)
RUNNERS["pending"] = lambda link, options: _rails().pending(link, options)


def _rails() -> Any:
    from process_mcp.cli import rails

    return rails


RUNNERS |= {"wait": wait, "remove": remove}
