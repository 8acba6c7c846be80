"""A front-end's side of the supervisor service: the process manager seen through one session.

:class:`RemoteManager` offers what a front-end used of the in-process
:class:`~process_mcp.core.ProcessManager` — ``start``, ``stop``, ``read_log``, ``restart``,
``wait_for``, ... — as requests to :mod:`process_mcp.supervisor.service`, returning the
core's own types (``ProcessRecord``, ``StopResult``, ``LogAnswer``, ``InputReceipt``,
``WaitOutcome``) and raising the core's own errors (``UnknownProcess``, ``InvalidRequest``,
``ProcessRunning``, ``StartFailed``) with the supervisor's text, so the layer above changes
little. Some calls became one request each, because their facts live in the supervisor:
``status`` (record + live facts, or an earlier run's record), ``read_log_of`` (the log
and whose it is: a live record or an earlier run), ``summaries`` (the scoped ``list``
with owners) and ``wait_for_exits`` (with the tails asked for).

Ends of processes this session started or touched reach ``exit_listeners`` as soon as the
supervisor publishes them (notifications), and ``digest_listeners`` with the answer that
reports them (the ``events`` digest: exactly the ends that happened before that answer).

Synchronous lookups (``find``, ``get``, ``records``) read a
:class:`~process_mcp.supervisor.mirror.RecordMirror`. Every request and reply is a typed
object of :mod:`process_mcp.supervisor.protocol.ops`: nothing here spells the wire.

Every ``start`` carries the front-end's environment (captured once, without
``PROCESS_MCP_TOKEN``) and its default folder (settable: MCP roots may change it), so a
child sees what it would have seen had the front-end spawned it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from process_mcp.core import (
    InvalidRequest,
    ProcessError,
    ProcessRecord,
    StopResult,
    UnknownProcess,
)
from process_mcp.core.carry import carried, init_names
from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.logs.query import LogAnswer, LogQuery
from process_mcp.core.options import RestartChanges, StartRequest
from process_mcp.core.spawn.stdin import InputReceipt
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.core.waiting import ExitsOutcome, WaitCondition, WaitOutcome
from process_mcp.supervisor.caller import (
    FAILURES,
    RemoteUnknownProcess,
    SupervisorLost,
    caller_run_settings,
    captured_environment,
    current_approval,
)
from process_mcp.supervisor.client import RequestFailed, SupervisorClient, SupervisorGone
from process_mcp.supervisor.mirror import PastView, RecordMirror, record_of
from process_mcp.supervisor.protocol import Event, MessageTooLarge, ProtocolError
from process_mcp.supervisor.protocol import ops as op
from process_mcp.supervisor.protocol.documents import Entry, LogQueryArgs, fields_of

logger = logging.getLogger(__name__)

__all__ = [
    "PastView",
    "RecordMirror",
    "RemoteManager",
    "SupervisorLost",
    "captured_environment",
    "current_approval",
]

ExitListener = Callable[[ProcessRecord, "RemoteManager"], None]
DigestListener = Callable[[list[ProcessRecord], "RemoteManager"], None]
ProgressFn = Callable[[float, str], Awaitable[None]]
R = TypeVar("R", bound=op.Reply)
_QUERY_FIELDS = tuple(f.name for f in dataclasses.fields(LogQueryArgs))  # what a query sends


class RemoteManager:
    """One supervisor session, used like the core's ProcessManager (module docstring).

    ``client_key`` names whom this session serves (an MCP client), for exit listeners;
    ``default_folder`` (None: ``folder_fallback()``) is where a ``start`` without ``cwd``
    runs and what ``listed`` is scoped to.
    """

    def __init__(
        self,
        mirror: RecordMirror,
        *,
        env: dict[str, str] | None = None,
        folder_fallback: Callable[[], str] = os.getcwd,
        client_key: str = "default",
    ) -> None:
        self.mirror = mirror
        self.env = captured_environment() if env is None else env
        self.run_settings = caller_run_settings(self.env)  # sent with each start
        self.folder_fallback = folder_fallback
        self.default_folder: str | None = None
        self.client_key = client_key
        self.identified = False  # the audit knows its client (see identify)
        self.client: SupervisorClient | None = None
        self.exit_listeners: list[ExitListener] = []
        self.digest_listeners: list[DigestListener] = []
        self.output_listeners: list[Callable[[str], None]] = []
        self.history_listeners: list[Callable[[str | None], None]] = []  # why it is off
        self._progress: dict[str, ProgressFn] = {}
        self._tokens = itertools.count(1)
        self._tasks = BackgroundTasks()

    @property
    def closed(self) -> bool:
        return self.client is None or self.client.closed

    @property
    def folder(self) -> str:
        return self.default_folder or self.folder_fallback()

    # ------------------------------------------------------------------ plumbing
    def on_event(self, event: Event) -> None:
        """The client's event callback: runs on the loop, in arrival order."""
        try:
            payload = op.decode_event(event.event, event.data)
        except ProtocolError as exc:
            logger.debug("ignored supervisor event %s: %s", event.event, exc.message)
            return
        match payload:
            case Entry() if event.event == "exited":
                self.mirror.apply(payload)
                record = record_of(payload.record)  # as it ended, whatever came since
                for listener in list(self.exit_listeners):
                    listener(record, self)
            case Entry():
                self.mirror.apply(payload)
            case op.Removed(id=process_id, rev=rev):
                self.mirror.remove(process_id, rev)
            case op.Output(id=process_id):
                for output_listener in list(self.output_listeners):
                    output_listener(process_id)
            case op.HistoryState(problem=problem):
                for history_listener in list(self.history_listeners):
                    history_listener(problem)
            case op.Progress(token=token, elapsed=elapsed, message=message):
                report = self._progress.get(token)
                if report is not None:
                    self._tasks.spawn(report(elapsed, message))

    async def call(self, request: Any, process_id: str | None = None) -> Any:
        """One request (a typed object of ``protocol.ops``) and its typed reply; supervisor
        errors become the core's exceptions, and the reply's ``exits`` reach the mirror
        and the digest listeners before this returns."""
        if self.client is None:
            raise SupervisorLost("not connected to the process-mcp supervisor")
        if (approval := current_approval.get()) and getattr(request, "approval", "") is None:
            request = dataclasses.replace(request, approval=approval)
        name, args = op.encode_request(request)
        try:
            reply: op.Reply = op.decode_reply(name, await self.client.request(name, args))
        except RequestFailed as exc:
            if exc.code == "UnknownProcess":
                raise RemoteUnknownProcess(exc.message, process_id or "") from None
            error = FAILURES.get(exc.code)
            if error is not None:
                raise error(exc.message) from None
            raise SupervisorLost(
                f"the supervisor failed '{name}' ({exc.code}): {exc.message}"
            ) from None
        except SupervisorGone as exc:
            raise SupervisorLost(
                f"lost the process-mcp supervisor during '{name}' ({exc}); its processes "
                "were ended with it. Call the tool again: a new supervisor is started."
            ) from None
        except MessageTooLarge as exc:
            raise InvalidRequest(exc.message) from None
        except ProtocolError as exc:  # a reply this version cannot read
            raise SupervisorLost(f"the supervisor's answer to '{name}': {exc.message}") from None
        if reply.exits:
            for entry in reply.exits:
                self.mirror.apply(entry)
            ended = [record_of(entry.record) for entry in reply.exits]  # as they ended
            for listener in list(self.digest_listeners):
                listener(ended, self)
        return reply

    def _apply(self, reply: Any) -> ProcessRecord:
        """The mirrored record of a reply that carries ``record`` and ``rev``."""
        return self.mirror.apply(Entry(reply.record, reply.rev))

    # ------------------------------------------------------- synchronous lookups
    def find(self, process_id: str) -> ProcessRecord | None:
        return self.mirror.find(process_id)

    def get(self, process_id: str) -> ProcessRecord:
        return self.mirror.get(process_id)

    def records(self) -> list[ProcessRecord]:
        return self.mirror.records()

    # --------------------------------------------------------------------- ops
    async def identify(self, name: str, version: str, session: str | None) -> None:
        """Tell the supervisor who the client is, for its audit (an older one: skipped)."""
        self.identified = True
        with contextlib.suppress(SupervisorLost):
            await self.call(op.Identify(name, version, session))

    async def snapshot(self) -> op.SnapshotReply:
        """Load the mirror (the supervisor's records, page after page); returns the last
        page's reply (the supervisor's settings) with every record."""
        self.mirror.begin_replace()
        entries: list[Entry] = []
        page = 0
        while True:
            reply: op.SnapshotReply = await self.call(op.Snapshot(page))
            entries.extend(reply.records)
            for entry in reply.records:
                self.mirror.apply(entry)
            if not reply.more:
                break
            page += 1
        self.mirror.end_replace(entries)
        return dataclasses.replace(reply, records=entries)

    async def start(self, request: StartRequest) -> ProcessRecord:
        """``ProcessManager.start`` in the supervisor, with this front-end's environment
        as the base and :attr:`folder` as the default folder where the request names
        none; ``request.keep``: no session owns it. The record carries ``history`` as the
        core's does."""
        return (await self._start(dataclasses.replace(request, reuse=False)))[0]

    async def start_or_reuse(self, request: StartRequest) -> tuple[ProcessRecord, bool]:
        """``ProcessManager.start_or_reuse`` in the supervisor (any session's process with
        the label counts); ``keep`` applies only to a process it starts."""
        return await self._start(dataclasses.replace(request, reuse=True))

    async def _start(self, request: StartRequest) -> tuple[ProcessRecord, bool]:
        request = dataclasses.replace(
            request,
            base_env=self.env if request.base_env is None else request.base_env,
            folder=request.folder or self.folder,
            run_settings=request.run_settings or self.run_settings,
        )
        reply: op.StartReply = await self.call(request)
        record = self._apply(reply)
        record.history = None if reply.history is None else reply.history.public()
        return record, reply.reused

    async def stop(self, process_id: str, force: bool = False) -> StopResult:
        reply: op.StopReply = await self.call(op.Stop(process_id, force), process_id)
        return StopResult(self._apply(reply), list(reply.survivors))

    async def status(
        self, process_id: str
    ) -> tuple[ProcessRecord | None, dict[str, Any] | None, PastView | None]:
        """``(record, facts, None)``: the record and its live facts (``containment``
        always, the rest while it runs); ``(None, None, past)`` for an id only the history
        knows; ``(None, None, None)`` for an unknown id."""
        reply: op.StatusReply = await self.call(op.Status(process_id), process_id)
        if reply.record is None:
            return None, None, None if reply.past is None else PastView(reply.past)
        record = self._apply(reply)
        facts = {} if reply.facts is None else reply.facts.public()
        if reply.containment is not None:
            facts["containment"] = reply.containment
        return record, facts, None

    async def read_log(self, process_id: str, query: LogQuery) -> LogAnswer:
        return (await self.read_log_of(process_id, query))[1]

    async def read_log_of(
        self, process_id: str, query: LogQuery
    ) -> tuple[ProcessRecord | PastView, LogAnswer]:
        """The answer to ``query`` on the log of ``process_id``, and whose log it is: the
        live record, or the earlier run the history holds. Raises UnknownProcess."""
        grep = query.grep.source if isinstance(query.grep, LinePattern) else query.grep
        fields = {name: getattr(query, name) for name in _QUERY_FIELDS}
        args = LogQueryArgs(**{**fields, "grep": grep})
        reply: op.ReadLogReply = await self.call(op.ReadLog(process_id, args), process_id)
        log = LogAnswer(**fields_of(reply.answer))
        if reply.record is None:
            if reply.past is None:  # removed while the query ran
                raise UnknownProcess(process_id, list(self.mirror.ids()))
            return PastView(reply.past), log
        return self._apply(reply), log

    async def listed(self, everything: bool = False) -> list[dict[str, Any]]:
        """The ``list`` op's slim lines as ``ps --json`` shows them (``owner``:
        self/other/kept, ``commandLine``), of the processes under the default folder
        (``everything``: all)."""
        reply: op.ListReply = await self.call(op.ListProcesses(self.folder, everything))
        return [process.public() for process in reply.processes]

    async def summaries(
        self, everything: bool = False, folder: str | None = None
    ) -> list[dict[str, Any]]:
        """``ProcessManager.summaries`` (one line of facts per process, the command line
        cut), scoped to ``folder`` (else :attr:`folder`; ``everything``: all), each with
        ``owner``: the running ones and the newest ended ones (see ``list_summaries``)."""
        return (await self.list_summaries(everything, folder))[0]

    async def list_summaries(
        self, everything: bool = False, folder: str | None = None, ended: int | None = None
    ) -> tuple[list[dict[str, Any]], int, int]:
        """``(summaries, older_ended, omitted)``: every running process in scope and at
        most ``ended`` ended ones (None: the supervisor's default, 10), how many more ended
        ones it holds in scope, and how many lines did not fit the answer."""
        request = op.ListProcesses(folder or self.folder, everything, ended=ended)
        reply: op.ListReply = await self.call(request)
        summaries = [
            {
                "id": p.id,
                "pid": p.pid,
                "status": p.status,
                "label": p.label,
                "command": p.command_line,
                "commandCut": p.command_cut,
                "exitCode": p.exit_code,
                "signal": p.signal,
                "startedAt": p.started_at,
                "listeningPorts": p.listening_ports,
                "owner": p.owner,
            }
            for p in reply.processes
        ]
        return summaries, reply.older_ended, reply.omitted

    async def remove(self, process_id: str) -> ProcessRecord:
        reply: op.EntryReply = await self.call(op.Remove(process_id), process_id)
        self.mirror.remove(process_id, reply.rev)
        return record_of(reply.record)

    async def send_input(self, process_id: str, text: str = "", eof: bool = False) -> InputReceipt:
        reply: op.InputReply = await self.call(op.SendInput(process_id, text, eof), process_id)
        self._apply(reply)
        return InputReceipt(**fields_of(reply.receipt))

    async def send_signal(self, process_id: str, name: str) -> ProcessRecord:
        return self._apply(await self.call(op.Signal(process_id, name), process_id))

    async def restart(
        self,
        process_id: str,
        changes: RestartChanges | None = None,
        default_cwd: str | None = None,
    ) -> ProcessRecord:
        """``ProcessManager.restart`` in the supervisor; a relative ``cwd`` in ``changes``
        resolves against ``default_cwd`` (else :attr:`folder`)."""
        request = op.Restart(process_id, default_cwd or self.folder, changes)
        return self._apply(await self.call(request, process_id))

    async def wait_for(
        self,
        process_id: str,
        condition: WaitCondition,
        timeout: float,
        progress: ProgressFn | None = None,
        tail_lines: int | None = None,
    ) -> WaitOutcome:
        """``core.waiting.wait_for`` run by the supervisor (same ``tail_lines`` rule);
        progress comes back as events. Cancelling the awaiting task cancels the wait there
        (the process runs on)."""
        pattern = None if condition.pattern is None else condition.pattern.source
        with self._progress_token(progress) as token:
            request = op.Wait(
                process_id, timeout, pattern, condition.port, condition.url, token, tail_lines
            )
            reply: op.WaitReply = await self.call(request, process_id)
        return WaitOutcome(
            record=self._apply(reply),
            tail=list(reply.tail),
            **carried(reply, init_names(WaitOutcome, skip=("record", "tail"))),
        )

    async def wait_for_exits(
        self,
        process_ids: list[str],
        every: bool,
        timeout: float,
        progress: ProgressFn | None = None,
        tail_lines: int = 0,
    ) -> tuple[ExitsOutcome, dict[str, list[str]]]:
        """``core.waiting.wait_for_exits`` run by the supervisor, and the newest
        ``tail_lines`` lines (``tail_text``) of each process that ended, by id."""
        with self._progress_token(progress) as token:
            request = op.WaitExits(list(process_ids), timeout, every, token, tail_lines)
            reply: op.WaitExitsReply = await self.call(request)
        outcome = ExitsOutcome(
            met=reply.met,
            reason=reply.reason,
            elapsed=reply.elapsed,
            ended=[self.mirror.apply(entry) for entry in reply.ended],
            running=[self.mirror.apply(entry) for entry in reply.running],
            redacted=reply.redacted,
        )
        return outcome, {key: list(lines) for key, lines in reply.tails.items()}

    @contextlib.contextmanager
    def _progress_token(self, progress: ProgressFn | None) -> Iterator[str | None]:
        """A token the supervisor tags this call's ``progress`` events with (None: none)."""
        if progress is None:
            yield None
            return
        token = str(next(self._tokens))
        self._progress[token] = progress
        try:
            yield token
        finally:
            self._progress.pop(token, None)

    async def follow_output(self, on: bool) -> None:
        await self.call(op.FollowOutput(on))

    async def end_session(self) -> None:
        """Stop what this session owns, then close the connection."""
        if self.client is None:
            return
        try:
            if not self.client.closed:
                await self.call(op.EndSession())
        except (SupervisorLost, ProcessError) as exc:
            logger.warning("ending the supervisor session: %s", exc)
        finally:
            await self.client.close()
