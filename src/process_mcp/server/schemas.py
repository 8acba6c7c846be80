"""Wire shapes of every tool: strict inputs, declared outputs (camelCase on the wire).

Inputs are strict: unknown fields, wrong JSON types (``"5"`` for a number), empty strings
and out-of-range numbers are rejected before any handler runs, with a message that names
the field. Descriptions are written for a model deciding what to call.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ProcessId = Annotated[
    str,
    Field(
        min_length=1, max_length=64, description="Process id returned by 'start' (6 characters)."
    ),
]
StatusName = Literal["running", "stopped", "exited", "crashed", "not-exists"]


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


class StopInput(ToolInput):
    id: ProcessId
    force: Annotated[
        bool,
        Field(
            description="Kill at once with SIGKILL instead of SIGTERM then SIGKILL after the "
            "grace period (default 5 s). Default false."
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
        Field(ge=1, le=100_000, description="With 'since': at most this many lines. Default 1000."),
    ] = 1000
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
            "lines of the selection are kept. Default 65536.",
        ),
    ] = 64 * 1024
    raw: Annotated[
        bool,
        Field(
            description="Return text as written. Default false: ANSI colour/cursor escapes are "
            "removed and carriage-return progress updates collapse to their final state."
        ),
    ] = False


class ListInput(ToolInput):
    pass


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
    processes: list[ProcessInfo]


class PidResult(ToolOutput):
    id: str
    pid: int | None


class RemoveResult(ProcessInfo):
    removed: bool = True
