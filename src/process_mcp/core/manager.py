"""The process manager: the one place that starts, watches, stops and forgets processes."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from process_mcp.core import limits, platform
from process_mcp.core.errors import InvalidRequest, ProcessRunning, UnknownProcess
from process_mcp.core.facts.live import LiveFacts
from process_mcp.core.facts.ports import PortWatch
from process_mcp.core.forgetting import ManagerForgetting
from process_mcp.core.history import PastRun
from process_mcp.core.history.recorder import Recorder
from process_mcp.core.ids import new_id
from process_mcp.core.listeners import ExitListener, Listeners, OutputListener
from process_mcp.core.logs.query import LogAnswer, LogQuery, run_query
from process_mcp.core.logs.store import LogStore
from process_mcp.core.options import RestartChanges, StartOptions, StartRequest
from process_mcp.core.records import ProcessRecord, StopResult
from process_mcp.core.retention import EndedRecords
from process_mcp.core.run import Run, RunHooks, start_run
from process_mcp.core.settings import RunSettings, Settings
from process_mcp.core.spawn import launch
from process_mcp.core.spawn.launch import join_cwd
from process_mcp.core.spawn.stdin import InputReceipt
from process_mcp.core.talk import send_group_signal, write_input
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.core.trees import proc, stopping
from process_mcp.core.trees.ownership import Ownership


class ProcessManager(ManagerForgetting):
    """Owns every managed process of one instance. Not thread-safe: use it from one loop.

    Example::

        manager = ProcessManager(Settings.from_env())
        record = await manager.start(StartRequest("npm", ("run", "dev"), cwd="/path/to"))
        answer = await manager.read_log(record.id, LogQuery(last_lines=20))
        stopped = await manager.stop(record.id)  # the whole tree, verified gone
        await manager.shutdown()                 # every tree; the instance's files

    Lifetime of one process::

        start ─▶ running ─(leader reaped, pipes at EOF or drain grace spent)─▶ ended
                    └─ stop: SIGTERM+SIGCONT to the tree, grace, SIGKILL (trees/ending.py)

    Each record has a log and, while watched, a current :class:`Run`; ``start`` and
    ``restart`` both begin one through ``_launch``. The run publishes the final status only
    once output is captured, so ``exited`` comes with the last line the child wrote and
    ``stopped`` is never reported while the tree is still shutting down.

    The constructor has side effects on this process and the machine: it makes this process
    a child subreaper (orphans of managed trees are re-parented here and reaped), raises
    the soft open-file limit to the hard one, ends the leftovers of dead instances found in
    the state dir (never a reused pid), and starts the sentinel that ends every managed
    tree if this process dies, even by SIGKILL. It opens the history (``core/history``),
    where every run is recorded and its log kept, and marks the runs of dead instances
    ``interrupted``; ids of earlier instances stay readable through :meth:`past`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        platform.select(settings.platform)  # the OS backend, for this whole process
        self.instance_dir = Path(settings.state_dir) / f"{os.getpid()}-{secrets.token_hex(4)}"
        self._records: dict[str, ProcessRecord] = {}
        self._runs: dict[str, Run] = {}  # the current run of each record still watched
        self._logs: dict[str, LogStore] = {}
        self.ended_held = EndedRecords()  # which ended records leave memory, and when
        self.listeners = Listeners()
        # Subreaper, raised fd limit, leftovers of dead servers ended, records, sentinel.
        self.ownership = Ownership(self.instance_dir, Path(settings.state_dir), settings.stop_grace)
        self._tasks = BackgroundTasks()
        self._restarting: set[str] = set()
        self.facts = LiveFacts()
        self.ports = PortWatch()  # listening ports of every tree, kept fresh for 'list'
        self._run_hooks = RunHooks(
            output=self.listeners.output,
            reaped=lambda run: self.ownership.leader_reaped(run.pgid),
            time_out=self._run_timed_out,
            ended=self._run_ended,
            closed=self._run_closed,
        )
        self.recorder = Recorder.of_instance(settings, self.instance_dir, self._logs)

    # ---------------------------------------------------------------- queries
    def add_exit_listener(self, listener: ExitListener) -> None:
        """``listener(record)`` runs once per run, after its output has been captured."""
        self.listeners.on_exit(listener)

    def add_output_listener(self, listener: OutputListener) -> Callable[[], None]:
        """``listener(process_id)`` runs after each chunk of output reaches the log (cheap,
        must not raise); returns a callable that removes it."""
        return self.listeners.on_output(listener)

    def add_records_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` runs when a record is added (start) or forgotten (remove)."""
        self.listeners.on_records(listener)

    def add_forget_listener(self, listener: Callable[[str], None]) -> None:
        """``listener(process_id)`` runs when an ended record leaves memory for the history."""
        self.listeners.on_forgotten(listener)

    async def read_log(self, process_id: str, query: LogQuery) -> LogAnswer:
        """Answer ``query`` on the process's log: the one way the server reads a log
        (``get-log``, the log resource, ``wait``'s pattern search).

        The log is snapshotted at the call, on the event loop, before the first await; the
        query then reads that snapshot in a worker thread, so a long grep never blocks the
        loop and output keeps being drained meanwhile. On return the answer reflects the
        log as it was at the call. Raises UnknownProcess (listing the known ids) for an
        unknown ``process_id``; an id of an earlier instance is read from the history
        (see :meth:`past`)."""
        if process_id not in self._logs:
            return await self.recorder.read(await self.past(process_id), query)
        snapshot = self._logs[process_id].snapshot()
        return await asyncio.to_thread(run_query, snapshot, query)

    async def past(self, process_id: str) -> PastRun:
        """The newest run of ``process_id`` recorded by an earlier instance (one that shut
        down or died): its final record, ``interrupted`` if that instance died while it ran.
        Raises UnknownProcess (listing the live ids) when the history has none."""
        found = await self.recorder.past(process_id)
        if found is None:
            raise UnknownProcess(process_id, list(self._records))
        return found

    async def wait_ended(self, process_id: str) -> ProcessRecord:
        """Wait until the process has ended and its output is captured."""
        record = self.get(process_id)
        run = self._runs.get(process_id)
        if run is not None and not run.ended.is_set():
            await run.ended.wait()
        return record

    # ---------------------------------------------------------------- control
    async def start(
        self, request: StartRequest, on_spawn: Callable[[ProcessRecord], None] | None = None
    ) -> ProcessRecord:
        """Start what ``request`` asks (see :class:`StartRequest`; ``keep`` and ``reuse``
        are the caller's business): ``command`` with ``args`` (no shell unless
        ``options.shell``) in ``cwd``, with ``base_env`` (default: the server's environment)
        overlaid with ``env``; restarts reuse both. No ``cwd``: ``folder`` (the caller's
        default folder), else the server's working directory; a relative ``cwd`` resolves
        against ``folder`` (else the server's).

        ``on_spawn(record)`` runs as soon as the child is spawned and listed, before this
        call awaits anything more (the history's stats): a caller records what it owns
        there, so a cancel of the rest of ``start`` cannot leave a child nobody owns.

        On return the process is running under a new id: its record is listed, its output
        drains into its log, its exit is watched and its tree is owned. Raises InvalidRequest
        (bad options, label in use) or StartFailed (cwd, env, program, descriptors), and
        then leaves no record, no log and no process; also InvalidRequest when a ``limits``
        cap is exceeded (sizes of the request, ``MAX_PROCESSES`` running). Ended records
        due to leave memory (``core/retention.py``) leave first. ``request.run_settings``
        (the caller's; default: the manager's) say how it is stopped and how much output
        is kept, for this process and its restarts."""
        options = request.options
        options.check()
        self.forget_due()
        active = len(self._records) - len(self.ended_held)  # running, or ending
        if active >= limits.MAX_PROCESSES:
            raise InvalidRequest(
                f"{active} processes are running, the limit is {limits.MAX_PROCESSES}; "
                "'stop' some first ('list' shows them)"
            )
        self._check_label(options.label)
        record = ProcessRecord(
            id=new_id(self._records),
            command=request.command,
            args=list(request.args),
            # checked and absolute before the spawn: the history's stats need it
            cwd=launch.resolve_cwd(join_cwd(request.cwd, request.folder)),
            env=dict(request.env or {}),
            notify_on_exit=request.notify_on_exit,
            options=options,
            base_env=None if request.base_env is None else dict(request.base_env),
            run_settings=request.run_settings,
        )
        async with self.recorder.starting(record) as log_dir:  # then sets record.history
            # A log creates no file before the child writes: a failed start leaves none.
            run = self.run_settings_of(record)
            log = LogStore(log_dir, run.log_max_bytes, run.max_line_bytes)
            self._launch(record, log)
            self._records[record.id] = record
            self._logs[record.id] = log
            self.listeners.records_changed()
            if on_spawn is not None:
                on_spawn(record)
        return record

    async def start_or_reuse(
        self, request: StartRequest, on_spawn: Callable[[ProcessRecord], None] | None = None
    ) -> tuple[ProcessRecord, bool]:
        """``(record, reused)``: the running process that already has ``options.label``
        (``reused`` true; nothing is started, whatever its command), else what ``start``
        starts. Raises InvalidRequest without a label, else what ``start`` raises."""
        label = request.options.label
        if label is None:
            raise InvalidRequest(
                "reuse: true answers the running process with the same label, so it needs "
                "a 'label' (e.g. label: 'web'); pass one, or leave reuse out"
            )
        existing = self.labelled(label)
        if existing is not None:
            return existing, True
        return await self.start(request, on_spawn), False

    async def send_input(self, process_id: str, text: str = "", eof: bool = False) -> InputReceipt:
        """Write ``text`` to the process's stdin (then end the input when ``eof``).

        On return the bytes are written or queued (never blocking). Raises UnknownProcess,
        or InvalidRequest when it has no input (stdin 'null'), has ended, or input ended."""
        record = self.get(process_id)
        return write_input(record, self._runs.get(process_id), text, eof)

    async def send_signal(self, process_id: str, name: str) -> ProcessRecord:
        """Send signal ``name`` (one of SIGNALS) to the process group of a running process.

        On return it is sent, and an end by it counts as ours (``stopped``). Raises
        UnknownProcess, or InvalidRequest for another signal or an ended process."""
        record = self.get(process_id)
        send_group_signal(record, self._runs.get(process_id), name)
        return record

    async def restart(
        self,
        process_id: str,
        changes: RestartChanges | None = None,
        default_cwd: str | None = None,
    ) -> ProcessRecord:
        """Stop the process (as ``stop``) if running, then start it again under the same id.

        On return it runs again: same command, args, cwd, env overlay and options, except
        what ``changes`` changes (a relative ``cwd`` against ``default_cwd``); a new pid;
        status running with no exit code, signal or end time; ``restarts`` one more; the
        log continues after a marker line, its numbering unbroken. Raises UnknownProcess
        (no such id, or removed meanwhile), InvalidRequest (bad changes, a restart of it
        is under way, or its label is taken), ProcessRunning (the old run outlived
        SIGKILL), or what ``start`` raises when it cannot start again; then the record
        keeps its final state and what it was started with (no change is applied)."""
        record = self.get(process_id)
        changes = changes or RestartChanges()
        options = changes.options(record.options)  # checked before anything is stopped
        if process_id in self._restarting:
            raise InvalidRequest(
                f"process {process_id!r} is already being restarted; wait for that call to answer"
            )
        self._check_label(record.options.label, exclude=process_id)
        self._restarting.add(process_id)
        try:
            if record.running:
                await self.stop(process_id)
            async with self.recorder.restarting(record, self._logs[process_id]):
                return self._start_again(record, changes, options, default_cwd)
        finally:
            self._restarting.discard(process_id)

    def _start_again(
        self,
        record: ProcessRecord,
        changes: RestartChanges,
        options: StartOptions,
        default_cwd: str | None,
    ) -> ProcessRecord:
        process_id = record.id
        if self._records.get(process_id) is not record:  # removed while it was stopping
            raise UnknownProcess(process_id, list(self._records))
        old = self._runs.get(process_id)
        if old is not None and old.exit_status is None:
            raise ProcessRunning(
                f"process {process_id!r} (pid {record.pid}) did not end after SIGKILL (stuck in "
                "the kernel?); it cannot be restarted until it has ended"
            )
        self._runs.pop(process_id, None)
        if old is not None:  # a grandchild may still hold the old pipes
            proc.signal_group(old.pgid, signal.SIGKILL)
            old.release()
        before = (record.args, record.cwd, record.env, record.options)
        if changes.args is not None:
            record.args = list(changes.args)
        if changes.cwd is not None:
            record.cwd = join_cwd(changes.cwd, default_cwd)
        if changes.env is not None:
            record.env = dict(changes.env)
        record.options = options
        try:
            self._launch(record, self._logs[process_id])
        except BaseException:
            record.args, record.cwd, record.env, record.options = before
            raise
        record.restarts += 1
        self.ended_held.discard(process_id)
        self._logs[process_id].note(
            f"--- process-mcp: restarted at {record.started_at} "
            f"(restart {record.restarts}, new pid {record.pid}) ---"
        )
        return record

    def _launch(self, record: ProcessRecord, log: LogStore) -> None:
        """The one spawn path of start and restart: ``start_run``, then the run is current.

        On return the record describes the new run (as ``start_run`` says), the run is
        current, its tree owned and its facts sampled. Raises as ``start_run`` does, with
        the record unchanged and nothing left running."""
        run = start_run(
            record,
            log,
            self.ownership,
            drain_grace=self.settings.exit_drain_grace,
            hooks=self._run_hooks,
        )
        self._runs[record.id] = run
        self.facts.track(run.pgid, self.ownership.current_cgroup(record.id))
        self.ports.track(run.pgid)

    def _check_label(self, label: str | None, exclude: str | None = None) -> None:
        if label is None:
            return
        for other in self._records.values():
            if other.running and other.options.label == label and other.id != exclude:
                raise InvalidRequest(
                    f"label {label!r} is already used by running process {other.id!r} "
                    f"(pid {other.pid}, command {limits.quote(other.command, 80)}); choose "
                    "another label, "
                    f"or 'stop' or 'restart' process {other.id!r}"
                )

    async def stop(self, process_id: str, force: bool = False) -> StopResult:
        """End the process tree; answer once it has ended (an ended process: its leftovers).

        Runs the shutdown sequence of ``trees/ending.py`` (``force``: SIGKILL at once). On
        return the record is final unless the leader outlived SIGKILL (stuck in the kernel),
        and the result's ``survivors`` lists what of the tree is still alive (empty: verified
        gone, escapees included). Raises UnknownProcess for an unknown id.
        """
        record = self.get(process_id)
        run = self._runs.get(process_id)
        if run is None or run.ended.is_set():
            # a grandchild or daemon that outlived it
            return StopResult(record, await self._end_leftovers(record))
        # The leader may already have ended by itself while a grandchild holds its output
        # open: end that tree too, but keep the status it earned (exited/crashed).
        if run.exit_status is None:
            record.stop_requested = True
        grace = 0.0 if force else self.run_settings_of(record).stop_grace
        survivors = await stopping.end_tree(self.ownership, process_id, run.pgid, run.ended, grace)
        return StopResult(record, survivors)

    async def shutdown(self) -> None:
        """Stop every process tree in parallel under one deadline, then delete our files.

        On return nothing this server started runs (unless stuck in the kernel), the
        sentinel is dismissed, every end is recorded in the history (whose logs stay) and
        the instance directory is gone. Raises nothing of its own.
        """
        running = [
            (self._records[pid], run) for pid, run in self._runs.items() if not run.ended.is_set()
        ]
        for record, run in running:
            if run.exit_status is None:  # see stop(): an earned status is kept
                record.stop_requested = True
            if run.timeout is not None:
                run.timeout.cancel()
        trees = {run.process_id: (run.pgid, run.ended) for _, run in running}
        await stopping.end_all(self.ownership, trees, self.settings.stop_grace)
        for run in list(self._runs.values()):
            proc.signal_group(run.pgid, signal.SIGKILL)
            run.release()
        await stopping.end_all(self.ownership, {}, 0)  # what was forked during the shutdown
        await self.ports.close()
        await self.ownership.close()
        await self.recorder.close()  # every end recorded; the history's logs stay
        shutil.rmtree(self.instance_dir, ignore_errors=True)

    # ------------------------------------------------------------- internals
    def _run_timed_out(self, run: Run) -> None:
        """The run lasted its ``timeoutSeconds``: stop it as ``stop`` would."""
        self._tasks.spawn(self.stop(run.process_id))

    def _run_ended(self, run: Run) -> None:
        self.facts.forget(run.pgid)
        self.ports.forget(run.pgid)
        if not proc.group_exists(run.pgid):
            self.ownership.release(run.pgid)
        self.recorder.ended(run.record)
        self.listeners.exited(run.record)

    def _run_closed(self, run: Run) -> None:
        if self._runs.get(run.process_id) is run:
            del self._runs[run.process_id]
            if not run.record.running:
                self.ended_held.ended(run.process_id)
                self.forget_due()

    def run_settings_of(self, record: ProcessRecord) -> RunSettings:
        """The settings ``record`` was started with (else the manager's own)."""
        return record.run_settings or self.settings.run
