"""Every op of the supervisor service: its request (``args``), its reply (``ok``), and the
events the service pushes — each a typed object with one encode and one decode.

Ops (request → reply; ``record, rev`` is an :class:`Entry` inlined)::

    snapshot    Snapshot {page}         → SnapshotReply {records: [Entry], rev, stop_grace,
                                          settings, more, history_problem}  (pages within
                                          2 MiB; history_problem only while history is off)
    start       StartRequest            → StartReply {record, rev, reused, history}
    stop        Stop {id, force}        → StopReply {record, rev, survivors}
    status      Status {id}             → StatusReply {record, rev, facts, containment}
                                          | {record: null, past}
    read_log    ReadLog {id, query}     → ReadLogReply {record, rev, answer} | {past, answer}
    list        ListProcesses {folder, all, facts, ended, command_chars}
                                        → ListReply {processes: [Listed], older_ended,
                                          omitted}  (bounded: supervisor/listing.py)
    remove      Remove {id}             → EntryReply {record, rev}
    send_input  SendInput {id, text, eof} → InputReply {record, rev, receipt}
    signal      Signal {id, signal}     → EntryReply
    restart     Restart {id, folder, changes} → EntryReply
    wait        Wait {id, timeout, pattern, port, url, progress, tail_lines} → WaitReply
    wait_exits  WaitExits {ids, timeout, all, progress, tail_lines} → WaitExitsReply
    follow_output FollowOutput {on, interval} → FollowReply {on}
    end_session EndSession              → EndSessionReply {stopped}
    identify    Identify {name, version, session} → IdentifyReply {ok}  (the audit's actor)
    pending     PendingList             → PendingReply {pending: [PendingDoc]}
    approve     Approve {id, via, decline, tripwire} → ApproveReply {approved, declined,
                                          recorded}
    info        Info                    → InfoReply {version, pid, uptime, containment,
                                          settings, run_settings, running, held, sessions,
                                          history}
    settings    SettingsQuery           → SettingsReply {settings, pid}
    retire      Retire {now}            → RetireReply {stopped, pid}  (then it exits)

``start``, ``restart`` and ``send_input`` carry an optional ``approval`` (a request id the
person approved); ``start`` also ``force`` (honoured for the person's CLI only);
``read_log`` ``redact`` (the person's CLI reads raw unless it asks).

Every reply may also carry ``exits: [Entry]``: the ends of processes the session started
or touched that happened before the reply was made (the ``events`` digest).

Events: ``changed`` and ``exited`` (an :class:`Entry`), ``removed {id, rev}``,
``output {id}``, ``progress {token, elapsed, message}``, ``history {problem}``.

Numbers are checked at decode (see :mod:`.codec`): a wait's ``timeout`` must be finite and
within ``0 .. MAX_WAIT_SECONDS``, so no request can make a wait that never ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from process_mcp.core.options import RestartChanges, StartRequest
from process_mcp.supervisor.protocol.codec import (
    bounded,
    decode_object,
    decode_trusted,
    encode_value,
)
from process_mcp.supervisor.protocol.documents import ByProcess, Entry, LogQueryArgs
from process_mcp.supervisor.protocol.framing import ProtocolError
from process_mcp.supervisor.protocol.replies import (
    ApproveReply,
    EndSessionReply,
    EntryReply,
    FollowReply,
    HistoryState,
    IdentifyReply,
    InfoReply,
    InputReply,
    ListReply,
    Output,
    PendingReply,
    Progress,
    ReadLogReply,
    Removed,
    Reply,
    RetireReply,
    SettingsReply,
    SnapshotReply,
    StartReply,
    StatusReply,
    StopReply,
    WaitExitsReply,
    WaitReply,
)

MAX_WAIT_SECONDS = 86_400.0  # a day: longer than any tool or CLI wait, and finite
MAX_TAIL_LINES = 1000


# ----------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class NoArgs:
    """Base of a request that carries nothing (``args`` is ``{}``): its op is all it says.
    A subclass adds no field, so it needs no ``@dataclass`` of its own (as for
    :class:`~.documents.ByProcess`)."""


@dataclass(frozen=True)
class Snapshot:
    """Page ``page`` of the records (0 first; the session hears every change from then)."""

    page: int = bounded(0, 0, None)


@dataclass(frozen=True)
class Stop(ByProcess):
    force: bool = False


class Status(ByProcess):
    """A process's record and live facts (or an earlier run's, from the history)."""


@dataclass(frozen=True)
class ReadLog(ByProcess):
    query: LogQueryArgs = field(default_factory=LogQueryArgs)
    redact: bool = False


@dataclass(frozen=True)
class ListProcesses:
    folder: str | None = None
    all: bool = False
    facts: bool = False
    ended: int | None = bounded(None, 0, 1000)  # None: the default (10)
    command_chars: int | None = bounded(None, 8, 2000)  # None: 120


class Remove(ByProcess):
    """Forget an ended process and delete its log (``ProcessRunning`` while it runs)."""


@dataclass(frozen=True)
class SendInput(ByProcess):
    text: str = ""
    eof: bool = False
    approval: str | None = None


@dataclass(frozen=True)
class Signal(ByProcess):
    signal: str


@dataclass(frozen=True)
class Restart(ByProcess):
    folder: str | None = None
    changes: RestartChanges | None = None
    approval: str | None = None


@dataclass(frozen=True)
class Wait(ByProcess):
    timeout: float = bounded(30.0, 0, MAX_WAIT_SECONDS)
    pattern: str | None = None
    port: int | None = bounded(None, 0, 65535)
    url: str | None = None
    progress: str | None = None
    tail_lines: int | None = bounded(None, 0, MAX_TAIL_LINES)


@dataclass(frozen=True)
class WaitExits:
    ids: list[str]
    timeout: float = bounded(30.0, 0, MAX_WAIT_SECONDS)
    all: bool = False
    progress: str | None = None
    tail_lines: int = bounded(0, 0, MAX_TAIL_LINES)


@dataclass(frozen=True)
class FollowOutput:
    on: bool
    interval: float | None = bounded(None, 0, 3600)


class EndSession(NoArgs):
    """The front-end is leaving: stop what its session owns (not kept), then answer."""


@dataclass(frozen=True)
class Identify:
    name: str = ""
    version: str = ""
    session: str | None = None


class PendingList(NoArgs):
    """The requests waiting for the person's approval."""


