"""The supervisor's handler: one :class:`~process_mcp.core.ProcessManager` shared by every
session (SPEC §10), its API mirrored op for op in JSON.

Ops (``args`` → ``ok``; records travel as ``entry = {"record": public record, "rev": n}``)::

    snapshot {}                           → {records: [entry], rev, stop_grace}; from then on
                                            the session hears every record change
    start {command, args, cwd, env, base_env, folder, notify_on_exit, options, keep, reuse}
                                          → entry + {reused, history}
    stop {id, force}                      → entry + {survivors}
    status {id}                           → entry + {facts, containment}
                                            | {record: null, past: run | null}
    read_log {id, query}                  → entry + {answer}        (LogQuery/LogAnswer fields)
                                            | {record: null, past: run, answer} (earlier run)
    list {folder, all}                    → {processes: [public + listeningPorts + owner
                                             + commandLine]}
    remove {id}                           → entry
    send_input {id, text, eof}            → entry + {receipt}
    signal {id, signal}                   → entry
    restart {id, changes, folder}         → entry      (changes: RestartChanges fields)
    wait {id, pattern, port, url, timeout, progress, tail_lines}
                                          → entry + {met, reason, elapsed, tail, cursor,
                                             matched_line, matched_line_number}
    wait_exits {ids, all, timeout, progress, tail_lines}
                                          → {met, reason, elapsed, ended: [entry],
                                             running: [entry], tails: {id: [line]}}
    follow_output {on}                    → {on}
    end_session {}                        → {stopped: [ids]}

A core error answers ``{"error": {"code": <its class name>, "message": <its text>}}``, so a
front-end raises the same exception the in-process core would have.

Guarantees:
- **Ownership.** A process belongs to the session that started it, or to none with
  ``keep``. When a session ends — ``end_session``, or its connection closing for any reason,
  the front-end's SIGKILL included — the running processes it owns are stopped as ``stop``
  does (SIGTERM to the tree, grace, SIGKILL), in parallel. A restart keeps the owner, except
  that a process whose owner session has ended becomes the restarting session's (else no
  session end would ever stop it again). Kept processes end only by ``stop``/``remove``, a
  person, or the supervisor's shutdown.
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
  instead, for their exit notifications (SPEC §10). Other sessions (an HTTP front-end's
  one per MCP session) hear only those: a start costs O(front-ends), not O(sessions).
- **The ``events`` digest is exact.** Each of those sessions also queues the end, and the
  next successful answer to it carries the queue as ``exits: [entry]`` (an error answer
  leaves it queued). So an answer reports exactly the ends that happened before it was
  made, as the in-process core did, whatever the timing of events on the wire.
  Sessions that asked ``follow_output`` get ``output {id}`` at most once a second per
  process (a subscription's change notice, not the data). A ``wait`` with a ``progress``
  token sends ``progress {token, elapsed, message}`` about once a second.
- **Scope.** ``list`` shows the processes whose cwd is ``folder`` or below it (``all``:
  every process), each with ``owner``: ``self``, ``other`` or ``kept``, from the asking
  session's point of view.
- ``busy()`` is true while any process runs, so an idle supervisor never exits under one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from process_mcp.core import ProcessError, ProcessManager, ProcessRecord, Settings
from process_mcp.core.history import Run as PastRun
from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.logs.query import LogQuery
from process_mcp.core.options import RestartChanges, StartOptions
from process_mcp.core.waiting import WaitCondition, tail_text, wait_for, wait_for_exits
from process_mcp.supervisor.protocol import RequestError
from process_mcp.supervisor.server import Session

logger = logging.getLogger(__name__)

KEEP_EXITS = 1000  # ends queued per session for its digest; a session away longer hears the newest
OUTPUT_INTERVAL = 1.0  # seconds between two ``output`` events of one process to one session
MIN_OUTPUT_INTERVAL = 0.01  # the shortest a session may ask for
OWNER_SELF, OWNER_OTHER, OWNER_KEPT = "self", "other", "kept"
_QUERY_FIELDS = {f.name for f in dataclasses.fields(LogQuery) if f.init}
_OPTION_FIELDS = {f.name for f in dataclasses.fields(StartOptions)}
_CHANGE_FIELDS = {f.name for f in dataclasses.fields(RestartChanges)}

__all__ = ["ProcessService", "make_service"]


def under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both absolute, normalised)."""
    if folder == os.sep:
        return True
    return path == folder or path.startswith(folder + os.sep)


