"""The documents that replies and events carry: a process's record, its live facts, an
earlier run, a ``list`` line, a log query and its answer, an input receipt.

Each is the snake_case wire form of something a client shows in camelCase (the MCP
answers, ``process-mcp ps --json``): :meth:`Document.from_public` reads the camelCase
shape the core produces (``ProcessRecord.public()``, live facts, ``Run.public()``), and
:meth:`Document.public` gives it back key for key, in the same order — so the supervisor
hop changes no answer. A key the core adds to one of those shapes must be added here too
(decoding refuses an unknown field, so a forgotten one fails loudly, not silently).

Plain (not frozen) dataclasses, to be treated as values: ``list`` makes one per record,
and a frozen dataclass's ``__init__`` costs several times more.

``LogQueryArgs`` and ``ReceiptDoc`` mirror the core's ``LogQuery`` and ``InputReceipt``
field for field (a test holds them equal): the core's classes live beside an event loop
and a regex engine the person's CLI does not load. ``LogAnswerDoc`` and the core's
``LogAnswer`` share their fields instead (``core/logs/answer.py``, standard library only).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

from process_mcp.core.logs.answer import LogAnswerFields
from process_mcp.supervisor.protocol.codec import bounded, build, camel, field_names, snake

D = TypeVar("D", bound="Document")


@functools.cache
def _keys(cls: type) -> tuple[str, ...]:
    """The camelCase keys of ``cls``'s public shape, in field order."""
    return tuple(camel(name) for name in field_names(cls))


class Document:
    """Base of the documents that have a camelCase public shape (see the module docstring)."""

    @classmethod
    def from_public(cls: type[D], public: dict[str, Any]) -> D:
        """The document of a shape the core made (trusted: built, not checked; a key this
        document lacks raises TypeError). The usual case, the keys in the order of the
        fields, is built positionally: ``list`` builds one per record."""
        if tuple(public) == _keys(cls):
            return cls(*public.values())
        return build(cls, {snake(key): value for key, value in public.items()})

    def public(self) -> dict[str, Any]:
        return {camel(name): value for name, value in vars(self).items()}


@dataclass
class RecordDoc(Document):
    """A process's record (``ProcessRecord.public()``; its environment never travels)."""

    id: str
    pid: int | None
    status: str
    command: str
    args: list[str]
    cwd: str
    exit_code: int | None
    signal: str | None
    started_at: str
    ended_at: str | None
    notify_on_exit: bool
    label: str | None
    shell: bool
    stdin: str
    pty: bool
    timeout_seconds: float | None
    timed_out: bool
    restarts: int
    reason: str | None = None  # a limit that ended the run


@dataclass
class Entry:
    """A record and the supervisor-wide revision it was sent at (newer ``rev`` wins)."""

    record: RecordDoc
    rev: int


@dataclass(frozen=True)
class ByProcess:
    """Base of a request or event about one process: ``id`` is its id, always the first
    field (so ``Stop(id, force)`` is built positionally). A subclass that adds no field
    needs no ``@dataclass`` of its own: it inherits ``__init__``, ``__eq__`` (same class
    only), ``__repr__`` (its own name) and frozenness."""

    id: str


def fields_of(obj: Any) -> dict[str, Any]:
    """A dataclass's fields by name, shallow: what a core object and its wire document
    share. (``dataclasses.asdict`` deep-copies every list: a get-log of 100 lines paid
    for two copies of them on each side of the socket.)"""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


ENTRY_OVERHEAD = 600  # an entry's fixed fields as JSON, at most


def wire_size(text: str) -> int:
    """An upper bound of ``text``'s size in the wire's ASCII-only JSON, cheap for ASCII
    (12 bytes per other character: a surrogate pair of ``\\uXXXX`` escapes)."""
    return len(text) + 2 if text.isascii() else 12 * len(text) + 2


