"""The tools: names, descriptions, annotations, and handlers that map calls onto the core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_types import Tool, ToolAnnotations

from process_mcp.core import InvalidRequest
from process_mcp.core.carry import carried, init_names
from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.logs.query import LogAnswer, LogQuery
from process_mcp.core.options import RestartChanges, StartOptions, StartRequest
from process_mcp.core.waiting import DEFAULT_TIMEOUT, MAX_TIMEOUT, WaitCondition
from process_mcp.server import answers
from process_mcp.server import schemas as s
from process_mcp.server.folder import current_folder
from process_mcp.server.portable import input_schema, output_schema
from process_mcp.server.progress import current_progress
from process_mcp.supervisor.remote import RemoteManager

# Each handler gets the calling MCP session's supervisor session (standalone: in-process).
Handler = Callable[[RemoteManager, Any], Awaitable[dict[str, Any]]]

# GetLogInput's fields that a LogQuery takes as they are (all but ``id``).
LOG_QUERY_INPUTS = ("last_lines", "since", "limit", "stream", "grep", "context", "max_bytes", "raw")
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input_model: type[s.ToolInput]
    output_model: type[s.ToolOutput]
    handler: Handler
    annotations: ToolAnnotations

    def as_tool(self) -> Tool:
        return Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=input_schema(self.input_model),
            output_schema=output_schema(self.output_model),
            annotations=self.annotations,
        )


async def start(manager: RemoteManager, args: s.StartInput) -> dict[str, Any]:
    request = StartRequest(
        command=args.command,
        args=tuple(args.args or ()),
        cwd=args.cwd,
        env=args.env,
        notify_on_exit=args.notify_on_exit,
        options=StartOptions(**carried(args, init_names(StartOptions))),
        folder=current_folder.get(),
        keep=args.keep,
    )
    if args.reuse:
        record, reused = await manager.start_or_reuse(request)
        return answers.started(record, reused, history=True)
    return answers.started(await manager.start(request), history=True)


async def stop(manager: RemoteManager, args: s.StopInput) -> dict[str, Any]:
    return answers.stopped(await manager.stop(args.id, force=args.force))


async def get_status(manager: RemoteManager, args: s.IdInput) -> dict[str, Any]:
    record, facts, past = await manager.status(args.id)  # record and live facts: one request
    if record is None:  # a process of an earlier server: its record from the history
        return answers.status(args.id, None, None) if past is None else answers.past(past)
    return answers.status(args.id, record, facts)


async def get_log(manager: RemoteManager, args: s.GetLogInput) -> dict[str, Any]:
    query = LogQuery(**carried(args, LOG_QUERY_INPUTS))
    # The grep runs off the supervisor's loop; an id of an earlier server reads its history.
    record, answer = await manager.read_log_of(args.id, query)
    context = None if args.grep is None else args.context
    notice = _log_notice(answer, getattr(record, "log_dropped_bytes", None))
    return answers.log(record, answer, notice, context)


def _log_notice(answer: LogAnswer, log_dropped: int | None = None) -> str | None:
    notes = []
    if log_dropped is not None:
        notes.append(
            f"this run's log ({log_dropped} bytes) was deleted by 'remove' or to keep logs "
            "within PROCESS_MCP_DISK_CAP; its record is kept"
        )
    if answer.missed_lines:
        notes.append(
            f"{answer.missed_lines} lines after 'since' were dropped by the log size cap "
            f"before they were read; reading from line {answer.first_stored}"
        )
    if answer.omitted_lines:
        notes.append(
            f"{answer.omitted_lines} older selected lines were left out to fit maxBytes; "
            "raise maxBytes or lower limit/lastLines to see them"
        )
    if answer.lost_notice:
        notes.append(answer.lost_notice)
    return "; ".join(notes) or None


async def list_processes(manager: RemoteManager, args: s.ListInput) -> dict[str, Any]:
    # Every session's processes under the client's default folder (all: every folder).
    summaries, older, omitted = await manager.list_summaries(
        everything=args.all,
        folder=current_folder.get(),
        ended=args.ended if "ended" in args.model_fields_set else None,
    )
    return answers.listed(summaries, older, omitted)


async def get_pid(manager: RemoteManager, args: s.IdInput) -> dict[str, Any]:
    return answers.pid(args.id, manager.find(args.id))


async def remove(manager: RemoteManager, args: s.IdInput) -> dict[str, Any]:
    return answers.removed(await manager.remove(args.id))


async def send_input(manager: RemoteManager, args: s.SendInputInput) -> dict[str, Any]:
    if not args.text and not args.eof:
        raise InvalidRequest(
            "send-input needs 'text' (written as-is, add '\\n' to end a line) or eof: true"
        )
    receipt = await manager.send_input(args.id, args.text, eof=args.eof)
    return answers.input_taken(manager.get(args.id), receipt)


async def send_signal(manager: RemoteManager, args: s.SignalInput) -> dict[str, Any]:
    return answers.signalled(await manager.send_signal(args.id, args.signal), args.signal)


async def restart(manager: RemoteManager, args: s.RestartInput) -> dict[str, Any]:
    changes = RestartChanges(
        args=None if args.args is None else list(args.args),
        cwd=args.cwd,
        env=None if args.env is None else dict(args.env),
        stdin=args.stdin,
        pty=args.pty,
        timeout_seconds=args.timeout_seconds,
    )
    record = await manager.restart(args.id, changes, default_cwd=current_folder.get())
    return answers.started(record)


async def wait(manager: RemoteManager, args: s.WaitInput) -> dict[str, Any]:
    sink = current_progress.get()
    timeout = args.timeout_seconds

    async def progress(elapsed: float, message: str) -> None:
        if sink is not None:
            await sink(elapsed, timeout, message)

    report = progress if sink is not None else None
    if args.ids is not None:
        return await _wait_for_exits(manager, args, report)
    if args.id is None:
        raise InvalidRequest("wait needs 'id' (one process) or 'ids' (several, to end)")
    if "mode" in args.model_fields_set:
        raise InvalidRequest(
            "'mode' applies to 'ids' (wait for any or all of several processes to end); "
            "drop it, or pass 'ids' instead of 'id'"
        )
    pattern = None if args.pattern is None else LinePattern.compile(args.pattern, name="pattern")
    condition = WaitCondition(pattern=pattern, port=args.port, url=args.url)
    outcome = await manager.wait_for(
        args.id, condition, timeout, progress=report, tail_lines=args.tail_lines
    )
    return answers.waited(outcome)


async def _wait_for_exits(manager: RemoteManager, args: s.WaitInput, report: Any) -> dict[str, Any]:
    if args.id is not None:
        raise InvalidRequest(f"pass either 'id' ({args.id!r}) or 'ids' ({args.ids!r}), not both")
    if args.pattern is not None or args.port is not None or args.url is not None:
        raise InvalidRequest(
            "'ids' waits for processes to end; 'pattern', 'port' and 'url' wait on one "
            "process: call wait once per process with 'id' for those"
        )
    assert args.ids is not None
    outcome, tails = await manager.wait_for_exits(
        list(args.ids),
        args.mode == "all",
        args.timeout_seconds,
        progress=report,
        tail_lines=args.tail_lines or 0,
    )
    return answers.waited_for_exits(outcome, tails)


def tool_specs(stop_grace: float) -> dict[str, ToolSpec]:
    """Every tool by name; descriptions quote the core's settings and vocabularies."""
    return {spec.name: spec for spec in _specs(f"{stop_grace:g} s")}