def resolve_folder(folder: Any) -> str:
    """The front-end's default folder, absolute and with symbolic links resolved (records'
    cwds are stored resolved). Raises RequestError for anything but an absolute path."""
    if not isinstance(folder, str) or not os.path.isabs(folder):
        raise RequestError(
            "bad_request",
            f"'folder' must be an absolute path, got {folder!r}: send the "
            "front-end's default folder",
        )
    return os.path.realpath(folder)


def _progress_to(session: Session, token: Any) -> Callable[[float, str], Awaitable[None]] | None:
    """A wait's progress reporter that sends ``progress`` events tagged with the request's
    ``token`` to ``session``; None when the request asked for no progress."""
    if token is None:
        return None

    async def progress(elapsed: float, message: str) -> None:
        session.emit("progress", {"token": token, "elapsed": elapsed, "message": message})

    return progress


class _OutputTicks:
    """``output`` events to one session: the first at once, then at most one per
    ``interval`` per process (later ones coalesced into one at the end of the interval)."""

    def __init__(self, session: Session, interval: float = OUTPUT_INTERVAL) -> None:
        self._session = session
        self._interval = interval
        self._last: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def touch(self, process_id: str) -> None:
        if process_id in self._timers:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self._last.get(process_id, float("-inf")) + self._interval
        if now >= due:
            self._fire(process_id)
        else:
            self._timers[process_id] = loop.call_later(due - now, self._fire, process_id)

    def forget(self, process_id: str) -> None:
        timer = self._timers.pop(process_id, None)
        if timer is not None:
            timer.cancel()
        self._last.pop(process_id, None)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _fire(self, process_id: str) -> None:
        self._timers.pop(process_id, None)
        self._last[process_id] = asyncio.get_running_loop().time()
        self._session.emit("output", {"id": process_id})


