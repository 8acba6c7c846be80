"""The supervisor's handler: one :class:`~process_mcp.core.ProcessManager` shared by every
session, its API mirrored op for op. Ops, requests and replies are typed in
:mod:`process_mcp.supervisor.protocol.ops` and decoded there, strictly (a bad type or
range is a ``bad_request`` naming the field). A core error answers ``{"error": {"code":
<its class name>, "message": <its text>}}``, so a front-end raises the same exception
the in-process core would have.

Guarantees:
- **Ownership.** A process belongs to the session that started it, or to none with
  ``keep``, from its spawn on (before ``start`` awaits anything else); a ``start``
  cancelled after the spawn (a ``cancel``, its session ending) stops that child: its
  caller never learnt its id. When a session ends (``end_session``, or its connection
  closing for any reason, the front-end's SIGKILL included) the running processes it owns
  are stopped as ``stop`` does (SIGTERM to the tree, grace, SIGKILL), in parallel. A
  restart keeps the owner, except that a process whose owner session has ended becomes
  the restarting session's (else no session end would ever stop it again). Kept
  processes end only by ``stop``/``remove``, a person, or the supervisor's shutdown.
- **Env and folder travel with the request.** ``start`` runs the child in ``base_env`` (the
  front-end's whole environment) overlaid with ``env``, in ``cwd`` resolved against
  ``folder`` (the front-end's default folder): the supervisor's own environment and folder
  never reach a child. A restart reuses them (a relative ``cwd`` it changes resolves
  against the restarting front-end's ``folder``).
- **Events.** Every record change goes to every session that loaded a ``snapshot`` (a
  front-end's mirror feed: one session per front-end), numbered by a supervisor-wide
  ``rev`` so a front-end holding several sessions keeps one mirror that never goes back in
  time: ``changed`` (started, restarted, ended), ``removed {id, rev}``. When a process ends,
  the sessions that started it or named it in any op since get ``exited`` (same payload)
  instead, for their exit notifications. Other sessions (an HTTP front-end's
  one per MCP session) hear only those: a start costs O(front-ends), not O(sessions).
- **The ``events`` digest is exact.** Each of those sessions also queues the end, and the
  next successful answer to it carries the queue as ``exits: [entry]`` (an error answer
  leaves it queued). So an answer reports exactly the ends that happened before it was
  made, as the in-process core did, whatever the timing of events on the wire — except
  that ends whose records pass ``EXITS_BYTES`` (huge ``args``) come over the next answers,
  so that no answer passes the wire's limit (``pages.take_exits``).
  Sessions that asked ``follow_output`` get ``output {id}`` at most once a second per
  process (a subscription's change notice, not the data). A ``wait`` with a ``progress``
  token sends ``progress {token, elapsed, message}`` about once a second.
- **Scope.** ``list`` shows the processes whose cwd is ``folder`` or below it (``all``:
  every process), each with ``owner`` (``self``, ``other`` or ``kept``) as the asking
  session sees it. ``busy()`` is true while any process runs (no idle exit under one).
- **Rails** (``rails.py``): every start, restart and input to a shell passes the person's
  policy first; what an agent's session reads is redacted; every op is audited.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from process_mcp.core import ProcessError, ProcessManager, ProcessRecord, Settings, limits
from process_mcp.core.logs.query import LogQuery
from process_mcp.core.options import StartRequest
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.supervisor import drift, listing, pages, upkeep, waits
from process_mcp.supervisor.as_wire import facts_doc, past_doc, record_doc, resolve_folder
from process_mcp.supervisor.protocol import ProtocolError, RequestError
from process_mcp.supervisor.protocol import ops as op
from process_mcp.supervisor.protocol.documents import (
    Entry,
    HistoryStats,
    LogAnswerDoc,
    PastDoc,
    ReceiptDoc,
    fields_of,
)
from process_mcp.supervisor.rails import Rails, masked
from process_mcp.supervisor.ticks import MIN_OUTPUT_INTERVAL, OUTPUT_INTERVAL, OutputTicks
from process_mcp.supervisor.transport import Session

logger = logging.getLogger(__name__)

KEEP_EXITS = 1000  # ends queued per session for its digest; a session away longer hears the newest
OWNER_SELF, OWNER_OTHER, OWNER_KEPT = "self", "other", "kept"

__all__ = ["ProcessService", "make_service"]


class ProcessService:
    """The supervisor's :class:`~process_mcp.supervisor.transport.Handler` (see the module
    docstring). Constructing it builds the manager: subreaper, leftovers of a dead
    supervisor ended (instance ledger), sentinel on the first start."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.manager = ProcessManager(settings or Settings.from_env())
        self.rails = Rails(self.manager)  # policy, approvals, redaction, audit, limits
        self.sessions: dict[str, Session] = {}
        self.owner: dict[str, str | None] = {}  # process id -> owning session id, None: kept
        self.touched: dict[str, set[str]] = {}  # process id -> sessions told of its exit
        self.rev = 0
        self._revs: dict[str, int] = {}
        self._followers: dict[str, OutputTicks] = {}
        self._exits: dict[str, deque[Entry]] = {}  # session id -> ends to report
        self._feeds: set[str] = set()  # sessions that hear every record change
        self._paging: dict[str, pages.Pending] = {}  # session -> the snapshot left to send
        self.started_by: dict[str, str] = {}  # process id -> the session that started it
        self._running_by: Counter[str] = Counter()  # session id -> its starts running
        self._tasks = BackgroundTasks()
        self.server: Any = None  # the transport serving this service (see bind)
        self.born = time.monotonic()
        self.manager.add_exit_listener(self._on_exit)
        self.manager.add_output_listener(self._on_output)
        self.manager.recorder.state_listeners.append(self._on_history_state)
        self.manager.add_forget_listener(self._forget)
        self._ops: dict[str, Callable[[Session, Any], Awaitable[op.Reply]]] = {
            "snapshot": self._snapshot,
            "start": self._start,
            "stop": self._stop,
            "status": self._status,
            "read_log": self._read_log,
            "list": self._list,
            "remove": self._remove,
            "send_input": self._send_input,
            "signal": self._signal,
            "restart": self._restart,
            "wait": lambda session, request: waits.wait(self, session, request),
            "wait_exits": lambda session, request: waits.wait_exits(self, session, request),
            "follow_output": self._follow_output,
            "end_session": self._end_session,
            **self.rails.ops(),
            "info": lambda session, request: upkeep.info(self, session),
            "settings": self._settings,
            "retire": lambda session, request: upkeep.retire(self, session, request.now),
        }
        assert set(self._ops) == set(op.OPS), "every op of the protocol is served"

    # -------------------------------------------------------------- Handler protocol
    async def open_session(self, session: Session) -> None:
        self.sessions[session.id] = session

    async def close_session(self, session: Session) -> None:
        """The connection ended (any way): stop what the session owns."""
        self.sessions.pop(session.id, None)
        self._exits.pop(session.id, None)
        self._feeds.discard(session.id)
        self._running_by.pop(session.id, None)
        self._paging.pop(session.id, None)
        ticks = self._followers.pop(session.id, None)
        if ticks is not None:
            ticks.close()
        stopped = await self._stop_owned(session.id)
        if stopped:
            logger.info("session %s ended: stopped %s", session.id, ", ".join(stopped))

    def busy(self) -> bool:
        return any(record.running for record in self.manager.records())

    async def shutdown(self) -> None:
        await self.rails.close()
        await self.manager.shutdown()

    async def handle(self, session: Session, name: str, args: dict[str, Any]) -> Any:
        """Decode the request (``bad_request`` naming the field at fault), run it, and
        encode the reply with the session's queued ends (``exits``)."""
        try:
            request = op.decode_request(name, args)
        except ProtocolError as exc:
            raise RequestError(exc.code, exc.message) from None
        try:
            reply = await self._ops[name](session, request)
        except ProcessError as exc:
            raise RequestError(type(exc).__name__, str(exc)) from None
        queued = self._exits.get(session.id)
        if queued:
            reply = dataclasses.replace(reply, exits=pages.take_exits(queued))
        return op.encode_reply(reply)

    # -------------------------------------------------------------------- records
    def entry(self, record: ProcessRecord) -> Entry:
        return Entry(record_doc(record), self.rev_of(record))

    def rev_of(self, record: ProcessRecord) -> int:
        return self._revs.get(record.id, self.rev)

    def _changed(self, record: ProcessRecord, ended: bool = False) -> None:
        """Tell every session of the record's new state (``exited`` to those concerned)."""
        self.rev += 1
        self._revs[record.id] = self.rev
        payload = self.entry(record)
        concerned = self.touched.get(record.id, ()) if ended else ()
        for session_id in concerned:
            session = self.sessions.get(session_id)
            if session is not None:
                self._exits.setdefault(session_id, deque(maxlen=KEEP_EXITS)).append(payload)
                session.publish("exited", payload)
        for session_id in self._feeds:
            if session_id not in concerned:
                self.sessions[session_id].publish("changed", payload)

    def touch(self, session: Session, process_id: str) -> None:
        if self.manager.find(process_id) is not None:
            self.touched.setdefault(process_id, set()).add(session.id)

    def _on_exit(self, record: ProcessRecord) -> None:
        starter = self.started_by.get(record.id)
        if starter is not None and self._running_by[starter] > 0:
            self._running_by[starter] -= 1
        for ticks in self._followers.values():
            ticks.forget(record.id)
        self._changed(record, ended=True)

    def _on_output(self, process_id: str) -> None:
        if not self._followers:  # the drain's hot path: nothing to do for nobody
            return
        for ticks in self._followers.values():
            ticks.touch(process_id)

    def _forget(self, process_id: str) -> None:
        """A record left (``remove``, or an ended one left memory for the history): so
        does every table of it here, and the front-ends' mirrors are told."""
        self.rev += 1
        self._revs.pop(process_id, None)
        self.owner.pop(process_id, None)
        self.touched.pop(process_id, None)
        self.started_by.pop(process_id, None)
        self.rails.forget(process_id)
        for ticks in self._followers.values():
            ticks.forget(process_id)
        for session_id in self._feeds:
            self.sessions[session_id].publish("removed", op.Removed(process_id, self.rev))

    def _check_session_cap(self, session: Session) -> None:
        """Refuse a start past the session's own cap (never because of other sessions)."""
        running = self._running_by[session.id]
        if running >= limits.MAX_SESSION_PROCESSES:
            raise RequestError(
                "InvalidRequest",
                f"this session has {running} processes running, the limit per session is "
                f"{limits.MAX_SESSION_PROCESSES}; 'stop' some first ('list' shows them)",
            )

    def bind(self, server: Any) -> None:
        """The transport serving this service: its idle timeout is a setting, and
        ``retire`` stops it."""
        self.server = server

    def wide_settings(self) -> dict[str, str]:
        """This supervisor's supervisor-wide settings, by variable (``drift.py``)."""
        return upkeep.supervisor_view(self.manager.settings, self.server)

    async def _settings(self, session: Session, request: op.SettingsQuery) -> op.SettingsReply:
        """The supervisor-wide settings in force, for a caller to compare with its own."""
        return op.SettingsReply(self.wide_settings(), os.getpid())

    def owner_of(self, session: Session, process_id: str) -> str:
        owner = self.owner.get(process_id)
        if owner is None:
            return OWNER_KEPT
        return OWNER_SELF if owner == session.id else OWNER_OTHER

    async def _stop_owned(self, session_id: str) -> list[str]:
        ids = [
            record.id
            for record in self.manager.records()
            if record.running and self.owner.get(record.id) == session_id
        ]
        results = await asyncio.gather(
            *(self.manager.stop(process_id) for process_id in ids), return_exceptions=True
        )
        for process_id, result in zip(ids, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, ProcessError):
                logger.error("stopping %s of an ended session failed: %r", process_id, result)
        return ids

    # ------------------------------------------------------------------------ ops
    async def _snapshot(self, session: Session, request: op.Snapshot) -> op.SnapshotReply:
        """One page of every record (``page`` 0 first: the session hears every change from
        then on); ``more`` until the last (``pages.py``: within the message limit)."""
        if request.page == 0:
            self._feeds.add(session.id)
            self._paging[session.id] = pages.Pending(self.manager.records())
        pending = self._paging.get(session.id) or pages.Pending([])
        entries = pending.page(self.manager, self.entry)
        if not pending:
            self._paging.pop(session.id, None)
        grace, problem = self.manager.settings.stop_grace, self.manager.recorder.problem
        return op.SnapshotReply(
            entries, self.rev, grace, self.wide_settings(), bool(pending), problem
        )

    def _on_history_state(self, problem: str | None) -> None:
        """Every session that holds a snapshot hears the history go off or on again."""
        for session_id in self._feeds:
            self.sessions[session_id].publish("history", op.HistoryState(problem))

    async def _start(self, session: Session, request: StartRequest) -> op.StartReply:
        folder = resolve_folder(request.folder)
        request = dataclasses.replace(request, folder=folder, cwd=request.cwd or None)
        self.rails.check_start(session, request, self.manager.records(), self.owner)
        drift.check_run_settings(request.run_settings)
        if not request.reuse:
            self._check_session_cap(session)
        spawned: list[ProcessRecord] = []

        def own(record: ProcessRecord) -> None:  # at the spawn, before any other await
            spawned.append(record)
            self.owner[record.id] = None if request.keep else session.id
            self.touched[record.id] = {session.id}
            self.started_by[record.id] = session.id
            self.rails.remember(record.id, folder)
            self._running_by[session.id] += 1
            self._changed(record)

        try:
            if request.reuse:  # the running process with that label, else a new one
                record, reused = await self.manager.start_or_reuse(request, own)
            else:
                record, reused = await self.manager.start(request, own), False
        except asyncio.CancelledError:
            for child in spawned:  # its caller is gone and never heard its id
                logger.warning("start of %s cancelled after its spawn: stopping it", child.id)
                self._tasks.spawn(self.manager.stop(child.id))
            raise
        self.rails.memory.wake()
        if reused:
            self.touch(session, record.id)
        stats = None if record.history is None else HistoryStats.from_public(record.history)
        return op.StartReply(record_doc(record), self.rev_of(record), reused, stats)

    async def _stop(self, session: Session, request: op.Stop) -> op.StopReply:
        self.touch(session, request.id)
        self.rails.record(session, "stop", request.id, "force" if request.force else None)
        result = await self.manager.stop(request.id, force=request.force)
        record = result.record
        return op.StopReply(record_doc(record), self.rev_of(record), result.survivors)

    async def _status(self, session: Session, request: op.Status) -> op.StatusReply:
        record = self.manager.find(request.id)
        if record is None:
            return op.StatusReply(past=await self._past(request.id))
        self.touch(session, request.id)
        return op.StatusReply(
            record_doc(record),
            self.rev_of(record),
            facts_doc(self.manager.live_facts(request.id)),
            self.manager.containment,
        )

    async def _past(self, process_id: str) -> PastDoc | None:
        """The newest run of ``process_id`` an earlier supervisor recorded, or None."""
        try:
            run = await self.manager.past(process_id)
        except ProcessError:
            return None
        return past_doc(run)

    async def _read_log(self, session: Session, request: op.ReadLog) -> op.ReadLogReply:
        process_id = request.id
        self.touch(session, process_id)
        past = None
        if self.manager.find(process_id) is None:  # an earlier run: read from the history
            past = past_doc(await self.manager.past(process_id))  # raises UnknownProcess
        record = self.manager.find(process_id) if past is None else None
        mask = self.rails.cut_mask(session, record, request.redact)  # cut lines: masked first
        query = LogQuery(**fields_of(request.query), mask=mask)
        answer = LogAnswerDoc(**fields_of(await self.manager.read_log(process_id, query)))
        record = self.manager.find(process_id) if past is None else None
        answer.lines, found = masked(mask, answer.lines)  # the cut lines' redactor
        answer.redacted += found
        if record is None:  # an earlier run, or removed while the query ran
            return op.ReadLogReply(answer, past=past)
        return op.ReadLogReply(answer, record_doc(record), self.rev_of(record))

    async def _list(self, session: Session, request: op.ListProcesses) -> op.ListReply:
        """Bounded whatever the records hold (``listing.py``); reads memory only, unless
        ``ended`` asks for more ended processes than memory holds."""
        folder = None if request.all else resolve_folder(request.folder)
        return await listing.build(
            self.manager, request, folder, lambda process_id: self.owner_of(session, process_id)
        )

    async def _remove(self, session: Session, request: op.Remove) -> op.EntryReply:
        process_id = request.id
        record = await self.manager.remove(process_id)
        self._forget(process_id)
        return op.EntryReply(record_doc(record), self.rev)

    async def _send_input(self, session: Session, request: op.SendInput) -> op.InputReply:
        self.touch(session, request.id)
        self.rails.check_input(session, self.manager.get(request.id), request.text, request)
        receipt = await self.manager.send_input(request.id, request.text, eof=request.eof)
        record = self.manager.get(request.id)
        receipt_doc = ReceiptDoc(**fields_of(receipt))
        return op.InputReply(record_doc(record), self.rev_of(record), receipt_doc)

    async def _signal(self, session: Session, request: op.Signal) -> op.EntryReply:
        self.touch(session, request.id)
        self.rails.record(session, "signal", request.id, request.signal)
        record = await self.manager.send_signal(request.id, request.signal)
        return op.EntryReply(record_doc(record), self.rev_of(record))

    async def _restart(self, session: Session, request: op.Restart) -> op.EntryReply:
        process_id = request.id
        self.touch(session, process_id)
        folder = None if request.folder is None else resolve_folder(request.folder)
        self.rails.check_restart(
            session,
            self.manager.get(process_id),
            request,
            folder,
            self.manager.records(),
            self.owner,
        )
        record = await self.manager.restart(process_id, request.changes, default_cwd=folder)
        self.rails.memory.wake()
        owner = self.owner.get(process_id)
        if owner is not None and owner not in self.sessions:
            self.owner[process_id] = session.id
        starter = self.started_by.setdefault(process_id, session.id)
        if record.running:
            self._running_by[starter] += 1
        self._changed(record)
        return op.EntryReply(record_doc(record), self.rev_of(record))

    async def _follow_output(self, session: Session, request: op.FollowOutput) -> op.FollowReply:
        if request.on:  # ``interval``: the person's ``logs -f`` asks for more than one a second
            interval = max(request.interval or OUTPUT_INTERVAL, MIN_OUTPUT_INTERVAL)
            self._followers.setdefault(session.id, OutputTicks(session, interval))
        else:
            ticks = self._followers.pop(session.id, None)
            if ticks is not None:
                ticks.close()
        return op.FollowReply(request.on)

    async def _end_session(self, session: Session, request: op.EndSession) -> op.EndSessionReply:
        """The front-end is leaving: stop what it owns and answer once that is done (its
        connection closing next then finds nothing left to stop)."""
        return op.EndSessionReply(await self._stop_owned(session.id))


def make_service() -> ProcessService:
    """The supervisor's default handler factory: settings from the environment (the
    supervisor sets ``PROCESS_MCP_STATE_DIR`` to its ``--state-dir`` first)."""
    return ProcessService()
