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

Synchronous lookups (``find``, ``get``, ``records``) read a :class:`RecordMirror`, fed by
the supervisor's record events (``changed``/``exited``/``removed``) and by every answer
that carries a record. Each carries the supervisor's ``rev``: the mirror applies a record
only if it is newer than what it holds, so several sessions feeding one mirror (an HTTP
front-end) can never make it go back in time, and a session's own answers are in the
mirror before the call that asked returns.

Every ``start`` carries the front-end's environment (captured once, without
``PROCESS_MCP_TOKEN``) and its default folder (settable: MCP roots may change it), so a
child sees what it would have seen had the front-end spawned it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from process_mcp.core import (
    InvalidRequest,
    ProcessError,
    ProcessRecord,
    ProcessRunning,
    StartFailed,
    Status,
    StopResult,
    UnknownProcess,
)
from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.logs.query import LogAnswer, LogQuery
from process_mcp.core.options import RestartChanges, StartOptions
from process_mcp.core.spawn.stdin import InputReceipt
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.core.waiting import ExitsOutcome, WaitCondition, WaitOutcome
from process_mcp.supervisor.client import RequestFailed, SupervisorClient, SupervisorGone
from process_mcp.supervisor.protocol import Event, MessageTooLarge

logger = logging.getLogger(__name__)

PRIVATE_VARIABLES = ("PROCESS_MCP_TOKEN",)  # never passed on to a child (SPEC §9)

ExitListener = Callable[[ProcessRecord, "RemoteManager"], None]
DigestListener = Callable[[list[ProcessRecord], "RemoteManager"], None]
ProgressFn = Callable[[float, str], Awaitable[None]]


def captured_environment() -> dict[str, str]:
    """This front-end's environment as its children should see it."""
    return {k: v for k, v in os.environ.items() if k not in PRIVATE_VARIABLES}


@dataclass(frozen=True)
class PastView:
    """A run an earlier supervisor recorded (from its history), as the supervisor sent it:
    what ``get-status`` and ``get-log`` show of an id no live record has."""

    facts: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.facts["id"])

    @property
    def process_id(self) -> str:
        return self.id

    @property
    def status(self) -> str:
        return str(self.facts["status"])

    @property
    def log_dropped_bytes(self) -> int | None:
        return self.facts.get("logDroppedBytes")

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.facts.items() if k != "logDroppedBytes"}


class SupervisorLost(ProcessError):
    """The supervisor connection ended, or the supervisor failed a request unexpectedly."""


class _RemoteUnknownProcess(UnknownProcess):
    """``UnknownProcess`` with the supervisor's text (it knows the ids)."""

    def __init__(self, message: str, process_id: str) -> None:
        ProcessError.__init__(self, message)
        self.process_id = process_id


_ERRORS: dict[str, type[ProcessError]] = {
    "InvalidRequest": InvalidRequest,
    "ProcessRunning": ProcessRunning,
    "StartFailed": StartFailed,
}


def _fill(record: ProcessRecord, public: dict[str, Any]) -> None:
    record.pid = public.get("pid")
    record.status = Status(public["status"])
    record.command = public.get("command", record.command)
    record.args = list(public.get("args") or [])
    record.cwd = public.get("cwd") or ""
    record.exit_code = public.get("exitCode")
    record.signal = public.get("signal")
    record.started_at = public.get("startedAt") or record.started_at
    record.ended_at = public.get("endedAt")
    record.notify_on_exit = bool(public.get("notifyOnExit"))
    record.options = StartOptions(
        shell=bool(public.get("shell")),
        stdin=public.get("stdin") or "null",
        pty=bool(public.get("pty")),
        timeout_seconds=public.get("timeoutSeconds"),
        label=public.get("label"),
    )
    record.timed_out = bool(public.get("timedOut"))
    record.restarts = int(public.get("restarts") or 0)


def record_from_public(public: dict[str, Any]) -> ProcessRecord:
    """A core record holding what a client may know of it (``public()`` read back)."""
    record = ProcessRecord(
        id=public["id"], command=public["command"], args=[], cwd="", env={}, notify_on_exit=False
    )
    _fill(record, public)
    return record