class Info(NoArgs):
    """What ``process-mcp doctor`` shows of the supervisor."""


@dataclass(frozen=True)
class Approve:
    id: str
    via: str | None = None
    decline: bool = False
    tripwire: str | None = None


class SettingsQuery(NoArgs):
    """The supervisor's settings (by variable) and its pid."""


@dataclass(frozen=True)
class Retire:
    now: bool = False


OPS: dict[str, tuple[type, type[Reply]]] = {
    "snapshot": (Snapshot, SnapshotReply),
    "start": (StartRequest, StartReply),
    "stop": (Stop, StopReply),
    "status": (Status, StatusReply),
    "read_log": (ReadLog, ReadLogReply),
    "list": (ListProcesses, ListReply),
    "remove": (Remove, EntryReply),
    "send_input": (SendInput, InputReply),
    "signal": (Signal, EntryReply),
    "restart": (Restart, EntryReply),
    "wait": (Wait, WaitReply),
    "wait_exits": (WaitExits, WaitExitsReply),
    "follow_output": (FollowOutput, FollowReply),
    "end_session": (EndSession, EndSessionReply),
    "identify": (Identify, IdentifyReply),
    "pending": (PendingList, PendingReply),
    "approve": (Approve, ApproveReply),
    "info": (Info, InfoReply),
    "settings": (SettingsQuery, SettingsReply),
    "retire": (Retire, RetireReply),
}
EVENTS: dict[str, type] = {
    "changed": Entry,
    "exited": Entry,
    "removed": Removed,
    "output": Output,
    "progress": Progress,
    "history": HistoryState,
}
_OP_OF: dict[type, str] = {request: op for op, (request, _) in OPS.items()}


def op_name(request: Any) -> str:
    """The op a request object is (``start`` for a StartRequest)."""
    try:
        return _OP_OF[type(request)]
    except KeyError:
        raise TypeError(f"not a supervisor request: {request!r}") from None


def encode_request(request: Any) -> tuple[str, dict[str, Any]]:
    """``(op, args)`` for the envelope's Request."""
    return op_name(request), encode_value(request)


def decode_request(op: str, args: Any) -> Any:
    """The typed request of ``op``; ``unknown_op`` or ``bad_request`` naming the field."""
    entry = OPS.get(op)
    if entry is None:
        raise ProtocolError(
            "unknown_op", f"unknown op {op!r}; this supervisor knows {', '.join(OPS)}"
        )
    return decode_object(entry[0], args, op)


def encode_reply(reply: Reply) -> dict[str, Any]:
    body = encode_value(reply)
    if body.get("exits") is None:
        del body["exits"]
    return body


def decode_reply(op: str, ok: Any) -> Any:
    """The typed reply to ``op`` (from the supervisor the handshake matched: its shape
    checked, unknown fields refused; see ``codec.decode_trusted``)."""
    return decode_trusted(OPS[op][1], ok, f"{op} reply")


def encode_event(name: str, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, EVENTS[name]):
        raise TypeError(f"event {name!r} carries {EVENTS[name].__name__}, not {payload!r}")
    return encode_value(payload)


def decode_event(name: str, data: Any) -> Any:
    """The typed payload of event ``name``; ProtocolError for an unknown event."""
    kind = EVENTS.get(name)
    if kind is None:
        raise ProtocolError("bad_message", f"unknown event {name!r}")
    return decode_trusted(kind, data, f"{name} event")