def _specs(grace: str) -> list[ToolSpec]:
    return [
        ToolSpec(
            "start",
            "Start a background process",
            "Run a command in the background; answers its id at once. The loop: start, then "
            "wait (ready or ended), then get-log with since=nextCursor (only new output), "
            "then stop. No shell unless shell: true: program in command, arguments in args. "
            "Runs in the client's project folder (or cwd). stdin is "
            "/dev/null (prompts read EOF) unless stdin: 'pipe' or pty: true (then send-input). "
            "Stops when this session ends, unless keep: true.",
            s.StartInput,
            s.StartResult,
            start,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True),
        ),
        ToolSpec(
            "stop",
            "Stop a process and its tree",
            f"Stop a process and its whole tree: SIGTERM, then SIGKILL after {grace} (force: "
            "at once). Answers once ended; treeGone: nothing of the tree is left.",
            s.StopInput,
            s.StopResult,
            stop,
            ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True),
        ),
        ToolSpec(
            "get-status",
            "Get a process's status",
            "A process's record: status running, stopped (by stop), exited (code 0), crashed "
            "or not-exists; exitCode/signal once ended; while running, CPU, memory, "
            "processes, ports, idle seconds.",
            s.IdInput,
            s.StatusResult,
            get_status,
            READ_ONLY,
        ),
        ToolSpec(
            "get-log",
            "Read a process's output",
            "Output lines (stdout and stderr in arrival order), numbered from 1. since: N "
            "reads only newer lines (pass back nextCursor); lastLines: N the newest. A grep "
            "answers like grep -n -C: 'N:' a match, 'N-' context, '--' between groups. Cut "
            "to maxBytes keeping the newest; colours and \\r updates cleaned unless raw.",
            s.GetLogInput,
            s.LogResult,
            get_log,
            READ_ONLY,
        ),
        ToolSpec(
            "list",
            "List processes",
            "One line per process in this folder, any session: id, pid, "
            "status, label, command line, exitCode, start time, ports, owner (self, "
            "other or kept). all: true: every folder.",
            s.ListInput,
            s.ListResult,
            list_processes,
            READ_ONLY,
        ),
        ToolSpec(
            "get-pid",
            "Get a process's pid",
            "The OS pid of a process; null for an unknown id.",
            s.IdInput,
            s.PidResult,
            get_pid,
            READ_ONLY,
        ),
        ToolSpec(
            "remove",
            "Forget an ended process",
            "Forget an ended process and delete its log (stop it first).",
            s.IdInput,
            s.RemoveResult,
            remove,
            ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False),
        ),
        ToolSpec(
            "send-input",
            "Type into a process's stdin",
            "Write text to the stdin of a process started with stdin: 'pipe' or pty: true; "
            "eof: true then ends its input. For a prompt: wait for it, then send.",
            s.SendInputInput,
            s.InputResult,
            send_input,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True),
        ),
        ToolSpec(
            "signal",
            "Send a signal",
            "Send a signal to a running process's group (SIGHUP to reload, SIGINT like "
            "Ctrl-C). If it dies of it, its status is stopped.",
            s.SignalInput,
            s.SignalResult,
            send_signal,
            ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
        ),
        ToolSpec(
            "restart",
            "Restart a process",
            "Stop it if running, then start the same command again under the same id; the "
            "given parameters replace the old. The log continues, numbering unbroken.",
            s.RestartInput,
            s.ProcessInfo,
            restart,
            ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True),
        ),
        ToolSpec(
            "wait",
            "Wait until ready or ended",
            "Block until a log line matches pattern, its tree listens on port, or url "
            "answers; with none of them, until it ends. met is true only if that holds now: "
            "if the process ended first, met is false, reason exited, at once (tail shows "
            f"why). Timeout {DEFAULT_TIMEOUT:g} s (max {MAX_TIMEOUT:g}).",
            s.WaitInput,
            s.WaitResult,
            wait,
            # Read-only, but 'url' may reach beyond this machine.
            ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=True),
        ),
    ]
