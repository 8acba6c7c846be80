"""The process manager's link to the history: what it records, where logs go, what it reads.

The manager calls a :class:`Recorder` at five moments — a run begins (``begin``, then
``launched`` or ``failed``), a run ends (``ended``), a process is removed (``removed``),
the manager shuts down (``close``) — and asks it about ids it no longer knows (``past``,
``read``). Everything lives in the core, so any owner of a manager (the MCP server, a
supervisor) keeps the same memory.

Ordering. Every call that touches the database runs on one worker thread, in the order the
manager made them: a restart's new run is recorded after the end of the run before it,
and a start never waits behind a log being read (reads use other threads). The event loop
only waits for what it needs an answer to: ``begin`` (the log folder) and ``past``.

Logs. With the history enabled each run's log store writes in ``STATE_DIR/runs/<...>/``
(the runs of one process share one folder, so restarts keep numbering), which outlives
the manager; otherwise in the instance folder, deleted at shutdown, as before.

Disk cap. After each end, ended runs' logs are dropped oldest first until everything fits
in ``Settings.disk_cap`` (the running logs counted); a dropped log that a live process
still holds is forgotten by its store too, so ``get-log`` reports it as dropped bytes.
Each drop is logged (level INFO) and stays in the run's record (``logDroppedBytes``).

Failure. A history that cannot be opened is disabled (one warning); a write that fails
later is logged once (then at DEBUG) and the manager goes on: memory is never a reason to
refuse a start or lose a process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from process_mcp.core.history.store import History, HistoryError, LogFacts, Run
from process_mcp.core.logs.blocks import LogSnapshot
from process_mcp.core.logs.query import LogAnswer, LogQuery, run_query
from process_mcp.core.logs.store import LogStore
from process_mcp.core.records import ProcessRecord
from process_mcp.core.settings import Settings
from process_mcp.core.trees import instances

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Begun:
    """A run recorded before its spawn: where its log goes, and the earlier runs' stats."""

    run: Run | None  # None when the history is disabled
    log_dir: Path
    stats: dict[str, Any] | None = None


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
        self.supervisor = supervisor
        self.disk_cap = disk_cap
        self._logs = logs
        self._fallback = fallback_logs
        self._current: dict[str, Run] = {}  # the latest run of each live process id
        self._running: set[str] = set()
        self._complained = False
        self._worker: ThreadPoolExecutor | None = None
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
    async def begin(self, record: ProcessRecord, log: LogStore | None = None) -> Begun:
        """Record that ``record`` (its ``cwd`` resolved) is about to run: a first run when
        ``log`` is None (with the stats of earlier runs of the same command, args and cwd),
        else a restart continuing ``log`` (moved to a new folder if the disk cap dropped
        its old one). Returns where its log must be written. Call
        ``launched`` or ``failed`` next, before awaiting anything else."""
        if self._worker is None:
            directory = log.directory if log is not None else self._fallback / record.id
            return Begun(None, directory)
        previous = self._current.get(record.id) if log is not None else None
        share = None if previous is None else previous.id
        job = self._submit(self._record_start, record, share, log is None)
        run, stats = await asyncio.wrap_future(job) or (None, None)
        if run is None or run.log_dir is None:  # the write failed: go on without it
            directory = log.directory if log is not None else self._fallback / record.id
            return Begun(None, directory)
        if log is not None and log.directory != run.log_dir:  # the cap dropped the old log
            log.drop_stored(run.log_dir)
        return Begun(run, run.log_dir, stats)

    @asynccontextmanager
    async def recording(
        self, record: ProcessRecord, log: LogStore | None = None
    ) -> AsyncIterator[Begun]:
        """``begin``, then ``launched`` when the block ends normally (it must spawn the run
        without awaiting), ``failed`` when it raises."""
        begun = await self.begin(record, log)
        try:
            yield begun
        except BaseException:
            self.failed(begun)
            raise
        self.launched(record, begun)

    def launched(self, record: ProcessRecord, begun: Begun) -> None:
        """The run of ``begun`` has started."""
        if begun.run is not None:
            self._current[record.id] = begun.run
            self._running.add(record.id)

    def failed(self, begun: Begun) -> None:
        """The spawn after ``begin`` failed: the run is erased from the history."""
        if begun.run is not None:
            self._submit(self.history.forget, begun.run.id)

    def ended(self, record: ProcessRecord) -> None:
        """``record``'s current run has ended (its final state set, its output captured):
        record it, then apply the disk cap. Returns at once; the work is queued."""
        run = self._current.get(record.id)
        if run is None or record.id not in self._running:
            return
        self._running.discard(record.id)
        log = self._logs.get(record.id)
        facts = None if log is None else LogFacts.of(log)
        live = sum(self._logs[pid].size for pid in self._running if pid in self._logs)
        end = (record.status.value, record.exit_code, record.signal, record.ended_at)
        job = self._submit(self._record_end, run.id, end, facts, live)
        loop = asyncio.get_running_loop()
        job.add_done_callback(lambda done: loop.call_soon_threadsafe(self._forget_dropped, done))

    def removed(self, process_id: str) -> None:
        """``process_id`` was removed and its log deleted: the records stay, their log
        marked dropped."""
        run = self._current.pop(process_id, None)
        self._running.discard(process_id)
        if run is not None:
            self._submit(self.history.drop_log, run.id)

    # ---------------------------------------------------------------- reading
    async def past(self, process_id: str) -> Run | None:
        """The newest recorded run of ``process_id`` by another manager (this one's own
        removed ids stay unknown), or None. Ordered after every write queued before."""
        if self._worker is None:
            return None
        run = await asyncio.wrap_future(self._submit(self.history.find, process_id))
        return None if run is None or run.supervisor == self.supervisor else run

    async def read(self, run: Run, query: LogQuery) -> LogAnswer:
        """Answer ``query`` on ``run``'s log as it was left on disk, in a worker thread.
        A dropped log answers no lines and its size in ``dropped_bytes``."""
        return await asyncio.to_thread(self._read, run, query)

    def _read(self, run: Run, query: LogQuery) -> LogAnswer:
        snapshot = self.history.log_snapshot(run)
        if snapshot is None:
            snapshot = LogSnapshot((), 1, 0, (), run.log_dropped_bytes or 0, 0, 0)
        return run_query(snapshot, query)

    async def close(self) -> None:
        """Wait for every queued write, then close the history. Idempotent."""
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.to_thread(worker.shutdown, wait=True)
        self.history.close()

    # ---------------------------------------------------------------- worker
    def _submit(self, call: Callable[..., T], *args: Any) -> Future[T | None]:
        assert self._worker is not None
        return self._worker.submit(self._guarded, call, *args)

    def _guarded(self, call: Callable[..., T], *args: Any) -> T | None:
        """Run ``call`` on the worker; a failure is logged, never raised (see Failure)."""
        try:
            return call(*args)
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
            return None

    def _mark_dead(self, is_gone: Callable[[str], bool]) -> None:
        for name in self.history.running_supervisors():
            if name != self.supervisor and is_gone(name):
                marked = self.history.mark_interrupted(name)
                logger.info(
                    "history: %d runs of dead server %s marked interrupted", len(marked), name
                )
        self.history.enforce_cap(self.disk_cap)

    def _record_start(
        self, record: ProcessRecord, share: int | None, want_stats: bool
    ) -> tuple[Run | None, dict[str, Any] | None]:
        run = self.history.record_start(
            record.id,
            command=record.command,
            args=record.args,
            cwd=record.cwd,
            label=record.options.label,
            supervisor=self.supervisor,
            share_log_of=share,
        )
        if run is None or not want_stats:
            return run, None
        return run, self.history.stats(record.command, record.args, record.cwd, exclude=run.id)

    def _record_end(
        self,
        run_id: int,
        end: tuple[str, int | None, str | None, str | None],
        facts: LogFacts | None,
        live_bytes: int,
    ) -> list[Run]:
        status, exit_code, signal, ended_at = end
        self.history.record_end(
            run_id, status=status, exit_code=exit_code, signal=signal, ended_at=ended_at, log=facts
        )
        return self.history.enforce_cap(self.disk_cap, live_bytes)

    def _forget_dropped(self, done: Future[list[Run] | None]) -> None:
        """On the loop: a live store whose folder the cap deleted forgets its lines."""
        for run in done.result() or []:
            log = self._logs.get(run.process_id)
            if log is not None and log.directory == run.log_dir:
                log.drop_stored()