class RecordMirror:
    """Every record the supervisor holds, as of the newest ``rev`` seen (see the module
    docstring). Listeners: ``on_list`` when a process appears or is removed, ``on_ended``
    once per end of a run (whichever session reported it)."""

    def __init__(self) -> None:
        self._records: dict[str, ProcessRecord] = {}
        self._revs: dict[str, int] = {}
        self._removed: dict[str, int] = {}  # id -> rev of its removal
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

    def apply(self, entry: dict[str, Any]) -> ProcessRecord:
        """Take ``{record, rev}`` if newer than what is held; returns the mirrored record
        (or, for a stale entry of a record removed since, one built from it)."""
        public, rev = entry["record"], int(entry["rev"])
        process_id = public["id"]
        held = self._records.get(process_id)
        if rev <= self._revs.get(process_id, -1) or rev <= self._removed.get(process_id, -1):
            return held if held is not None else record_from_public(public)
        self._revs[process_id] = rev
        if held is None:  # new to us: not an end we saw happen
            held = record_from_public(public)
            self._records[process_id] = held
            self._removed.pop(process_id, None)
            self._tell_list()
            return held
        was_running, started = held.running, held.started_at
        _fill(held, public)
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

    def replace(self, entries: list[dict[str, Any]]) -> None:
        """A fresh supervisor's snapshot: forget what it does not hold."""
        known = {entry["record"]["id"] for entry in entries}
        for process_id in [pid for pid in self._records if pid not in known]:
            del self._records[process_id]
            self._revs.pop(process_id, None)
            self._tell_list()
        self._revs = {pid: -1 for pid in self._revs}  # a new supervisor counts from 0
        self._removed.clear()
        for entry in entries:
            self.apply(entry)

    def _tell_list(self) -> None:
        for listener in list(self.list_listeners):
            listener()


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
        self.folder_fallback = folder_fallback
        self.default_folder: str | None = None
        self.client_key = client_key
        self.client: SupervisorClient | None = None
        self.exit_listeners: list[ExitListener] = []
        self.digest_listeners: list[DigestListener] = []
        self.output_listeners: list[Callable[[str], None]] = []
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
        data = event.data
        match event.event:
            case "changed":
                self.mirror.apply(data)
            case "exited":
                self.mirror.apply(data)
                record = record_from_public(data["record"])  # as it ended, whatever came since
                for listener in list(self.exit_listeners):
                    listener(record, self)
            case "removed":
                self.mirror.remove(data["id"], int(data["rev"]))
            case "output":
                for output_listener in list(self.output_listeners):
                    output_listener(data["id"])
            case "progress":
                report = self._progress.get(str(data.get("token")))
                if report is not None:
                    self._tasks.spawn(
                        report(float(data.get("elapsed", 0)), str(data.get("message", "")))
                    )
            case _:
                logger.debug("ignored supervisor event %s", event.event)

    async def call(self, op: str, args: dict[str, Any], process_id: str | None = None) -> Any:
        """One request; supervisor errors become the core's exceptions."""
        if self.client is None:
            raise SupervisorLost("not connected to the process-mcp supervisor")
        try:
            answer = await self.client.request(op, args)
        except RequestFailed as exc:
            if exc.code == "UnknownProcess":
                raise _RemoteUnknownProcess(exc.message, process_id or "") from None
            error = _ERRORS.get(exc.code)
            if error is not None:
                raise error(exc.message) from None
            raise SupervisorLost(
                f"the supervisor failed '{op}' ({exc.code}): {exc.message}"
            ) from None
        except SupervisorGone as exc:
            raise SupervisorLost(
                f"lost the process-mcp supervisor during '{op}' ({exc}); its processes were "
                "ended with it. Call the tool again: a new supervisor is started."
            ) from None
        except MessageTooLarge as exc:
            raise InvalidRequest(exc.message) from None
        exits = answer.pop("exits", None) if isinstance(answer, dict) else None
        if exits:
            for entry in exits:
                self.mirror.apply(entry)
            ended = [record_from_public(entry["record"]) for entry in exits]  # as they ended
            for listener in list(self.digest_listeners):
                listener(ended, self)
        return answer

    def _apply(self, answer: dict[str, Any]) -> ProcessRecord:
        return self.mirror.apply(answer)

    # ------------------------------------------------------- synchronous lookups
    def find(self, process_id: str) -> ProcessRecord | None:
        return self.mirror.find(process_id)

    def get(self, process_id: str) -> ProcessRecord:
        return self.mirror.get(process_id)

    def records(self) -> list[ProcessRecord]:
        return self.mirror.records()

    # --------------------------------------------------------------------- ops
    async def snapshot(self) -> dict[str, Any]:
        """Load the mirror (the supervisor's records); returns the supervisor's settings."""
        answer = await self.call("snapshot", {})
        self.mirror.replace(answer["records"])
        return answer

    async def start(
        self,
        command: str,
        args: list[str] | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        notify_on_exit: bool = False,
        options: StartOptions | None = None,
        default_cwd: str | None = None,
        keep: bool = False,
    ) -> ProcessRecord:
        """``ProcessManager.start`` in the supervisor, with this front-end's environment
        as the base and ``default_cwd`` (else :attr:`folder`) as the default folder;
        ``keep``: no session owns it. The record carries ``history`` as the core's does."""
        record, _ = await self._start(
            command, args, cwd, env, notify_on_exit, options, default_cwd, keep, False
        )
        return record

    async def start_or_reuse(
        self,
        command: str,
        args: list[str] | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        notify_on_exit: bool = False,
        options: StartOptions | None = None,
        default_cwd: str | None = None,
        keep: bool = False,
    ) -> tuple[ProcessRecord, bool]:
        """``ProcessManager.start_or_reuse`` in the supervisor (any session's process with
        the label counts); ``keep`` applies only to a process it starts."""
        return await self._start(
            command, args, cwd, env, notify_on_exit, options, default_cwd, keep, True
        )

    async def _start(
        self,
        command: str,
        args: list[str] | None,
        cwd: str | None,
        env: dict[str, str] | None,
        notify_on_exit: bool,
        options: StartOptions | None,
        default_cwd: str | None,
        keep: bool,
        reuse: bool,
    ) -> tuple[ProcessRecord, bool]:
        options = options or StartOptions()
        answer = await self.call(
            "start",
            {
                "command": command,
                "args": list(args or []),
                "cwd": cwd,
                "env": env,
                "base_env": self.env,
                "folder": default_cwd or self.folder,
                "notify_on_exit": notify_on_exit,
                "options": dataclasses.asdict(options),
                "keep": keep,
                "reuse": reuse,
            },
        )
        record = self._apply(answer)
        record.history = answer.get("history")
        return record, bool(answer.get("reused"))

    async def stop(self, process_id: str, force: bool = False) -> StopResult:
        answer = await self.call("stop", {"id": process_id, "force": force}, process_id)
        return StopResult(self._apply(answer), list(answer["survivors"]))

    async def status(
        self, process_id: str
    ) -> tuple[ProcessRecord | None, dict[str, Any] | None, PastView | None]:
        """``(record, facts, None)``: the record and its live facts (``containment``
        always, the rest while it runs); ``(None, None, past)`` for an id only the history
        knows; ``(None, None, None)`` for an unknown id."""
        answer = await self.call("status", {"id": process_id}, process_id)
        if answer.get("record") is None:
            past = answer.get("past")
            return None, None, None if past is None else PastView(past)
        record = self._apply(answer)
        facts = {**(answer.get("facts") or {}), "containment": answer.get("containment")}
        if facts["containment"] is None:
            del facts["containment"]
        return record, facts, None

    async def read_log(self, process_id: str, query: LogQuery) -> LogAnswer:
        return (await self.read_log_of(process_id, query))[1]

    async def read_log_of(
        self, process_id: str, query: LogQuery
    ) -> tuple[ProcessRecord | PastView, LogAnswer]:
        """The answer to ``query`` on the log of ``process_id``, and whose log it is: the
        live record, or the earlier run the history holds. Raises UnknownProcess."""
        fields = {f.name: getattr(query, f.name) for f in dataclasses.fields(LogQuery) if f.init}
        if isinstance(fields.get("grep"), LinePattern):
            fields["grep"] = fields["grep"].source
        answer = await self.call("read_log", {"id": process_id, "query": fields}, process_id)
        log = LogAnswer(**answer["answer"])
        if answer.get("record") is None:
            past = answer.get("past")
            if past is None:  # removed while the query ran
                raise UnknownProcess(process_id, list(self.mirror.ids()))
            return PastView(past), log
        return self._apply(answer), log

    async def listed(self, everything: bool = False) -> list[dict[str, Any]]:
        """Public records with ``listeningPorts``, ``owner`` (self/other/kept) and
        ``commandLine``, of the processes under the default folder (``everything``: all)."""
        folder = self.folder
        answer = await self.call("list", {"folder": folder, "all": everything})
        return list(answer["processes"])

    async def summaries(
        self, everything: bool = False, folder: str | None = None
    ) -> list[dict[str, Any]]:
        """``ProcessManager.summaries`` (one line of facts per process, the command line
        cut), scoped to ``folder`` (else :attr:`folder`; ``everything``: all), each with
        ``owner``."""
        answer = await self.call("list", {"folder": folder or self.folder, "all": everything})
        return [
            {
                "id": p["id"],
                "pid": p["pid"],
                "status": p["status"],
                "label": p["label"],
                "command": p["commandLine"],
                "exitCode": p["exitCode"],
                "signal": p["signal"],
                "startedAt": p["startedAt"],
                "listeningPorts": p["listeningPorts"],
                "owner": p["owner"],
            }
            for p in answer["processes"]
        ]

    async def remove(self, process_id: str) -> ProcessRecord:
        answer = await self.call("remove", {"id": process_id}, process_id)
        self.mirror.remove(process_id, int(answer["rev"]))
        return record_from_public(answer["record"])

    async def send_input(self, process_id: str, text: str = "", eof: bool = False) -> InputReceipt:
        answer = await self.call(
            "send_input", {"id": process_id, "text": text, "eof": eof}, process_id
        )
        self._apply(answer)
        return InputReceipt(**answer["receipt"])

    async def send_signal(self, process_id: str, name: str) -> ProcessRecord:
        answer = await self.call("signal", {"id": process_id, "signal": name}, process_id)
        return self._apply(answer)

    async def restart(
        self,
        process_id: str,
        changes: RestartChanges | None = None,
        default_cwd: str | None = None,
    ) -> ProcessRecord:
        """``ProcessManager.restart`` in the supervisor; a relative ``cwd`` in ``changes``
        resolves against ``default_cwd`` (else :attr:`folder`)."""
        request: dict[str, Any] = {"id": process_id, "folder": default_cwd or self.folder}
        if changes is not None:
            request["changes"] = dataclasses.asdict(changes)
        return self._apply(await self.call("restart", request, process_id))

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
        token = None
        if progress is not None:
            token = str(next(self._tokens))
            self._progress[token] = progress
        try:
            answer = await self.call(
                "wait",
                {
                    "id": process_id,
                    "pattern": None if condition.pattern is None else condition.pattern.source,
                    "port": condition.port,
                    "url": condition.url,
                    "timeout": timeout,
                    "progress": token,
                    "tail_lines": tail_lines,
                },
                process_id,
            )
        finally:
            if token is not None:
                self._progress.pop(token, None)
        return WaitOutcome(
            record=self._apply(answer),
            met=answer["met"],
            reason=answer["reason"],
            elapsed=answer["elapsed"],
            tail=answer["tail"],
            cursor=answer["cursor"],
            matched_line=answer.get("matched_line"),
            matched_line_number=answer.get("matched_line_number"),
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
        token = None
        if progress is not None:
            token = str(next(self._tokens))
            self._progress[token] = progress
        try:
            answer = await self.call(
                "wait_exits",
                {
                    "ids": list(process_ids),
                    "all": every,
                    "timeout": timeout,
                    "progress": token,
                    "tail_lines": tail_lines,
                },
            )
        finally:
            if token is not None:
                self._progress.pop(token, None)
        outcome = ExitsOutcome(
            met=answer["met"],
            reason=answer["reason"],
            elapsed=answer["elapsed"],
            ended=[self._apply(entry) for entry in answer["ended"]],
            running=[self._apply(entry) for entry in answer["running"]],
        )
        return outcome, dict(answer.get("tails") or {})

    async def follow_output(self, on: bool) -> None:
        await self.call("follow_output", {"on": on})

    async def end_session(self) -> None:
        """Stop what this session owns, then close the connection."""
        if self.client is None:
            return
        try:
            if not self.client.closed:
                await self.client.request("end_session", {})
        except (RequestFailed, SupervisorGone) as exc:
            logger.warning("ending the supervisor session: %s", exc)
        finally:
            await self.client.close()