def entry_size(entry: Entry) -> int:
    """An upper bound of ``entry``'s size on the wire, from its texts alone."""
    doc = entry.record
    texts = (doc.command, doc.cwd, doc.label or "", doc.reason or "", *doc.args)
    return ENTRY_OVERHEAD + sum(wire_size(text) + 1 for text in texts)


@dataclass
class FactsDoc(Document):
    """A running tree's live facts (CPU, memory, processes, ports, idle time, log size)."""

    cpu_percent: float | None = None
    memory_bytes: int | None = None
    process_count: int | None = None
    listening_ports: list[int] = field(default_factory=list)
    idle_seconds: float | None = None
    log_bytes: int | None = None


@dataclass
class HistoryStats(Document):
    """Earlier runs of the same command, args and cwd, as the history knew at start."""

    runs: int
    failures: int
    median_seconds: float | None


@dataclass
class PastDoc(Document):
    """A run an earlier supervisor recorded (``Run.public()``), with the bytes of its log
    deleted (``log_dropped_bytes``: None while the log is kept; never in ``public()``)."""

    id: str
    run: int
    status: str
    command: str
    args: list[str]
    cwd: str
    label: str | None
    started_at: str
    ended_at: str | None
    seconds: float | None
    exit_code: int | None
    signal: str | None
    log_bytes: int | None
    log_dropped_bytes: int | None = None

    def public(self) -> dict[str, Any]:
        out = super().public()
        del out["logDroppedBytes"]
        return out


@dataclass
class Listed:
    """One line of ``list``, slim and bounded whatever the record holds: no ``args``; the
    command line (``command_line``: the command as typed) and ``cwd`` cut short, each cut
    one flagged; the end once ended; its listening ports; whose it is from the asking
    session's point of view; and (asked for) live facts."""

    id: str
    pid: int | None
    status: str
    command_line: str
    cwd: str
    started_at: str
    owner: Literal["self", "other", "kept"]
    label: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    ended_at: str | None = None
    listening_ports: list[int] = field(default_factory=list)
    command_cut: bool = False
    cwd_cut: bool = False
    facts: FactsDoc | None = None

    def public(self) -> dict[str, Any]:
        """As ``ps --json`` prints it (camelCase), fields at their default left out (the
        end only once ended)."""
        out: dict[str, Any] = {"id": self.id, "pid": self.pid, "status": self.status}
        if self.label is not None:
            out["label"] = self.label
        out["commandLine"] = self.command_line
        if self.command_cut:
            out["commandCut"] = True
        out["cwd"] = self.cwd
        if self.cwd_cut:
            out["cwdCut"] = True
        out["startedAt"] = self.started_at
        if self.status != "running":
            out.update(exitCode=self.exit_code, signal=self.signal, endedAt=self.ended_at)
        if self.listening_ports:
            out["listeningPorts"] = self.listening_ports
        out["owner"] = self.owner
        if self.facts is not None:
            out["facts"] = self.facts.public()
        return out


@dataclass
class LogQueryArgs:
    """``LogQuery``'s fields as a request carries them (``grep`` as its source text)."""

    last_lines: int | None = bounded(None, 0, None)
    since: int | None = bounded(None, 0, None)
    limit: int = bounded(1000, 1, None)
    stream: Literal["all", "stdout", "stderr"] = "all"
    grep: str | None = None
    context: int = bounded(0, 0, None)
    max_bytes: int = bounded(64 * 1024, 1, None)
    raw: bool = False


@dataclass
class LogAnswerDoc(LogAnswerFields):
    """``LogAnswer``'s fields (both extend :class:`LogAnswerFields`): lines and their
    numbers, the cursor, and what was left out."""


@dataclass
class PendingDoc:
    """A request waiting for the person's approval (``process-mcp pending``)."""

    id: str
    action: str
    command: str
    rule: str | None
    source: str | None
    reason: str
    actor: str
    approved: bool
    expires_in: int


@dataclass
class ReceiptDoc:
    """``InputReceipt``'s fields: bytes taken, bytes queued, whether more can be sent."""

    bytes_written: int
    bytes_pending: int
    stdin_open: bool
