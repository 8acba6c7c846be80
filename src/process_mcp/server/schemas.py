"""Wire shapes of every tool: strict inputs, declared outputs (camelCase on the wire).

Inputs are strict: unknown fields, wrong JSON types (``"5"`` for a number), empty strings
and out-of-range numbers are rejected before any handler runs, with a message that names
the field. What a model sees of them is portable and small (see :mod:`.portable`, which
makes the JSON schemas of these models).

Outputs are declared by the models below and are truthful about slim answers: a field
with a default is left out of an answer when it has that default, and is not
``required``; a required field is always there (see ``server/answers.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from process_mcp.core import Status, limits
from process_mcp.core.logs.query import DEFAULT_LIMIT, DEFAULT_MAX_BYTES
from process_mcp.core.records import END_STATUSES
from process_mcp.core.signals import SIGNALS
from process_mcp.core.waiting import DEFAULT_TIMEOUT, MAX_TAIL_LINES, MAX_TIMEOUT, TAIL_LINES

ProcessId = Annotated[str, Field(min_length=1, max_length=64, description="Process id.")]
# Wire vocabularies and defaults come from the core, so a change there shows here.
StatusName = Literal[tuple(status.value for status in Status)]  # type: ignore[valid-type]
EndedStatus = Literal[END_STATUSES]  # type: ignore[valid-type]
SignalName = Literal[tuple(SIGNALS)]  # type: ignore[valid-type]
StdinName = Literal["null", "pipe"]

Args = Annotated[list[str], Field(description="Arguments, passed as-is.")]
Env = Annotated[dict[str, str], Field(description="Variables added to the server's environment.")]
Stdin = Annotated[StdinName, Field(description="'pipe' keeps stdin open for send-input.")]
Pty = Annotated[
    bool,
    Field(description="Run under a pseudo-terminal; input via send-input."),
]
Timeout = Annotated[
    float, Field(gt=0, allow_inf_nan=False, description="Stop it after this many seconds.")
]


def _text(max_length: int, description: str) -> Any:
    """An optional, non-empty text parameter of at most ``max_length`` characters."""
    return Field(None, min_length=1, max_length=max_length, description=description)


class ToolInput(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=False, frozen=True
    )


class ToolOutput(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# ------------------------------------------------------------------ inputs
AS_AT_START = "As in start."
# The request id the person approved (a refusal that asks says so); no description: the
# refusal's text explains it, and tool definitions are paid for on every turn.
Approval = Annotated[str | None, Field(max_length=64, description="Approved request.")]


class StartInput(ToolInput):
    command: Annotated[
        str,
        Field(
            min_length=1,
            max_length=limits.MAX_COMMAND_BYTES,
            description="Program (looked up in PATH), or a whole command line with shell: true.",
        ),
    ]
    args: Args = []
    cwd: Annotated[
        str | None,
        Field(min_length=1, description="Working directory; relative to the default folder."),
    ] = None
    env: Env | None = None
    notify_on_exit: bool = Field(
        False, description="Send a process/exit notification when it ends."
    )
    shell: bool = Field(
        False, description="Run command through /bin/sh -c (pipes, &&, globs); args must be empty."
    )
    stdin: Stdin = "null"
    pty: Pty = False
    timeout_seconds: Timeout | None = None
    label: str | None = _text(limits.MAX_LABEL_CHARS, "Name shown by list; unique while running.")
    reuse: bool = Field(
        False, description="With label: if a process with that label runs, answer it instead."
    )
    keep: bool = Field(False, description="Outlive this session (then only stop/remove end it).")
    approval: Approval = None


class StopInput(ToolInput):
    id: ProcessId
    force: Annotated[bool, Field(description="SIGKILL at once.")] = False


class IdInput(ToolInput):
    id: ProcessId


class GetLogInput(ToolInput):
    id: ProcessId
    last_lines: Annotated[int | None, Field(ge=1, description="Only the newest N lines.")] = None
    since: Annotated[
        int | None,
        Field(ge=0, description="Only lines numbered above N: pass the last nextCursor."),
    ] = None
    limit: Annotated[int, Field(ge=1, le=100_000, description="With since: at most N lines.")] = (
        DEFAULT_LIMIT
    )
    stream: Annotated[Literal["stdout", "stderr", "all"], Field(description="Which output.")] = (
        "all"
    )
    grep: str | None = _text(
        limits.MAX_PATTERN_CHARS, "Regular expression (RE2): matching lines only."
    )
    context: Annotated[
        int, Field(ge=0, le=100, description="With grep: lines shown around each match.")
    ] = 0
    max_bytes: Annotated[
        int,
        Field(
            ge=256, le=limits.MAX_ANSWER_BYTES, description="Size cap of the lines; newest kept."
        ),
    ] = DEFAULT_MAX_BYTES
    raw: bool = Field(False, description="Text as written (colours and \\r updates kept).")


class ListInput(ToolInput):
    all: bool = Field(False, description="Every folder, not only this one.")
    ended: int = Field(10, ge=0, le=1000, description="Ended ones to list, newest first.")


class SendInputInput(ToolInput):
    id: ProcessId
    text: Annotated[
        str,
        Field(max_length=1024 * 1024, description="Written as-is: end a line with \\n."),
    ] = ""
    eof: Annotated[bool, Field(description="Then end the input.")] = False
    approval: Annotated[str | None, Field(max_length=64, description=AS_AT_START)] = None


class SignalInput(ToolInput):
    id: ProcessId
    signal: Annotated[SignalName, Field(description="Signal to send.")]


class RestartInput(ToolInput):
    id: ProcessId
    args: Annotated[list[str] | None, Field(description=AS_AT_START)] = None
    cwd: Annotated[str | None, Field(min_length=1, description=AS_AT_START)] = None
    env: Annotated[
        dict[str, str] | None, Field(description="As in start; replaces the old overlay.")
    ] = None
    stdin: Annotated[StdinName | None, Field(description=AS_AT_START)] = None
    pty: Annotated[bool | None, Field(description=AS_AT_START)] = None
    timeout_seconds: Annotated[
        float | None, Field(gt=0, allow_inf_nan=False, description=AS_AT_START)
    ] = None
    approval: Annotated[str | None, Field(max_length=64, description=AS_AT_START)] = None


class WaitInput(ToolInput):
    id: Annotated[str | None, Field(min_length=1, max_length=64, description="Process id.")] = None
    ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]] | None,
        Field(min_length=1, max_length=1000, description="Instead of id: wait for these to end."),
    ] = None
    mode: Annotated[
        Literal["any", "all"], Field(description="With ids: the first to end, or all.")
    ] = "any"
    pattern: str | None = _text(
        limits.MAX_PATTERN_CHARS, "Regular expression (RE2) for a log line (whole log searched)."
    )
    port: Annotated[
        int | None, Field(ge=1, le=65535, description="TCP port its tree listens on.")
    ] = None
    url: Annotated[
        str | None,
        Field(min_length=1, pattern=r"^https?://", description="http(s) URL that answers < 500."),
    ] = None
    timeout_seconds: Annotated[
        float, Field(gt=0, le=MAX_TIMEOUT, description="Give up after this long.")
    ] = DEFAULT_TIMEOUT
    tail_lines: Annotated[
        int | None,
        Field(
            ge=0,
            le=MAX_TAIL_LINES,
            description=f"Output lines to include (default {TAIL_LINES} if unmet or crashed, "
            "else 0).",
        ),
    ] = None


# ----------------------------------------------------------------- outputs
# Required fields are always in an answer; a field with a default is left out at it.
class Outcome(ToolOutput):
    """What an act on one process answers first (its fields lead, in this order)."""

    id: str
    pid: int | None
    status: StatusName
    exit_code: int | None = None
    signal: str | None = None


class ShownOptions(ToolOutput):
    """The start options an answer about one process shows (left out at their defaults).

    Pydantic lists the fields of the bases from the last one named, then the class's own:
    ``class X(ShownOptions, Head)`` has Head's fields, then these, then X's (the order the
    output schemas and answers have always had)."""

    notify_on_exit: bool = False
    label: str | None = None
    shell: bool = False
    stdin: StdinName = "null"
    pty: bool = False
    timeout_seconds: float | None = None


class _StartedHead(ToolOutput):
    id: str
    pid: int | None
    status: StatusName
    command: str
    args: list[str]
    cwd: str
    exit_code: int | None = None
    signal: str | None = None


class ProcessInfo(ShownOptions, _StartedHead):
    """start and restart."""

    restarts: int = 0
    reused: bool = False


class StopResult(Outcome):
    timed_out: bool = False
    reason: str | None = None  # a limit that ended it
    tree_gone: bool
    survivors: list[int] = []


class StartResult(ProcessInfo):
    history: dict[str, int | float | None] | None = Field(
        None,
        description="Earlier runs of the same command, args and cwd: {runs, failures "
        "(crashed), medianSeconds}. Absent on a first run.",
    )


class _Named(ToolOutput):
    """An answer about one process that leads with its id and status (no pid first)."""

    id: str
    status: StatusName


class _StatusHead(_Named):
    pid: int | None = None
    command: str | None = None
    args: list[str] | None = None
    cwd: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


class StatusResult(ShownOptions, _StatusHead):
    timed_out: bool = False
    reason: str | None = None  # a limit that ended it
    restarts: int = 0
    cpu_percent: float = 0.0
    memory_bytes: int = 0
    process_count: int = 0
    listening_ports: list[int] = []
    idle_seconds: float = 0.0
    log_bytes: int = 0
    containment: Literal["cgroup", "group"] | None = Field(
        None,
        description="'cgroup': the tree has its own cgroup (nothing forked in it escapes a "
        "stop); 'group': process group plus ownership mark (cgroups not writable here).",
    )


class LogResult(_Named):
    lines: list[str]
    next_cursor: int
    first_line: int | None = None
    last_line: int | None = None
    total_lines: int = 0
    truncated: bool = False
    omitted_lines: int = 0
    dropped_bytes: int = 0
    lost_bytes: int = 0
    cut_lines: int = 0
    pending_lines: int = 0
    missed_lines: int = 0
    redacted: int = 0  # secrets masked in lines
    notice: str | None = None


class ListedProcess(ToolOutput):
    id: str
    pid: int | None
    status: StatusName
    command: str
    label: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    started_at: str | None = None
    listening_ports: list[int] = []
    owner: Literal["self", "other", "kept"] = Field(
        description="This session's, another session's, or kept (no session's)."
    )
    command_cut: bool = False


class ListResult(ToolOutput):
    processes: list[ListedProcess]
    older_ended: int = 0
    omitted: int = 0


class PidResult(ToolOutput):
    id: str
    pid: int | None
    notice: str | None = None


class RemoveResult(Outcome):
    removed: bool


class InputResult(_Named):
    bytes_written: int = 0
    bytes_pending: int = 0
    stdin_open: bool


class SignalResult(Outcome):
    sent: SignalName


class EndedProcess(_Named):
    exit_code: int | None = None
    signal: str | None = None
    tail: list[str] = []


class WaitResult(ToolOutput):
    met: bool
    reason: Literal["pattern", "port", "url", "exited", "timeout"]
    elapsed_seconds: float
    id: str | None = None
    status: StatusName | None = None
    matched_line: str | None = None
    matched_line_number: int | None = None
    exit_code: int | None = None
    signal: str | None = None
    next_cursor: int | None = None  # always there for one process (0: no output yet)
    tail: list[str] = []
    ended: list[EndedProcess] = []
    running: list[str] = []
    redacted: int = 0  # secrets masked in matchedLine and the tails
