"""A front-end's copy of the supervisor's records: :class:`RecordMirror`, and
:class:`PastView` of a run only an earlier supervisor's history holds.

Synchronous lookups (``find``, ``get``, ``records``) read it; it is fed by the
supervisor's record events (``changed``/``exited``/``removed``) and by every answer that
carries a record. Each carries the supervisor's ``rev``: the mirror applies a record only
if it is newer than what it holds, so several sessions feeding one mirror (an HTTP
front-end) can never make it go back in time, and a session's own answers are in the
mirror before the call that asked returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from process_mcp.core import ProcessRecord, Status, UnknownProcess
from process_mcp.core.options import StartOptions
from process_mcp.supervisor.protocol.documents import Entry, PastDoc, RecordDoc


def _fill(record: ProcessRecord, doc: RecordDoc) -> None:
    record.pid = doc.pid
    record.status = Status(doc.status)
    record.command = doc.command
    record.args = list(doc.args)
    record.cwd = doc.cwd
    record.exit_code = doc.exit_code
    record.signal = doc.signal
    record.started_at = doc.started_at or record.started_at
    record.ended_at = doc.ended_at
    record.notify_on_exit = doc.notify_on_exit
    record.options = StartOptions(
        shell=doc.shell,
        stdin="pipe" if doc.stdin == "pipe" else "null",
        pty=doc.pty,
        timeout_seconds=doc.timeout_seconds,
        label=doc.label,
    )
    record.timed_out = doc.timed_out
    record.restarts = doc.restarts
    record.reason = doc.reason


def record_of(doc: RecordDoc) -> ProcessRecord:
    """A core record holding what a client may know of it (its public fields)."""
    record = ProcessRecord(
        id=doc.id, command=doc.command, args=[], cwd="", env={}, notify_on_exit=False
    )
    _fill(record, doc)
    return record


class RecordMirror:
    """Every record the supervisor holds, as of the newest ``rev`` seen (see the module
    docstring). Listeners: ``on_list`` when a process appears or is removed, ``on_ended``
    once per end of a run (whichever session reported it)."""

    def __init__(self) -> None:
        self._records: dict[str, ProcessRecord] = {}
        self._revs: dict[str, int] = {}
        self._removed: dict[str, int] = {}  # id -> rev of its removal
        self._fresh: set[str] | None = None  # ids applied while a snapshot comes in
        self.list_listeners: list[Callable[[], None]] = []
        self.ended_listeners: list[Callable[[ProcessRecord], None]] = []

    def find(self, process_id: str) -> ProcessRecord | None:
        return self._records.get(process_id)

    def get(self, process_id: str) -> ProcessRecord:
        try:
            return self._records[process_id]
        except KeyError:
            raise UnknownProcess(process_id, list(self._records)) from None

    def records(self) -> list[ProcessRecord]:
        return list(self._records.values())

    def ids(self) -> list[str]:
        return list(self._records)

    def apply(self, entry: Entry) -> ProcessRecord:
        """Take ``entry`` if newer than what is held; returns the mirrored record (or, for
        a stale entry of a record removed since, one built from it)."""
        doc, rev = entry.record, entry.rev
        process_id = doc.id
        held = self._records.get(process_id)
        if rev <= self._revs.get(process_id, -1) or rev <= self._removed.get(process_id, -1):
            return held if held is not None else record_of(doc)
        self._revs[process_id] = rev
        if self._fresh is not None:
            self._fresh.add(process_id)
        if held is None:  # new to us: not an end we saw happen
            held = record_of(doc)
            self._records[process_id] = held
            self._removed.pop(process_id, None)
            self._tell_list()
            return held
        was_running, started = held.running, held.started_at
        _fill(held, doc)
        if not held.running and (was_running or held.started_at != started):
            for listener in list(self.ended_listeners):
                listener(held)
        return held

    def remove(self, process_id: str, rev: int) -> None:
        if rev <= self._revs.get(process_id, -1):
            return
        self._removed[process_id] = rev
        self._revs.pop(process_id, None)
        if self._records.pop(process_id, None) is not None:
            self._tell_list()

    def replace(self, entries: list[Entry]) -> None:
        """A fresh supervisor's snapshot: forget what it does not hold."""
        self.begin_replace()
        for entry in entries:
            self.apply(entry)
        self.end_replace(entries)

    def begin_replace(self) -> None:
        """A snapshot comes (in pages, with events between them): revisions count from
        the new supervisor's 0; what is applied from now on is current."""
        self._revs = {pid: -1 for pid in self._revs}  # a new supervisor counts from 0
        self._removed.clear()
        self._fresh = set()

    def end_replace(self, entries: list[Entry]) -> None:
        """The snapshot is complete: forget what it did not hold, unless an event since
        its start brought it."""
        known = {entry.record.id for entry in entries} | (self._fresh or set())
        self._fresh = None
        for process_id in [pid for pid in self._records if pid not in known]:
            del self._records[process_id]
            self._revs.pop(process_id, None)
            self._tell_list()

    def _tell_list(self) -> None:
        for listener in list(self.list_listeners):
            listener()


@dataclass(frozen=True)
class PastView:
    """A run an earlier supervisor recorded (from its history), as the supervisor sent it:
    what ``get-status`` and ``get-log`` show of an id no live record has."""

    doc: PastDoc

    @property
    def id(self) -> str:
        return self.doc.id

    @property
    def process_id(self) -> str:
        return self.id

    @property
    def status(self) -> str:
        return self.doc.status

    @property
    def log_dropped_bytes(self) -> int | None:
        return self.doc.log_dropped_bytes

    def public(self) -> dict[str, Any]:
        return self.doc.public()
