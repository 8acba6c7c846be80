"""Every reply and event payload of the supervisor protocol (the ops and their table are
in :mod:`.ops`, which names these too: ``op.StartReply``). A reply is what one op answers;
every reply may carry ``exits``, the ends its session has not heard yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from process_mcp.supervisor.protocol.documents import (
    ByProcess,
    Entry,
    FactsDoc,
    HistoryStats,
    Listed,
    LogAnswerDoc,
    PastDoc,
    PendingDoc,
    ReceiptDoc,
    RecordDoc,
)


@dataclass(frozen=True)
class Reply:
    """Base of every reply: ``exits`` is the digest of ends (see the module docstring)."""

    exits: list[Entry] | None = field(default=None, kw_only=True)


# ------------------------------------------------------------------------------ replies
@dataclass(frozen=True)
class SnapshotReply(Reply):
    records: list[Entry]
    rev: int
    stop_grace: float
    settings: dict[str, str] = field(default_factory=dict)  # supervisor-wide, by variable
    more: bool = False  # another page follows
    history_problem: str | None = None  # only while the history is off: why


@dataclass(frozen=True)
class EntryReply(Reply):
    record: RecordDoc
    rev: int


@dataclass(frozen=True)
class StartReply(Reply):
    record: RecordDoc
    rev: int
    reused: bool = False
    history: HistoryStats | None = None


@dataclass(frozen=True)
class StopReply(Reply):
    record: RecordDoc
    rev: int
    survivors: list[int]


@dataclass(frozen=True)
class StatusReply(Reply):
    """The live record and its facts, or (``record`` None) the earlier run ``past``."""

    record: RecordDoc | None = None
    rev: int | None = None
    facts: FactsDoc | None = None
    containment: str | None = None
    past: PastDoc | None = None


@dataclass(frozen=True)
class ReadLogReply(Reply):
    """The answer, and whose log it is: the live record, or the earlier run ``past``
    (both None: removed while the query ran)."""

    answer: LogAnswerDoc
    record: RecordDoc | None = None
    rev: int | None = None
    past: PastDoc | None = None


@dataclass(frozen=True)
class ListReply(Reply):
    processes: list[Listed]
    older_ended: int = 0  # ended ones in scope held but not listed
    omitted: int = 0  # entries left out to keep the answer within its budget


@dataclass(frozen=True)
class InputReply(Reply):
    record: RecordDoc
    rev: int
    receipt: ReceiptDoc


@dataclass(frozen=True)
class WaitReply(Reply):
    record: RecordDoc
    rev: int
    met: bool
    reason: str
    elapsed: float
    tail: list[str]
    cursor: int
    matched_line: str | None = None
    matched_line_number: int | None = None
    redacted: int = 0


@dataclass(frozen=True)
class WaitExitsReply(Reply):
    met: bool
    reason: str
    elapsed: float
    ended: list[Entry]
    running: list[Entry]
    tails: dict[str, list[str]] = field(default_factory=dict)
    redacted: int = 0


@dataclass(frozen=True)
class FollowReply(Reply):
    on: bool


@dataclass(frozen=True)
class EndSessionReply(Reply):
    stopped: list[str]


@dataclass(frozen=True)
class IdentifyReply(Reply):
    ok: bool = True


@dataclass(frozen=True)
class PendingReply(Reply):
    pending: list[PendingDoc]


@dataclass(frozen=True)
class ApproveReply(Reply):
    approved: PendingDoc | None = None
    declined: PendingDoc | None = None
    recorded: bool = False


@dataclass(frozen=True)
class InfoReply(Reply):
    """What ``process-mcp doctor`` shows of the supervisor."""

    version: str
    pid: int
    uptime: float
    containment: str
    settings: dict[str, str]
    run_settings: dict[str, Any]
    running: int
    held: int
    sessions: int
    history: dict[str, Any]


@dataclass(frozen=True)
class SettingsReply(Reply):
    settings: dict[str, str]
    pid: int


@dataclass(frozen=True)
class RetireReply(Reply):
    stopped: list[str]
    pid: int


# ------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Removed(ByProcess):
    rev: int


class Output(ByProcess):
    """New output of a followed process (a change notice: the lines are read with ``read_log``)."""


@dataclass(frozen=True)
class HistoryState:
    """The history went off (``problem`` says why) or works again (None)."""

    problem: str | None


@dataclass(frozen=True)
class Progress:
    token: str
    elapsed: float
    message: str
