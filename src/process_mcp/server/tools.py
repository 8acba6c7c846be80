"""The tools: names, descriptions, annotations, and handlers that map calls onto the core."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_types import Tool, ToolAnnotations
from pydantic import BaseModel

from process_mcp.core import ProcessManager, Status
from process_mcp.core.logquery import LogAnswer, LogQuery, run_query
from process_mcp.server import schemas as s

Handler = Callable[[ProcessManager, Any], Awaitable[BaseModel]]

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


async def start(manager: ProcessManager, args: s.StartInput) -> s.ProcessInfo:
    record = await manager.start(
        args.command, args.args, cwd=args.cwd, env=args.env, notify_on_exit=args.notify_on_exit
    )
    return _info(record)


async def stop(manager: ProcessManager, args: s.StopInput) -> s.ProcessInfo:
    return _info(await manager.stop(args.id, force=args.force))


async def get_status(manager: ProcessManager, args: s.IdInput) -> s.StatusResult:
    record = manager.find(args.id)
    if record is None:
        return s.StatusResult(id=args.id, status=Status.NOT_EXISTS.value)
    return s.StatusResult.model_validate(record.public())


async def get_log(manager: ProcessManager, args: s.IdInput | s.GetLogInput) -> s.LogResult:
    record = manager.get(args.id)
    query = _log_query(args)
    snapshot = manager.log(args.id).snapshot()
    # A grep over a large log takes a while: run it off the event loop (the snapshot
    # only reads bytes already written, so draining continues meanwhile).
    answer = await asyncio.to_thread(run_query, snapshot, query)
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
        notice=_log_notice(answer, snapshot.first_line),
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


def _log_notice(answer: LogAnswer, first_stored: int) -> str | None:
    notes = []
    if answer.missed_lines:
        notes.append(
            f"{answer.missed_lines} lines after 'since' were dropped by the log size cap "
            f"before they were read; reading from line {first_stored}"
        )
    if answer.omitted_lines:
        notes.append(
            f"{answer.omitted_lines} older selected lines were left out to fit maxBytes; "
            "raise maxBytes or lower limit/lastLines to see them"
        )
    return "; ".join(notes) or None


async def list_processes(manager: ProcessManager, args: s.ListInput) -> s.ListResult:
    return s.ListResult(processes=[_info(record) for record in manager.records()])


async def get_pid(manager: ProcessManager, args: s.IdInput) -> s.PidResult:
    record = manager.find(args.id)
    return s.PidResult(id=args.id, pid=record.pid if record else None)


async def remove(manager: ProcessManager, args: s.IdInput) -> s.RemoveResult:
    record = await manager.remove(args.id)
    return s.RemoveResult.model_validate(record.public())


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in [
        ToolSpec(
            "start",
            "Start a background process",
            "Start a long-running command (dev server, build, test watcher) in the background "
            "and return at once with its id. No shell: pass the program as 'command' and each "
            "argument in 'args'. stdin is /dev/null, so prompts get EOF instead of hanging. "
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
            "SIGKILL after the grace period (5 s) to whatever is left; 'force' kills at once. "
            "Answers once everything has ended, with the final record (status 'stopped'). "
            "Stopping an ended process just returns its record.",
            s.StopInput,
            s.ProcessInfo,
            stop,
            ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True),
        ),
        ToolSpec(
            "get-status",
            "Get a process's status",
            "Status of a process: 'running', 'stopped' (ended by 'stop'), 'exited' (ended by "
            "itself with code 0), 'crashed' (non-zero exit or killed by a signal we did not "
            "send) or 'not-exists' (unknown id; not an error). Includes exit code and signal.",
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
            "'stream' filter. Answers are capped by 'maxBytes' (64 KiB), keeping the newest "
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
            "List every process this server manages, running or ended, with status, pid, "
            "command, cwd, start time and exit code.",
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
    ]
}
