"""A front-end's side of the supervisor service: the process manager seen through one session.

:class:`RemoteManager` offers what a front-end used of the in-process
:class:`~process_mcp.core.ProcessManager` — ``start``, ``stop``, ``read_log``, ``restart``,
``wait_for``, ... — as requests to :mod:`process_mcp.supervisor.service`, returning the
core's own types (``ProcessRecord``, ``StopResult``, ``LogAnswer``, ``InputReceipt``,
``WaitOutcome``) and raising the core's own errors (``UnknownProcess``, ``InvalidRequest``,
``ProcessRunning``, ``StartFailed``) with the supervisor's text, so the layer above changes
little. Two calls became one request each, because their facts live in the supervisor:
``status`` (record + live facts) and ``listed`` (scoped list with owners).

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
from process_mcp.core.options import StartOptions
from process_mcp.core.spawn.stdin import InputReceipt
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.core.waiting import WaitCondition, WaitOutcome
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
        keep: bool = False,
    ) -> ProcessRecord:
        options = options or StartOptions()
        answer = await self.call(
            "start",
            {
                "command": command,
                "args": list(args or []),
                "cwd": cwd,
                "env": env,
                "base_env": self.env,
                "folder": self.folder,
                "notify_on_exit": notify_on_exit,
                "options": dataclasses.asdict(options),
                "keep": keep,
            },
        )
        return self._apply(answer)

    async def stop(self, process_id: str, force: bool = False) -> StopResult:
        answer = await self.call("stop", {"id": process_id, "force": force}, process_id)
        return StopResult(self._apply(answer), list(answer["survivors"]))

    async def status(self, process_id: str) -> dict[str, Any] | None:
        """The public record merged with its live facts (None once ended); None for an
        unknown id."""
        answer = await self.call("status", {"id": process_id}, process_id)
        if answer.get("record") is None:
            return None
        record = self._apply(answer)
        return {**record.public(), **(answer.get("facts") or {})}

    async def read_log(self, process_id: str, query: LogQuery) -> LogAnswer:
        fields = {f.name: getattr(query, f.name) for f in dataclasses.fields(LogQuery) if f.init}
        if isinstance(fields.get("grep"), LinePattern):
            fields["grep"] = fields["grep"].source
        answer = await self.call("read_log", {"id": process_id, "query": fields}, process_id)
        self._apply(answer)
        return LogAnswer(**answer["answer"])

    async def listed(self, everything: bool = False) -> list[dict[str, Any]]:
        """Public records with ``listeningPorts`` and ``owner`` (self/other/kept), of the
        processes under the default folder (``everything``: all)."""
        answer = await self.call("list", {"folder": self.folder, "all": everything})
        return list(answer["processes"])

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

    async def restart(self, process_id: str) -> ProcessRecord:
        return self._apply(await self.call("restart", {"id": process_id}, process_id))

    async def wait_for(
        self,
        process_id: str,
        condition: WaitCondition,
        timeout: float,
        progress: ProgressFn | None = None,
    ) -> WaitOutcome:
        """``core.waiting.wait_for`` run by the supervisor; progress comes back as events.
        Cancelling the awaiting task cancels the wait there (the process runs on)."""
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
            matched_line=answer.get("matched_line"),
            matched_line_number=answer.get("matched_line_number"),
        )

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
