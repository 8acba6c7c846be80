"""The tools: names, descriptions, annotations, and handlers that map calls onto the core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_types import Tool, ToolAnnotations
from pydantic import BaseModel

from process_mcp.core import InvalidRequest, Status
from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.logs.query import DEFAULT_MAX_BYTES, LogAnswer, LogQuery
from process_mcp.core.options import StartOptions
from process_mcp.core.signals import SIGNALS
from process_mcp.core.waiting import DEFAULT_TIMEOUT, MAX_TIMEOUT, TAIL_LINES, WaitCondition
from process_mcp.server import schemas as s
from process_mcp.server.progress import current_progress
from process_mcp.supervisor.remote import RemoteManager

# Each handler gets the calling MCP session's supervisor session.
Handler = Callable[[RemoteManager, Any], Awaitable[BaseModel]]

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input_model: type[s.ToolInput]
    output_model: type[BaseModel]
    handler: Handler
    annotations: ToolAnnotations

    def as_tool(self) -> Tool:
        return Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_model.model_json_schema(by_alias=True),
            output_schema=self.output_model.model_json_schema(by_alias=True, mode="serialization"),
            annotations=self.annotations,
        )


def _info(record: Any) -> s.ProcessInfo:
    return s.ProcessInfo.model_validate(record.public())


async def start(manager: RemoteManager, args: s.StartInput) -> s.ProcessInfo:
    options = StartOptions(
        shell=args.shell,
        stdin=args.stdin,
        pty=args.pty,
        timeout_seconds=args.timeout_seconds,
        label=args.label,
    )
    record = await manager.start(
        args.command,
        args.args,
        cwd=args.cwd,
        env=args.env,
        notify_on_exit=args.notify_on_exit,
        options=options,
        keep=args.keep,
    )
    return _info(record)


async def stop(manager: RemoteManager, args: s.StopInput) -> s.StopResult:
    stopped = await manager.stop(args.id, force=args.force)  # verified: a last look of /proc
    return s.StopResult.model_validate(
        {**stopped.record.public(), "treeGone": stopped.tree_gone, "survivors": stopped.survivors}
    )


async def get_status(manager: RemoteManager, args: s.IdInput) -> s.StatusResult:
    status = await manager.status(args.id)  # record and live facts: one request
    if status is None:
        return s.StatusResult(id=args.id, status=Status.NOT_EXISTS.value)
    return s.StatusResult.model_validate(status)


async def get_log(manager: RemoteManager, args: s.IdInput | s.GetLogInput) -> s.LogResult:
    record = manager.get(args.id)
    answer = await manager.read_log(args.id, _log_query(args))  # the grep runs off the loop
    return s.LogResult(
        id=record.id,
        status=record.status.value,
        lines=answer.lines,
        first_line=answer.numbers[0] if answer.numbers else None,
        last_line=answer.numbers[-1] if answer.numbers else None,
        next_cursor=answer.next_cursor,
        total_lines=answer.total_lines,
        truncated=answer.truncated,
        omitted_lines=answer.omitted_lines,
        dropped_bytes=answer.dropped_bytes,
        cut_lines=answer.cut_lines,
        pending_lines=answer.pending_lines,
        missed_lines=answer.missed_lines,
        notice=_log_notice(answer),
    )


def _log_query(args: s.IdInput | s.GetLogInput) -> LogQuery:
    if not isinstance(args, s.GetLogInput):
        return LogQuery()
    return LogQuery(
        last_lines=args.last_lines,
        since=args.since,
        limit=args.limit,
        stream=args.stream,
        grep=args.grep,
        context=args.context,
        max_bytes=args.max_bytes,
        raw=args.raw,
    )


def _log_notice(answer: LogAnswer) -> str | None:
    notes = []
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
    return "; ".join(notes) or None


async def list_processes(manager: RemoteManager, args: s.ListInput) -> s.ListResult:
    listed = await manager.listed(everything=args.all)  # scoped, with owners
    return s.ListResult(processes=[s.ListedProcess.model_validate(p) for p in listed])


async def get_pid(manager: RemoteManager, args: s.IdInput) -> s.PidResult:
    record = manager.find(args.id)
    if record is None:
        return s.PidResult(
            id=args.id,
            pid=None,
            notice=f"no process with id {args.id!r}, so pid is null; call 'list' to see the ids",
        )
    return s.PidResult(id=args.id, pid=record.pid)


async def remove(manager: RemoteManager, args: s.IdInput) -> s.RemoveResult:
    record = await manager.remove(args.id)
    return s.RemoveResult.model_validate(record.public())


async def send_input(manager: RemoteManager, args: s.SendInputInput) -> s.InputResult:
    if not args.text and not args.eof:
        raise InvalidRequest(
            "send-input needs 'text' (written as-is, add '\\n' to end a line) or eof: true"
        )
    receipt = await manager.send_input(args.id, args.text, eof=args.eof)
    return s.InputResult(
        id=args.id,
        status=manager.get(args.id).status.value,
        bytes_written=receipt.bytes_written,
        bytes_pending=receipt.bytes_pending,
        stdin_open=receipt.stdin_open,
    )


async def send_signal(manager: RemoteManager, args: s.SignalInput) -> s.SignalResult:
    record = await manager.send_signal(args.id, args.signal)
    return s.SignalResult.model_validate({**record.public(), "sent": args.signal})


async def restart(manager: RemoteManager, args: s.IdInput) -> s.ProcessInfo:
    return _info(await manager.restart(args.id))


async def wait(manager: RemoteManager, args: s.WaitInput) -> s.WaitResult:
    pattern = None if args.pattern is None else LinePattern.compile(args.pattern, name="pattern")
    sink = current_progress.get()
    timeout = args.timeout_seconds

    async def progress(elapsed: float, message: str) -> None:
        if sink is not None:
            await sink(elapsed, timeout, message)

    outcome = await manager.wait_for(
        args.id,
        WaitCondition(pattern=pattern, port=args.port, url=args.url),
        timeout,
        progress=progress if sink is not None else None,
    )
    record = outcome.record
    return s.WaitResult(
        id=record.id,
        status=record.status.value,
        met=outcome.met,
        reason=outcome.reason,  # type: ignore[arg-type]
        matched_line=outcome.matched_line,
        matched_line_number=outcome.matched_line_number,
        exit_code=record.exit_code,
        signal=record.signal,
        elapsed_seconds=outcome.elapsed,
        tail=outcome.tail,
    )


def tool_specs(stop_grace: float) -> dict[str, ToolSpec]:
    """Every tool by name; descriptions quote the core's settings and vocabularies."""
    signals = ", ".join(SIGNALS)
    return {spec.name: spec for spec in _specs(f"{stop_grace:g} s", signals)}


