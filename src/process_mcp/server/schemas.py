"""Wire shapes of every tool: strict inputs, declared outputs (camelCase on the wire).

Inputs are strict: unknown fields, wrong JSON types (``"5"`` for a number), empty strings
and out-of-range numbers are rejected before any handler runs, with a message that names
the field. What a model sees of them (:func:`input_schema`) is portable and small: every
property has a ``type``; an optional parameter is simply not ``required`` (no ``anyOf``
with ``null``, no ``default: null``); no ``$ref``, no ``exclusiveMinimum``, no titles.

Outputs are declared by the models below and are truthful about slim answers: a field
with a default is left out of an answer when it has that default, and is not
``required``; a required field is always there (see ``server/answers.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from process_mcp.core import Status, limits
from process_mcp.core.logs.query import DEFAULT_LIMIT, DEFAULT_MAX_BYTES
from process_mcp.core.signals import SIGNALS
from process_mcp.core.waiting import DEFAULT_TIMEOUT, MAX_TAIL_LINES, MAX_TIMEOUT, TAIL_LINES

ProcessId = Annotated[str, Field(min_length=1, max_length=64, description="Process id.")]
# Wire vocabularies and defaults come from the core, so a change there shows here.
StatusName = Literal[tuple(status.value for status in Status)]  # type: ignore[valid-type]
EndedStatus = Literal["stopped", "exited", "crashed"]
SignalName = Literal[tuple(SIGNALS)]  # type: ignore[valid-type]
StdinName = Literal["null", "pipe"]

Args = Annotated[list[str], Field(description="Arguments, passed as-is.")]
Env = Annotated[dict[str, str], Field(description="Variables added to the server's environment.")]
Stdin = Annotated[StdinName, Field(description="'pipe' keeps stdin open for send-input.")]
Pty = Annotated[
    bool,
    Field(
        description="Run under a pseudo-terminal (for programs that need one); input via "
        "send-input."
    ),
]
Timeout = Annotated[
    float, Field(gt=0, allow_inf_nan=False, description="Stop it after this many seconds.")
]


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
    notify_on_exit: Annotated[
        bool, Field(description="Send a process/exit notification when it ends.")
    ] = False
    shell: Annotated[
        bool,
        Field(description="Run command through /bin/sh -c (pipes, &&, globs); args must be empty."),
    ] = False
    stdin: Stdin = "null"
    pty: Pty = False
    timeout_seconds: Timeout | None = None
    label: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=limits.MAX_LABEL_CHARS,
            description="Name shown by list; unique while running.",
        ),
    ] = None
    reuse: Annotated[
        bool,
        Field(description="With label: if a process with that label runs, answer it instead."),
    ] = False
    keep: Annotated[
        bool,
        Field(description="Outlive this session (then only stop/remove end it)."),
    ] = False


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
    grep: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=limits.MAX_PATTERN_CHARS,
            description="Regular expression (RE2): matching lines only.",
        ),
    ] = None
    context: Annotated[
        int, Field(ge=0, le=100, description="With grep: lines shown around each match.")
    ] = 0
    max_bytes: Annotated[
        int,
        Field(
            ge=256, le=limits.MAX_ANSWER_BYTES, description="Size cap of the lines; newest kept."
        ),
    ] = DEFAULT_MAX_BYTES
    raw: Annotated[bool, Field(description="Text as written (colours and \\r updates kept).")] = (
        False
    )


class ListInput(ToolInput):
    all: Annotated[
        bool,
        Field(description="List every process, not only those whose cwd is in this folder."),
    ] = False


class SendInputInput(ToolInput):
    id: ProcessId
    text: Annotated[
        str,
        Field(max_length=1024 * 1024, description="Written as-is: end a line with \\n."),
    ] = ""
    eof: Annotated[bool, Field(description="Then end the input.")] = False


class SignalInput(ToolInput):
    id: ProcessId
    signal: Annotated[SignalName, Field(description="Signal to send.")]


AS_AT_START = "As in start."


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


class WaitInput(ToolInput):
    id: Annotated[str | None, Field(min_length=1, max_length=64, description="Process id.")] = None
    ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]] | None,
        Field(min_length=1, max_length=1000, description="Instead of id: wait for these to end."),
    ] = None
    mode: Annotated[
        Literal["any", "all"], Field(description="With ids: the first to end, or all.")
    ] = "any"
    pattern: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=limits.MAX_PATTERN_CHARS,
            description="Regular expression (RE2) for a log line (whole log searched).",
        ),
    ] = None
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
            description=f"Last lines of output to include (default 0 if met, {TAIL_LINES} if not).",
        ),
    ] = None


# ----------------------------------------------------------------- outputs
# Required fields are always in an answer; a field with a default is left out at it.
class ProcessInfo(ToolOutput):
    """start and restart."""

    id: str
    pid: int | None
    status: StatusName
    command: str
    args: list[str]
    cwd: str
    exit_code: int | None = None
    signal: str | None = None
    notify_on_exit: bool = False
    label: str | None = None
    shell: bool = False
    stdin: StdinName = "null"
    pty: bool = False
    timeout_seconds: float | None = None
    restarts: int = 0
    reused: bool = False


class StopResult(ToolOutput):
    id: str
    pid: int | None
    status: StatusName
    exit_code: int | None = None
    signal: str | None = None
    timed_out: bool = False
    tree_gone: bool
    survivors: list[int] = []


class StartResult(ProcessInfo):
    history: dict[str, int | float | None] | None = Field(
        None,
        description="Earlier runs of the same command, args and cwd: {runs, failures "
        "(crashed), medianSeconds}. Absent on a first run.",
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
    notify_on_exit: bool = False
    label: str | None = None
    shell: bool = False
    stdin: StdinName = "null"
    pty: bool = False
    timeout_seconds: float | None = None
    timed_out: bool = False
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


class LogResult(ToolOutput):
    id: str
    status: StatusName
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


class ListResult(ToolOutput):
    processes: list[ListedProcess]


class PidResult(ToolOutput):
    id: str
    pid: int | None
    notice: str | None = None


class RemoveResult(ToolOutput):
    id: str
    pid: int | None
    status: StatusName
    exit_code: int | None = None
    signal: str | None = None
    removed: bool


class InputResult(ToolOutput):
    id: str
    status: StatusName
    bytes_written: int = 0
    bytes_pending: int = 0
    stdin_open: bool


class SignalResult(ToolOutput):
    id: str
    pid: int | None
    status: StatusName
    exit_code: int | None = None
    signal: str | None = None
    sent: SignalName


class EndedProcess(ToolOutput):
    id: str
    status: StatusName
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


# ------------------------------------------------------------- JSON schemas
def input_schema(model: type[ToolInput]) -> dict[str, Any]:
    """``model``'s input schema, portable (see the module docstring) and without the
    validation details a model need not read (titles, string lengths, patterns): the
    server still enforces them, with errors that name the field."""
    schema = model.model_json_schema(by_alias=True)
    properties = {name: _portable(prop) for name, prop in schema.get("properties", {}).items()}
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if schema.get("required"):
        out["required"] = schema["required"]
    out["additionalProperties"] = False
    return out


_PLAIN_DEFAULTS: list[Any] = [None, False, [], "", "null"]
_DROPPED = {
    "title",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "exclusiveMinimum",
    "exclusiveMaximum",
}


def _portable(prop: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in prop:
        branches = [branch for branch in prop["anyOf"] if branch.get("type") != "null"]
        assert len(branches) == 1, f"cannot make {prop} portable"
        prop = {**branches[0], **{k: v for k, v in prop.items() if k != "anyOf"}}
    out = {key: value for key, value in prop.items() if key not in _DROPPED}
    if "default" in out and out["default"] in _PLAIN_DEFAULTS:
        del out["default"]  # null, false, [], "" and "null" go without saying
    if "items" in out:
        out["items"] = _portable(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _portable(out["additionalProperties"])
    return out


NULLABLE_WHEN_ENDED = ("exitCode", "signal")  # null in an answer once ended, not otherwise


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s serialization schema, inlined and compact: no titles, descriptions,
    defaults or enums (the tool description says what matters), and ``null`` allowed only
    where an answer can carry it (a required nullable field, or ``exitCode``/``signal``:
    any other field at ``null`` is left out). ``required`` lists exactly the fields every
    answer carries."""
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    out = _compact(schema, schema.get("$defs", {}))
    for name, field in model.model_fields.items():
        alias = field.alias or name
        prop = out["properties"][alias]
        nullable_type = isinstance(prop.get("type"), list)
        if nullable_type and not field.is_required() and alias not in NULLABLE_WHEN_ENDED:
            prop["type"] = next(t for t in prop["type"] if t != "null")
        item = get_args(field.annotation)[0] if get_origin(field.annotation) is list else None
        if isinstance(item, type) and issubclass(item, BaseModel):
            out["properties"][alias] = {"type": "array", "items": output_schema(item)}
    return out


def _compact(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _compact(defs[node["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in node:
        branches = [_compact(branch, defs) for branch in node["anyOf"]]
        if all(set(branch) == {"type"} for branch in branches):
            return {"type": [branch["type"] for branch in branches]}
        other = [branch for branch in branches if branch != {"type": "null"}]
        if len(other) == 1:
            merged = dict(other[0])
            merged["type"] = [merged["type"], "null"]
            return merged
        return {"anyOf": branches}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "description", "default", "enum", "$defs"):
            continue
        if key == "properties":
            value = {name: _compact(prop, defs) for name, prop in value.items()}
        elif key == "items":
            value = _compact(value, defs)
        out[key] = value
    return out