class ProcessService:
    """The supervisor's :class:`~process_mcp.supervisor.server.Handler` (see the module
    docstring). Constructing it builds the manager: subreaper, leftovers of a dead
    supervisor ended (instance ledger), sentinel on the first start."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.manager = ProcessManager(settings or Settings.from_env())
        self.sessions: dict[str, Session] = {}
        self.owner: dict[str, str | None] = {}  # process id -> owning session id, None: kept
        self.touched: dict[str, set[str]] = {}  # process id -> sessions told of its exit
        self.rev = 0
        self._revs: dict[str, int] = {}
        self._followers: dict[str, _OutputTicks] = {}
        self._exits: dict[str, deque[dict[str, Any]]] = {}  # session id -> ends to report
        self._feeds: set[str] = set()  # sessions that hear every record change
        self.manager.add_exit_listener(self._on_exit)
        self.manager.add_output_listener(self._on_output)
        self._ops: dict[str, Callable[[Session, dict[str, Any]], Awaitable[Any]]] = {
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
            "wait": self._wait,
            "wait_exits": self._wait_exits,
            "follow_output": self._follow_output,
            "end_session": self._end_session,
        }

    # -------------------------------------------------------------- Handler protocol
    async def open_session(self, session: Session) -> None:
        self.sessions[session.id] = session

    async def close_session(self, session: Session) -> None:
        """The connection ended (any way): stop what the session owns."""
        self.sessions.pop(session.id, None)
        self._exits.pop(session.id, None)
        self._feeds.discard(session.id)
        ticks = self._followers.pop(session.id, None)
        if ticks is not None:
            ticks.close()
        stopped = await self._stop_owned(session.id)
        if stopped:
            logger.info("session %s ended: stopped %s", session.id, ", ".join(stopped))

    def busy(self) -> bool:
        return any(record.running for record in self.manager.records())

    async def shutdown(self) -> None:
        await self.manager.shutdown()

    async def handle(self, session: Session, op: str, args: dict[str, Any]) -> Any:
        handler = self._ops.get(op)
        if handler is None:
            raise RequestError(
                "unknown_op", f"unknown op {op!r}; this supervisor knows {', '.join(self._ops)}"
            )
        try:
            result = await handler(session, args)
        except ProcessError as exc:
            raise RequestError(type(exc).__name__, str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            text = f"missing argument {exc}" if isinstance(exc, KeyError) else str(exc)
            raise RequestError("bad_request", f"{op}: {text}") from None
        queued = self._exits.get(session.id)
        if queued and isinstance(result, dict):
            result = {**result, "exits": list(queued)}
            queued.clear()
        return result

    # -------------------------------------------------------------------- records
    def entry(self, record: ProcessRecord) -> dict[str, Any]:
        return {"record": record.public(), "rev": self._revs.get(record.id, self.rev)}

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
                session.emit("exited", payload)
        for session_id in self._feeds:
            if session_id not in concerned:
                self.sessions[session_id].emit("changed", payload)

    def _touch(self, session: Session, process_id: str) -> None:
        if self.manager.find(process_id) is not None:
            self.touched.setdefault(process_id, set()).add(session.id)

    def _on_exit(self, record: ProcessRecord) -> None:
        for ticks in self._followers.values():
            ticks.forget(record.id)
        self._changed(record, ended=True)

    def _on_output(self, process_id: str) -> None:
        if not self._followers:  # the drain's hot path: nothing to do for nobody
            return
        for ticks in self._followers.values():
            ticks.touch(process_id)

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
    async def _snapshot(self, session: Session, args: dict[str, Any]) -> Any:
        self._feeds.add(session.id)
        return {
            "records": [self.entry(record) for record in self.manager.records()],
            "rev": self.rev,
            "stop_grace": self.manager.settings.stop_grace,
        }

    async def _start(self, session: Session, args: dict[str, Any]) -> Any:
        folder = resolve_folder(args["folder"])
        options = {k: v for k, v in (args.get("options") or {}).items() if k in _OPTION_FIELDS}
        base_env = args.get("base_env")
        call = (
            args["command"],
            list(args.get("args") or []),
            args.get("cwd") or None,
            args.get("env"),
            bool(args.get("notify_on_exit")),
            StartOptions(**options),
        )
        base = None if base_env is None else dict(base_env)
        reused = False
        if args.get("reuse"):  # the running process with that label, else a new one
            record, reused = await self.manager.start_or_reuse(
                *call, default_cwd=folder, base_env=base
            )
        else:
            record = await self.manager.start(*call, default_cwd=folder, base_env=base)
        if reused:
            self._touch(session, record.id)
        else:
            self.owner[record.id] = None if args.get("keep") else session.id
            self.touched[record.id] = {session.id}
            self._changed(record)
        return {**self.entry(record), "reused": reused, "history": record.history}

    async def _stop(self, session: Session, args: dict[str, Any]) -> Any:
        process_id = args["id"]
        self._touch(session, process_id)
        result = await self.manager.stop(process_id, force=bool(args.get("force")))
        return {**self.entry(result.record), "survivors": result.survivors}

    async def _status(self, session: Session, args: dict[str, Any]) -> Any:
        process_id = args["id"]
        record = self.manager.find(process_id)
        if record is None:
            return {"record": None, "past": await self._past(process_id)}
        self._touch(session, process_id)
        return {
            **self.entry(record),
            "facts": self.manager.live_facts(process_id),
            "containment": self.manager.containment,
        }

    async def _past(self, process_id: str) -> dict[str, Any] | None:
        """The newest run of ``process_id`` an earlier supervisor recorded, or None."""
        try:
            run = await self.manager.past(process_id)
        except ProcessError:
            return None
        return past_public(run)

    async def _read_log(self, session: Session, args: dict[str, Any]) -> Any:
        process_id = args["id"]
        self._touch(session, process_id)
        fields = {k: v for k, v in (args.get("query") or {}).items() if k in _QUERY_FIELDS}
        past = None
        if self.manager.find(process_id) is None:  # an earlier run: read from the history
            past = past_public(await self.manager.past(process_id))  # raises UnknownProcess
        answer = dataclasses.asdict(await self.manager.read_log(process_id, LogQuery(**fields)))
        record = self.manager.find(process_id) if past is None else None
        if record is None:  # an earlier run, or removed while the query ran
            return {"record": None, "past": past, "answer": answer}
        return {**self.entry(record), "answer": answer}

    async def _list(self, session: Session, args: dict[str, Any]) -> Any:
        """Reads only memory (ports from the manager's background port watch), so a few
        hundred processes answer in milliseconds."""
        everything = bool(args.get("all"))
        folder = "" if everything else resolve_folder(args["folder"])
        listed = []
        records, summaries = self.manager.records(), self.manager.summaries()
        for record, summary in zip(records, summaries, strict=True):
            if not everything and not under(record.cwd, folder):
                continue
            entry = {
                **record.public(),
                "listeningPorts": summary["listeningPorts"],
                "owner": self.owner_of(session, record.id),
                "commandLine": summary["command"],
            }
            if args.get("facts") and record.running:  # the person's ps and top
                entry["facts"] = self.manager.live_facts(record.id)
            listed.append(entry)
        return {"processes": listed}

    async def _remove(self, session: Session, args: dict[str, Any]) -> Any:
        process_id = args["id"]
        record = await self.manager.remove(process_id)
        self.rev += 1
        self._revs.pop(process_id, None)
        self.owner.pop(process_id, None)
        self.touched.pop(process_id, None)
        for ticks in self._followers.values():
            ticks.forget(process_id)
        for session_id in self._feeds:
            self.sessions[session_id].emit("removed", {"id": process_id, "rev": self.rev})
        return {"record": record.public(), "rev": self.rev}

    async def _send_input(self, session: Session, args: dict[str, Any]) -> Any:
        process_id = args["id"]
        self._touch(session, process_id)
        receipt = await self.manager.send_input(
            process_id, str(args.get("text", "")), eof=bool(args.get("eof"))
        )
        entry = self.entry(self.manager.get(process_id))
        return {**entry, "receipt": dataclasses.asdict(receipt)}

    async def _signal(self, session: Session, args: dict[str, Any]) -> Any:
        process_id = args["id"]
        self._touch(session, process_id)
        return self.entry(await self.manager.send_signal(process_id, args["signal"]))

    async def _restart(self, session: Session, args: dict[str, Any]) -> Any:
        process_id = args["id"]
        self._touch(session, process_id)
        fields = {k: v for k, v in (args.get("changes") or {}).items() if k in _CHANGE_FIELDS}
        folder = args.get("folder")
        record = await self.manager.restart(
            process_id,
            RestartChanges(**fields) if fields else None,
            default_cwd=None if folder is None else resolve_folder(folder),
        )
        owner = self.owner.get(process_id)
        if owner is not None and owner not in self.sessions:
            self.owner[process_id] = session.id
        self._changed(record)
        return self.entry(record)

    async def _wait(self, session: Session, args: dict[str, Any]) -> Any:
        process_id = args["id"]
        self._touch(session, process_id)
        pattern = args.get("pattern")
        condition = WaitCondition(
            pattern=None if pattern is None else LinePattern.compile(pattern, name="pattern"),
            port=args.get("port"),
            url=args.get("url"),
        )
        outcome = await wait_for(
            self.manager,
            process_id,
            condition,
            float(args["timeout"]),
            progress=_progress_to(session, args.get("progress")),
            tail_lines=args.get("tail_lines"),
        )
        return {
            **self.entry(outcome.record),
            "met": outcome.met,
            "reason": outcome.reason,
            "elapsed": outcome.elapsed,
            "tail": outcome.tail,
            "cursor": outcome.cursor,
            "matched_line": outcome.matched_line,
            "matched_line_number": outcome.matched_line_number,
        }

    async def _wait_exits(self, session: Session, args: dict[str, Any]) -> Any:
        ids = [str(process_id) for process_id in args["ids"]]
        for process_id in ids:
            self._touch(session, process_id)
        outcome = await wait_for_exits(
            self.manager,
            ids,
            bool(args.get("all")),
            float(args["timeout"]),
            progress=_progress_to(session, args.get("progress")),
        )
        tail_lines = int(args.get("tail_lines") or 0)
        tails = {}
        if tail_lines:
            for record in outcome.ended:
                tails[record.id] = await tail_text(self.manager, record.id, tail_lines)
        return {
            "met": outcome.met,
            "reason": outcome.reason,
            "elapsed": outcome.elapsed,
            "ended": [self.entry(record) for record in outcome.ended],
            "running": [self.entry(record) for record in outcome.running],
            "tails": tails,
        }

    async def _follow_output(self, session: Session, args: dict[str, Any]) -> Any:
        on = bool(args.get("on"))
        if on:  # ``interval``: the person's ``logs -f`` asks for more than one tick a second
            interval = max(float(args.get("interval") or OUTPUT_INTERVAL), MIN_OUTPUT_INTERVAL)
            self._followers.setdefault(session.id, _OutputTicks(session, interval))
        else:
            ticks = self._followers.pop(session.id, None)
            if ticks is not None:
                ticks.close()
        return {"on": on}

    async def _end_session(self, session: Session, args: dict[str, Any]) -> Any:
        """The front-end is leaving: stop what it owns and answer once that is done (its
        connection closing next then finds nothing left to stop)."""
        return {"stopped": await self._stop_owned(session.id)}


def past_public(run: PastRun) -> dict[str, Any]:
    """An earlier run as a front-end needs it: ``run.public()`` plus the bytes of its log
    deleted (``logDroppedBytes``, null when the log is kept)."""
    return {**run.public(), "logDroppedBytes": run.log_dropped_bytes}


def make_service() -> ProcessService:
    """The supervisor's default handler factory: settings from the environment (the
    supervisor sets ``PROCESS_MCP_STATE_DIR`` to its ``--state-dir`` first)."""
    return ProcessService()