def _specs(grace: str, signals: str) -> list[ToolSpec]:
    return [
        ToolSpec(
            "start",
            "Start a background process",
            "Start a long-running command (dev server, build, test watcher) in the background "
            "and return at once with its id. No shell unless shell: true: pass the program as "
            "'command' and each argument in 'args'. stdin is /dev/null, so prompts get EOF "
            "instead of hanging; stdin: 'pipe' or pty: true keep it open for 'send-input'. "
            "timeoutSeconds stops it after that long; label names it in 'list'. It stops "
            "when this session ends unless keep: true. "
            "Output goes to a log read with 'get-log'. Returns the process record.",
            s.StartInput,
            s.ProcessInfo,
            start,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True),
        ),
        ToolSpec(
            "stop",
            "Stop a process and its whole tree",
            "Stop a process started with 'start': SIGTERM to its whole process tree, then "
            f"SIGKILL after the grace period ({grace}) to whatever is left; 'force' kills at "
            "once. "
            "Answers once everything has ended, with the final record (status 'stopped') and "
            "'treeGone' (verified: no process of the tree is left, escapees included). "
            "Stopping an ended process ends what it left running and returns its record.",
            s.StopInput,
            s.StopResult,
            stop,
            ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True),
        ),
        ToolSpec(
            "get-status",
            "Get a process's status",
            "Status of a process: 'running', 'stopped' (ended by 'stop'), 'exited' (ended by "
            "itself with code 0), 'crashed' (non-zero exit or killed by a signal we did not "
            "send) or 'not-exists' (unknown id; not an error). Returns the whole record and, "
            "while running, live facts: cpuPercent, memoryBytes and processCount of the whole "
            "tree, listeningPorts, idleSeconds (since its last output) and logBytes.",
            s.IdInput,
            s.StatusResult,
            get_status,
            READ_ONLY,
        ),
        ToolSpec(
            "get-log",
            "Read a process's output",
            "Read the output of a process: stdout and stderr interleaved in arrival order, one "
            "string per line, numbered from 1 for the life of the process. 'lastLines' reads "
            "the newest lines; to follow a process read with 'since' (0 at first) and pass back "
            "'nextCursor' to get only new lines. 'grep' (Python regex, with 'context') and "
            f"'stream' filter. Answers are capped by 'maxBytes' ({DEFAULT_MAX_BYTES // 1024} "
            "KiB), keeping the newest "
            "lines ('truncated'/'omittedLines' say what was left out). Colours and \\r progress "
            "updates are cleaned unless 'raw'. The whole log is kept on disk up to a cap "
            "('droppedBytes' says how much old output was dropped).",
            s.GetLogInput,
            s.LogResult,
            get_log,
            READ_ONLY,
        ),
        ToolSpec(
            "list",
            "List managed processes",
            "List the processes whose cwd is in this project's folder (all: true for every "
            "one), from any session, running or ended, with status, pid, label, command, cwd, "
            "start time, exit code, the TCP ports its tree listens on and owner (self, other "
            "or kept).",
            s.ListInput,
            s.ListResult,
            list_processes,
            READ_ONLY,
        ),
        ToolSpec(
            "get-pid",
            "Get a process's OS pid",
            "The operating-system pid of a managed process's direct child; null for an unknown id.",
            s.IdInput,
            s.PidResult,
            get_pid,
            READ_ONLY,
        ),
        ToolSpec(
            "remove",
            "Forget an ended process",
            "Forget a process that has ended and delete its log. Fails while it is running: "
            "call 'stop' first.",
            s.IdInput,
            s.RemoveResult,
            remove,
            ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False),
        ),
        ToolSpec(
            "send-input",
            "Type into a process's stdin",
            "Write text to the stdin of a process started with stdin: 'pipe' or pty: true "
            "(no newline is added: end lines with '\\n'); eof: true then ends its input. "
            "Answer to prompts, drive a REPL. Read the reply with 'get-log' (a prompt without "
            "a newline is shown as the last line).",
            s.SendInputInput,
            s.InputResult,
            send_input,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True),
        ),
        ToolSpec(
            "signal",
            "Send a signal to a process",
            f"Send one of {signals} "
            "to a running process's whole process group (e.g. SIGHUP to reload, SIGINT like "
            "Ctrl-C). Answers at once; if the process dies of it, its status becomes 'stopped' "
            "(not 'crashed'), with 'signal' naming it.",
            s.SignalInput,
            s.SignalResult,
            send_signal,
            ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
        ),
        ToolSpec(
            "restart",
            "Restart a process",
            "Stop a process (as 'stop', if still running), then start the same command, args, "
            "cwd, env and options again under the same id, with a new pid. The log continues "
            "after a marker line; line numbers keep counting. Works on ended processes too.",
            s.IdInput,
            s.ProcessInfo,
            restart,
            ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True),
        ),
        ToolSpec(
            "wait",
            "Wait until a process is ready or ends",
            "Block until a process is ready or has ended, in one call: until a log line matches "
            "'pattern' (searched from the start of the log), until its tree listens on TCP "
            "'port', or until an HTTP GET of 'url' answers below 500; with none of them, until "
            "the process ends. Returns at once with met=false, reason='exited' if the process "
            f"dies first, so you never wait for the timeout (default {DEFAULT_TIMEOUT:g} s, max "
            f"{MAX_TIMEOUT:g}). 'tail' holds the last {TAIL_LINES} lines, e.g. the error that "
            "killed it. The process keeps running "
            "when the wait ends or is cancelled. Use this instead of polling get-status.",
            s.WaitInput,
            s.WaitResult,
            wait,
            # Read-only, but 'url' may reach beyond this machine.
            ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=True),
        ),
    ]
