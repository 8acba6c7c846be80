"""Wire shapes of every tool: strict inputs, declared outputs (camelCase on the wire).

Inputs are strict: unknown fields, wrong JSON types (``"5"`` for a number), empty strings
and out-of-range numbers are rejected before any handler runs, with a message that names
the field. Descriptions are written for a model deciding what to call.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from process_mcp.core import Status
from process_mcp.core.logs.query import DEFAULT_LIMIT, DEFAULT_MAX_BYTES
from process_mcp.core.signals import SIGNALS
from process_mcp.core.waiting import DEFAULT_TIMEOUT, MAX_TIMEOUT, TAIL_LINES

ProcessId = Annotated[
    str,
    Field(
        min_length=1, max_length=64, description="Process id returned by 'start' (6 characters)."
    ),
]
# Wire vocabularies and defaults come from the core, so a change there shows here.
StatusName = Literal[tuple(status.value for status in Status)]  # type: ignore[valid-type]
SignalName = Literal[tuple(SIGNALS)]  # type: ignore[valid-type]
StdinName = Literal["null", "pipe"]


class ToolInput(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=False, frozen=True
    )


class ToolOutput(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# ------------------------------------------------------------------ inputs
class StartInput(ToolInput):
    command: Annotated[
        str,
        Field(
            min_length=1,
            description=(
                "Program to run: a name looked up in PATH or a path. No shell is involved, so "
                "put each argument in 'args' (e.g. command 'npm', args ['run', 'dev'])."
            ),
        ),
    ]
    args: Annotated[
        list[str],
        Field(description="Arguments passed to the program as-is (no globbing or quoting)."),
    ] = []
    cwd: Annotated[
        str | None,
        Field(
            min_length=1,
            description="Working directory; relative paths are resolved against the server's. "
            "Default: the server's working directory.",
        ),
    ] = None
    env: Annotated[
        dict[str, str] | None,
        Field(description="Variables added to (or overriding) the server's environment."),
    ] = None
    notify_on_exit: Annotated[
        bool,
        Field(
            description="Send a 'process/exit' notification when the process ends. Default false."
        ),
    ] = False
    shell: Annotated[
        bool,
        Field(
            description="Run 'command' as one line through /bin/sh -c (pipes, &&, redirections, "
            "globs); 'args' must then be empty. Default false."
        ),
    ] = False
    stdin: Annotated[
        StdinName,
        Field(
            description="'null' (default): stdin is /dev/null, so prompts read EOF instead of "
            "hanging. 'pipe': stdin stays open for 'send-input'."
        ),
    ] = "null"
    pty: Annotated[
        bool,
        Field(
            description="Run under a pseudo-terminal (120x40): the program sees a terminal, "
            "so it prompts and flushes as interactively; stdin, stdout and stderr are the "
            "terminal (whatever 'stdin' says), input via 'send-input'. Default false."
        ),
    ] = False
    timeout_seconds: Annotated[
        float | None,
        Field(
            gt=0,
            allow_inf_nan=False,
            description="Stop the process (as 'stop' does) after this many seconds; its "
            "status is then 'stopped' with timedOut true. Default: no timeout.",
        ),
    ] = None
    label: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=200,
            description="A name shown by 'list'; must not be the label of a running process.",
        ),
    ] = None
    keep: Annotated[
        bool,
        Field(
            description="Keep it running after this session ends (it is then stopped only by "
            "'stop'/'remove'). Default false: it stops with the session."
        ),
    ] = False


class StopInput(ToolInput):
    id: ProcessId
    force: Annotated[
        bool,
        Field(
            description="Kill at once with SIGKILL instead of SIGTERM then SIGKILL after the "
            "grace period. Default false."
        ),
    ] = False


class IdInput(ToolInput):
    id: ProcessId


class GetLogInput(ToolInput):
    id: ProcessId
    last_lines: Annotated[
        int | None,
        Field(
            ge=1,
            description="Return only the newest N lines (of the selection). "
            "Cannot be combined with 'since'.",
        ),
    ] = None
    since: Annotated[
        int | None,
        Field(
            ge=0,
            description="Return the lines numbered above N, oldest first (at most 'limit'). "
            "Pass back the previous answer's 'nextCursor' to read only what is new; 0 reads "
            "from the start.",
        ),
    ] = None
    limit: Annotated[
        int,
        Field(
            ge=1,
            le=100_000,
            description=f"With 'since': at most this many lines. Default {DEFAULT_LIMIT}.",
        ),
    ] = DEFAULT_LIMIT
    stream: Annotated[
        Literal["stdout", "stderr", "all"],
        Field(description="Which output to read. Default 'all' (interleaved in arrival order)."),
    ] = "all"
    grep: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=4096,
            description="Python regular expression: return only matching lines (and 'context' "
            "lines around each). Searched per line; '^' and '$' match at line ends.",
        ),
    ] = None
    context: Annotated[
        int,
        Field(ge=0, le=100, description="With 'grep': lines shown before and after each match."),
    ] = 0
    max_bytes: Annotated[
        int,
        Field(
            ge=256,
            le=16 * 1024 * 1024,
            description="Size cap of the answer's lines (UTF-8 bytes, +1 per line); the newest "
            f"lines of the selection are kept. Default {DEFAULT_MAX_BYTES}.",
        ),
    ] = DEFAULT_MAX_BYTES
    raw: Annotated[
        bool,
        Field(
            description="Return text as written. Default false: ANSI colour/cursor escapes are "
            "removed and carriage-return progress updates collapse to their final state."
        ),
    ] = False


class ListInput(ToolInput):
    all: Annotated[
        bool,
        Field(description="List every process, not only those whose cwd is in this folder."),
    ] = False


class SendInputInput(ToolInput):
    id: ProcessId
    text: Annotated[
        str,
        Field(
            max_length=1024 * 1024,
            description="Text written to stdin as-is: no newline is added, so end a line with "
            "'\\n'. Under a pty, '\\u0003' is Ctrl-C.",
        ),
    ] = ""
    eof: Annotated[
        bool,
        Field(
            description="After the text, end the input: closes a pipe; under a pty sends "
            "Ctrl-D (twice after a partial line). Default false."
        ),
    ] = False


class SignalInput(ToolInput):
    id: ProcessId
    signal: Annotated[
        SignalName, Field(description="Signal to send to the process's whole process group.")
    ]


class WaitInput(ToolInput):
    id: ProcessId
    pattern: Annotated[
        str | None,
        Field(
            min_length=1,
            description="Python regular expression; wait until a log line matches it. The whole "
            "log is searched from its start, so a line printed before this call counts. ANSI "
            "colour codes are removed before matching. Example: 'ready|listening on'.",
        ),
    ] = None
    port: Annotated[
        int | None,
        Field(
            ge=1,
            le=65535,
            description="Wait until a process of this process's tree listens on this TCP port.",
        ),
    ] = None
    url: Annotated[
        str | None,
        Field(
            min_length=1,
            pattern=r"^https?://",
            description="Wait until an HTTP GET of this http:// or https:// URL answers with a "
            "status below 500 (a 404 counts: the server is up).",
        ),
    ] = None
    timeout_seconds: Annotated[
        float,
        Field(
            gt=0,
            le=MAX_TIMEOUT,
            description="Give up after this many seconds (reason 'timeout'). "
            f"Default {DEFAULT_TIMEOUT:g}, max {MAX_TIMEOUT:g}.",
        ),
    ] = DEFAULT_TIMEOUT


# ----------------------------------------------------------------- outputs
class ProcessInfo(ToolOutput):
    id: str = Field(description="Process id.")
    pid: int | None = Field(description="OS pid of the direct child.")
    status: StatusName
    command: str
    args: list[str]
    cwd: str = Field(description="Absolute working directory.")
    exit_code: int | None = Field(None, description="Exit code, when it exited by itself.")
    signal: str | None = Field(None, description="Name of the signal that ended it, e.g. SIGKILL.")
    started_at: str | None = None
    ended_at: str | None = None
    notify_on_exit: bool = False
    label: str | None = Field(None, description="Name given at start.")
    shell: bool = False
    stdin: StdinName = "null"
    pty: bool = False
    timeout_seconds: float | None = None
    timed_out: bool = Field(False, description="True when it was stopped by its timeoutSeconds.")
    restarts: int = Field(0, description="How many times 'restart' started it again.")


class ListedProcess(ProcessInfo):
    listening_ports: list[int] = Field(
        default_factory=list, description="TCP ports its process tree listens on (running only)."
    )
    owner: Literal["self", "other", "kept"] = Field(
        description="Whose it is: this session's, another session's, or kept (no session's)."
    )


class StopResult(ProcessInfo):
    tree_gone: bool = Field(
        description="True when no process of its tree (group, escapees, descendants) is left."
    )
    survivors: list[int] = Field(
        description="Pids of its tree still alive after SIGKILL (normally empty: a process "
        "stuck in the kernel, or one the server may not signal)."
    )


class StatusResult(ToolOutput):
    id: str
    status: StatusName
    pid: int | None = None
    command: str | None = None
    args: list[str] | None = None
    cwd: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    notify_on_exit: bool | None = None
    label: str | None = None
    shell: bool | None = None
    stdin: StdinName | None = None
    pty: bool | None = None
    timeout_seconds: float | None = None
    timed_out: bool | None = None
    restarts: int | None = None
    cpu_percent: float | None = Field(
        None, description="CPU use of the whole tree since the previous call, % of one core."
    )
    memory_bytes: int | None = Field(None, description="Resident memory of the whole tree.")
    process_count: int | None = Field(None, description="Processes in the tree.")
    listening_ports: list[int] | None = Field(
        None, description="TCP ports listened on by any process of the tree."
    )
    idle_seconds: float | None = Field(
        None, description="Seconds since its last output (or its start)."
    )
    log_bytes: int | None = Field(None, description="Size of its log on disk.")


class LogResult(ToolOutput):
    id: str
    status: StatusName
    lines: list[str] = Field(description="stdout and stderr interleaved in arrival order.")
    first_line: int | None = Field(description="Number of the first line returned (from 1).")
    last_line: int | None = Field(description="Number of the last line returned.")
    next_cursor: int = Field(
        description="Pass as 'since' next time to read only newer lines. Never covers a "
        "partial (unterminated) line, so that line is read again once complete."
    )
    total_lines: int = Field(description="Lines written so far, including dropped ones.")
    truncated: bool = Field(
        description="True when lines of the selection were left out or cut to fit 'maxBytes'."
    )
    omitted_lines: int = Field(description="Selected lines left out to fit 'maxBytes'.")
    dropped_bytes: int = Field(description="Oldest bytes dropped by the per-process log cap.")
    cut_lines: int = Field(0, description="Lines stored cut because they exceeded the line cap.")
    pending_lines: int = Field(
        0, description="Trailing lines of 'lines' not ended by a newline yet (provisional)."
    )
    missed_lines: int = Field(
        0, description="Lines after 'since' that the log cap dropped before they were read."
    )
    notice: str | None = Field(None, description="What the caller should know about this answer.")


class ListResult(ToolOutput):
    processes: list[ListedProcess]


class InputResult(ToolOutput):
    id: str
    status: StatusName
    bytes_written: int = Field(description="Bytes of input the process's stdin took so far.")
    bytes_pending: int = Field(description="Bytes accepted but not yet taken (it reads slowly).")
    stdin_open: bool = Field(description="False once input has ended (eof, or it closed stdin).")


class SignalResult(ProcessInfo):
    sent: SignalName = Field(description="The signal sent to the process group.")


class PidResult(ToolOutput):
    id: str
    pid: int | None
    notice: str | None = Field(
        None, description="Why pid is null: the id is unknown (not an error, as in the seed)."
    )


class WaitResult(ToolOutput):
    id: str
    status: StatusName = Field(description="Status of the process when the wait ended.")
    met: bool = Field(description="True when the awaited condition happened.")
    reason: Literal["pattern", "port", "url", "exited", "timeout"] = Field(
        description="Why the wait ended: the condition met ('pattern', 'port', 'url'), the "
        "process ended ('exited'; met is true only when no condition was given), or 'timeout'."
    )
    matched_line: str | None = Field(None, description="The log line that matched 'pattern'.")
    matched_line_number: int | None = Field(None, description="Its number in the log (from 1).")
    exit_code: int | None = Field(None, description="Exit code, when it has exited by itself.")
    signal: str | None = Field(None, description="Signal that ended it, if any.")
    elapsed_seconds: float = Field(description="How long the wait took.")
    tail: list[str] = Field(description=f"The last {TAIL_LINES} lines of output (ANSI removed).")


class RemoveResult(ProcessInfo):
    removed: bool = True
