"""The process manager's link to the history: what it records, where logs go, what it reads.

The manager calls a :class:`Recorder` at a few moments — a first spawn (``starting``
around it), a restart (``restarting`` around its spawn), a
run ended (``ended``), a process removed (``removed``), shutdown (``close``) — and asks it
about ids it no longer knows (``past``, ``read``). It lives in the core, so any owner of a
manager (the MCP server, a supervisor) keeps the same memory.

Ordering. Every call that touches the database runs on one worker thread, in the order the
manager made them, so a run's end is always recorded after its start, and a restart's new
run after the end of the one before. Reading a log uses other threads, so no write waits
behind it. A start never waits for the database before spawning: its log folder is named
here, and only its answer waits (at most ``STATS_WAIT``) for the stats of earlier runs,
read while it spawns. A restart waits for its record (the database says which folder its
log continues in).

Logs. With the history enabled each run's log store writes in ``STATE_DIR/runs/<...>/``
(the runs of one process share one folder, so restarts keep numbering), which outlives
the manager; otherwise in the instance folder, deleted at shutdown, as before.

Disk cap. After each end, ended runs' logs are dropped oldest first until everything fits
in ``Settings.disk_cap`` (the running logs counted); a dropped log that a live process
still holds is forgotten by its store too, so ``get-log`` reports it as dropped bytes.
Each drop is logged (level INFO) and stays in the run's record (``logDroppedBytes``).

Failure. A history that cannot be opened is disabled (one warning); a write that fails
later is logged once (then at DEBUG) and the manager goes on: memory is never a reason to
refuse a start or lose a process. Either way :attr:`Recorder.problem` says why the history
is off, and ``state_listeners`` hear each change on the loop (the supervisor tells its
front-ends, which tell their clients: its log may be on the very disk that is full).
A run whose end could not be written is kept here and closed by the next write that
works (or at ``close``), so no run stays ``running`` in the history after a full disk or a
held lock; then :attr:`problem` is None again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from process_mcp.core.history.database import HistoryError
from process_mcp.core.history.rows import LogFacts, PastRun
from process_mcp.core.history.store import History
from process_mcp.core.logs.blocks import LogSnapshot
from process_mcp.core.logs.query import LogAnswer, LogQuery, run_query
from process_mcp.core.logs.store import LogStore
from process_mcp.core.records import ProcessRecord
from process_mcp.core.settings import Settings
from process_mcp.core.trees import instances

logger = logging.getLogger(__name__)
T = TypeVar("T")
STATS_WAIT = 1.0  # seconds a start's answer waits for the stats of earlier runs
_End = tuple[str, int | None, str | None, str | None]  # status, exit code, signal, ended at


class Recorder:
    """Records the runs of one manager (see the module docstring). Use it from one loop."""

    def __init__(
        self,
        state_dir: Path,
        supervisor: str,
        logs: Mapping[str, LogStore],
        *,
        disk_cap: int,
        fallback_logs: Path,
        is_gone: Callable[[str], bool],
    ) -> None:
        """Open the history (or disable it, warning once) and, in the worker thread, mark
        the runs of dead supervisors ``interrupted`` (``is_gone(name)`` says which are
        dead) and apply the disk cap. ``logs`` is the manager's live table of log stores
        (read only); ``supervisor`` names this manager in the records."""
        self.history = History.open_or_disabled(state_dir)
        self.problem: str | None = self.history.problem  # why the history is off; None: on
        self.state_listeners: list[Callable[[str | None], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.supervisor = supervisor
        self.disk_cap = disk_cap
        self._logs = logs
        self._fallback = fallback_logs
        self._running: set[str] = set()  # live ids whose current run is recorded running
        self._removed: set[str] = set()  # this manager's removed ids: unknown from then on
        self._complained = False
        self._worker: ThreadPoolExecutor | None = None
        # Worker thread only: the current run of each live id, and the run a restart
        # replaced until it is known to have started.
        self._runs: dict[str, PastRun] = {}
        self._previous: dict[int, PastRun | None] = {}
        self._unclosed: dict[int, tuple[_End, LogFacts | None]] = {}  # ends not yet written
        if self.history.enabled:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="process-mcp-history")
            self._submit(self._mark_dead, is_gone)

    @classmethod
    def of_instance(
        cls, settings: Settings, instance_dir: Path, logs: Mapping[str, LogStore]
    ) -> Recorder:
        """The recorder of the manager whose instance folder is ``instance_dir`` (its name
        names the supervisor; dead ones are told by their instance folders)."""
        state_dir = Path(settings.state_dir)
        return cls(
            state_dir,
            instance_dir.name,
            logs,
            disk_cap=settings.disk_cap,
            fallback_logs=instance_dir / "logs",
            is_gone=lambda name: instances.server_gone(state_dir, name),
        )

    @property
    def enabled(self) -> bool:
        return self._worker is not None

    # ---------------------------------------------------------------- runs
    def log_dir(self, process_id: str) -> Path:
        """Where the log of a new process goes: a folder of its own in the history's runs
        folder (``<supervisor>-<id>``), or in the instance folder when disabled. Decided
        here, without the database, so that a start never waits for it before spawning."""
        if self._worker is None:
            return self._fallback / process_id
        return self.history.runs_dir / f"{self.supervisor}-{process_id}"

    @asynccontextmanager
    async def starting(self, record: ProcessRecord) -> AsyncIterator[Path]:
        """Around the first spawn of ``record`` (its ``cwd`` resolved): yields where its
        log goes (see ``log_dir``); the block must spawn it without awaiting. Then the run
        is recorded (queued) and ``record.history`` set to the stats of earlier runs of the
        same command, args and cwd (None when there were none, or when the database takes
        over ``STATS_WAIT`` to say). The stats are asked for before the spawn, so they are
        read while it runs and count only earlier runs. If the block raises, nothing is
        recorded."""
        directory = self.log_dir(record.id)
        if self._worker is None:
            yield directory
            return
        stats = self._submit(
            self.history.stats, record.command, list(record.args), record.cwd, write=False
        )
        yield directory
        self._submit(self._record_start, record.id, self._fields(record), directory.name, False)
        self._running.add(record.id)
        if not stats.done():  # usually done: it was read while the child was spawned
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(stats)), STATS_WAIT)
        record.history = stats.result() if stats.done() else None

    @asynccontextmanager
    async def restarting(self, record: ProcessRecord, log: LogStore) -> AsyncIterator[None]:
        """Record a restart of ``record`` before its spawn, continuing ``log`` (moved to a
        new folder if the disk cap dropped its old one), so that the run numbers and the
        shared folder come from the database. The block must spawn it without awaiting;
        if it raises (or the wait is cancelled), the new run is erased from the history."""
        if self._worker is None:
            yield
            return
        fields = self._fields(record)
        job = self._submit(self._record_start, record.id, fields, log.directory.name, True)
        try:
            run = await asyncio.shield(asyncio.wrap_future(job))
            if run is not None and run.log_dir is not None and log.directory != run.log_dir:
                log.drop_stored(run.log_dir)
            yield
        except BaseException:
            self._submit(self._forget, record.id)
            raise
        self._running.add(record.id)

    def ended(self, record: ProcessRecord) -> None:
        """``record``'s current run has ended (its final state set, its output captured):
        record it, then apply the disk cap. Returns at once; the work is queued."""
        if record.id not in self._running:
            return
        self._running.discard(record.id)
        log = self._logs.get(record.id)
        facts = None if log is None else LogFacts.of(log)
        live = sum(self._logs[pid].size for pid in self._running if pid in self._logs)
        end = (record.status.value, record.exit_code, record.signal, record.ended_at)
        job = self._submit(self._record_end, record.id, end, facts, live)
        loop = asyncio.get_running_loop()
        job.add_done_callback(lambda done: loop.call_soon_threadsafe(self._forget_dropped, done))

    def removed(self, process_id: str) -> None:
        """``process_id`` was removed and its log deleted: the records stay, their log
        marked dropped, and :meth:`past` no longer answers for it."""
        self._running.discard(process_id)
        self._removed.add(process_id)
        self._submit(self._drop, process_id)

    def forgotten(self, process_id: str) -> None:
        """``process_id`` ended and left the manager's memory: its records and log stay,
        and :meth:`past` answers for it from now on. Returns at once."""
        self._running.discard(process_id)
        self._submit(self._runs.pop, process_id, None)

    # ---------------------------------------------------------------- reading
    async def past(self, process_id: str) -> PastRun | None:
        """The newest recorded run of ``process_id`` (by another manager, or by this one
        once it left memory; this one's removed ids stay unknown), or None. Ordered after
        every write queued before."""
        if self._worker is None:
            return None
        run = await asyncio.wrap_future(self._submit(self.history.find, process_id, write=False))
        if run is None or (run.supervisor == self.supervisor and process_id in self._removed):
            return None
        return run

    async def ended_under(self, folder: str | None, limit: int) -> list[PastRun]:
        """The newest ended runs under ``folder`` (None: anywhere), at most ``limit``, one
        per process id (its newest run), ordered after every write queued before."""
        if self._worker is None or limit <= 0:
            return []
        found = await asyncio.wrap_future(
            self._submit(self.history.ended_under, folder, limit, write=False)
        )
        newest: dict[str, PastRun] = {}
        for run in found or []:
            newest.setdefault(run.process_id, run)
        return list(newest.values())

    async def read(self, run: PastRun, query: LogQuery) -> LogAnswer:
        """Answer ``query`` on ``run``'s log as it was left on disk, in a worker thread.
        A dropped log answers no lines and its size in ``dropped_bytes``."""
        return await asyncio.to_thread(self._read, run, query)

    def _read(self, run: PastRun, query: LogQuery) -> LogAnswer:
        snapshot = self.history.log_snapshot(run)
        if snapshot is None:
            snapshot = LogSnapshot((), 1, 0, (), run.log_dropped_bytes or 0, 0, 0)
        return run_query(snapshot, query)

    async def close(self) -> None:
        """Wait for every queued write, then close the history. Idempotent."""
        if self._worker is not None:
            self._submit(self._close_left_open)
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.to_thread(worker.shutdown, wait=True)
        self.history.close()

    # ---------------------------------------------------------------- worker
    def _submit(self, call: Callable[..., T], *args: Any, write: bool = True) -> Future[T | None]:
        """Queue ``call`` on the worker (``write``: it writes, so it first closes the runs a
        failed write left open, and its outcome says whether the history works); once
        closed, a future already done with None."""
        if self._worker is None:
            done: Future[T | None] = Future()
            done.set_result(None)
            return done
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        return self._worker.submit(self._guarded, call, write, *args)

    def _guarded(self, call: Callable[..., T], write: bool, *args: Any) -> T | None:
        """Run ``call`` on the worker; a failure is logged, never raised (see Failure)."""
        if write and self._unclosed:
            with contextlib.suppress(Exception):  # still failing: this call says so below
                self._close_left_open()
        try:
            result = call(*args)
        except Exception as exc:  # a history failure must never reach a process's owner
            level = logging.DEBUG if self._complained else logging.WARNING
            self._complained = True
            logger.log(
                level,
                "history: %s failed (%s); going on, further failures logged at DEBUG",
                getattr(call, "__name__", call),
                exc,
                exc_info=not isinstance(exc, HistoryError),
            )
            if write:
                self._set_problem(f"a write failed: {exc}")
            return None
        if write and not self._unclosed:
            self._set_problem(None)
        return result

    def _set_problem(self, problem: str | None) -> None:
        """Worker: the history's state changed; tell the listeners on the loop."""
        if problem == self.problem:
            return
        if problem is None:
            logger.warning("history: writing works again; runs are recorded as before")
        self.problem = problem
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._tell, problem)

    def _tell(self, problem: str | None) -> None:
        for listener in list(self.state_listeners):
            listener(problem)

    def _close_left_open(self) -> None:
        """Worker: write the ends that failed before (oldest first); raises if it still
        cannot, leaving the rest for the next write."""
        closed = 0
        for run_id, (end, facts) in list(self._unclosed.items()):
            self._write_end(run_id, end, facts)
            del self._unclosed[run_id]
            closed += 1
        if closed:
            logger.warning("history: %d run(s) left open by a failed write are closed", closed)

    def _mark_dead(self, is_gone: Callable[[str], bool]) -> None:
        for name in self.history.running_supervisors():
            if name != self.supervisor and is_gone(name):
                marked = self.history.mark_interrupted(name)
                logger.info(
                    "history: %d runs of dead server %s marked interrupted", len(marked), name
                )
        self.history.enforce_cap(self.disk_cap)

    @staticmethod
    def _fields(record: ProcessRecord) -> dict[str, Any]:
        """What ``record_start`` needs, copied now (the record changes as it runs)."""
        return {
            "command": record.command,
            "args": list(record.args),
            "cwd": record.cwd,
            "label": record.options.label,
        }

    def _record_start(
        self, process_id: str, fields: dict[str, Any], name: str, again: bool
    ) -> PastRun | None:
        """Worker: a run writing in folder ``name``; ``again`` (a restart) shares the log
        of the run before, or adopts ``name`` if that run was never recorded."""
        # Popped first: if this write fails, the run before must not receive this run's end.
        previous = self._runs.pop(process_id, None) if again else None
        run = self.history.record_start(
            process_id,
            supervisor=self.supervisor,
            share_log_of=None if previous is None else previous.id,
            log_dir=name if previous is None else None,
            **fields,
        )
        if run is not None:
            self._runs[process_id] = run
            self._previous[run.id] = previous
        return run

    def _forget(self, process_id: str) -> None:
        """Worker: the restart just recorded did not start; the run before is current."""
        run = self._runs.pop(process_id, None)
        if run is not None:
            previous = self._previous.pop(run.id, None)
            if previous is not None:
                self._runs[process_id] = previous
            self.history.forget(run.id)

    def _record_end(
        self,
        process_id: str,
        end: _End,
        facts: LogFacts | None,
        live_bytes: int,
    ) -> list[PastRun]:
        run = self._runs.get(process_id)
        if run is None:  # its start could not be recorded
            return []
        self._previous.pop(run.id, None)
        try:
            self._write_end(run.id, end, facts)
        except Exception:
            self._unclosed[run.id] = (end, facts)  # closed by the next write that works
            raise
        return self.history.enforce_cap(self.disk_cap, live_bytes)

    def _write_end(self, run_id: int, end: _End, facts: LogFacts | None) -> None:
        status, exit_code, signal, ended_at = end
        self.history.record_end(
            run_id, status=status, exit_code=exit_code, signal=signal, ended_at=ended_at, log=facts
        )

    def _drop(self, process_id: str) -> None:
        run = self._runs.pop(process_id, None)
        if run is not None:
            self._previous.pop(run.id, None)
            self.history.drop_log(run.id)

    def _forget_dropped(self, done: Future[list[PastRun] | None]) -> None:
        """On the loop: a live store whose folder the cap deleted forgets its lines."""
        for run in done.result() or []:
            log = self._logs.get(run.process_id)
            if log is not None and log.directory == run.log_dir:
                log.drop_stored()
