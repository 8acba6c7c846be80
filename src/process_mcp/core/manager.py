"""The process manager: the one place that starts, watches, stops and forgets processes.

Lifetime of one process::

    start ──▶ running ──(leader reaped and both pipes at EOF, or the drain grace spent)──▶ ended
                 │                                                         stopped/exited/crashed
                 └── stop: SIGTERM to the group (+ escapees), grace, SIGKILL to what is left
                           (trees/ending.py: the one sequence every way of ending uses)

The manager keeps the records, their logs and the current :class:`~process_mcp.core.run.Run`
of each; ``start`` and ``restart`` both begin a run through ``_launch``. The run publishes
the terminal status only once output has been captured, so a client that sees ``exited``
also sees the last line the child wrote, and ``stopped`` is never reported while the
process is still shutting down.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from process_mcp.core.errors import InvalidRequest, ProcessRunning, UnknownProcess
from process_mcp.core.facts.live import LiveFacts, TreeFacts
from process_mcp.core.ids import new_id
from process_mcp.core.logs.query import LogAnswer, LogQuery, run_query
from process_mcp.core.logs.store import LogStore
from process_mcp.core.options import StartOptions
from process_mcp.core.records import ProcessRecord, StopResult
from process_mcp.core.run import Run, RunHooks, start_run
from process_mcp.core.settings import Settings
from process_mcp.core.signals import SIGNALS, terminal_signals
from process_mcp.core.spawn.stdin import InputReceipt
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.core.trees import proc, stopping
from process_mcp.core.trees.ownership import Ownership

ExitListener = Callable[[ProcessRecord], None]
OutputListener = Callable[[str], None]


class ProcessManager:
    """Owns every managed process of one server instance. Not thread-safe: use from one loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance_dir = Path(settings.state_dir) / f"{os.getpid()}-{secrets.token_hex(4)}"
        self._records: dict[str, ProcessRecord] = {}
        self._live: dict[str, Run] = {}  # the current run of each record still watched
        self._logs: dict[str, LogStore] = {}
        self._exit_listeners: list[ExitListener] = []
        # Subreaper, raised fd limit, leftovers of dead servers ended, records, sentinel.
        self.ownership = Ownership(self.instance_dir, Path(settings.state_dir), settings.stop_grace)
        self._tasks = BackgroundTasks()
        self._restarting: set[str] = set()
        self.facts = LiveFacts()
        self._output_listeners: dict[object, OutputListener] = {}
        self._records_listeners: list[Callable[[], None]] = []
        self._run_hooks = RunHooks(
            output=self._run_output,
            reaped=lambda run: self.ownership.leader_reaped(run.pgid),
            time_out=self._run_timed_out,
            ended=self._run_ended,
            closed=self._run_closed,
        )

    # ---------------------------------------------------------------- queries
    def add_exit_listener(self, listener: ExitListener) -> None:
        """``listener(record)`` runs once per process, after its output has been captured."""
        self._exit_listeners.append(listener)

    def add_output_listener(self, listener: OutputListener) -> Callable[[], None]:
        """``listener(process_id)`` runs after each chunk of output reaches the log.

        Lets waits and subscriptions react to output instead of polling the log. It runs on
        the drain's hot path, so it must be cheap and must not raise. Returns a callable
        that removes the listener (idempotent).
        """
        token = object()
        self._output_listeners[token] = listener

        def remove() -> None:
            self._output_listeners.pop(token, None)

        return remove

    def add_records_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` runs when a record is added (start) or forgotten (remove)."""
        self._records_listeners.append(listener)

    def get(self, process_id: str) -> ProcessRecord:
        try:
            return self._records[process_id]
        except KeyError:
            raise UnknownProcess(process_id, list(self._records)) from None

    def find(self, process_id: str) -> ProcessRecord | None:
        return self._records.get(process_id)

    def records(self) -> list[ProcessRecord]:
        return list(self._records.values())

    def log(self, process_id: str) -> LogStore:
        self.get(process_id)
        return self._logs[process_id]

    async def read_log(self, process_id: str, query: LogQuery) -> LogAnswer:
        """Answer ``query`` on the process's log: the one way the server reads a log
        (``get-log``, the log resource, ``wait``'s pattern search).

        The log is snapshotted at the call, on the event loop, before the first await; the
        query then reads that snapshot in a worker thread, so a long grep never blocks the
        loop and output keeps being drained meanwhile. On return the answer reflects the
        log as it was at the call. Raises UnknownProcess (listing the known ids) for an
        unknown ``process_id``."""
        snapshot = self.log(process_id).snapshot()
        return await asyncio.to_thread(run_query, snapshot, query)

    async def wait_ended(self, process_id: str) -> ProcessRecord:
        """Wait until the process has ended and its output is captured."""
        record = self.get(process_id)
        live = self._live.get(process_id)
        if live is not None and not live.ended.is_set():
            await live.ended.wait()
        return record

    def tree_pids(self, process_id: str) -> list[int]:
        """Live pids of the process's whole tree (group, marked escapees, descendants)."""
        record = self.find(process_id)  # removed meanwhile by a concurrent call: nothing left
        if record is None or record.pid is None:
            return []
        members = self.ownership.snapshot().members(process_id, record.pid)
        leader = proc.read_proc(record.pid)
        live = self._live.get(process_id)
        if leader and not leader.zombie and live is not None and live.exit_status is None:
            members.append(leader)
        return sorted(info.pid for info in members)

    # ---------------------------------------------------------------- control
    async def start(
        self,
        command: str,
        args: list[str] | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        notify_on_exit: bool = False,
        options: StartOptions | None = None,
        base_env: dict[str, str] | None = None,
    ) -> ProcessRecord:
        """Start ``command`` with ``args`` (no shell unless ``options.shell``) in ``cwd``
        (default: the server's), with ``base_env`` (default: the server's environment)
        overlaid with ``env``; restarts reuse both.

        On return the process is running under a new id: its record is listed, its output
        drains into its log, its exit is watched and its tree is owned. Raises InvalidRequest
        (bad options, label in use) or StartFailed (cwd, env, program, descriptors), and
        then leaves no record, no log and no process."""
        args = list(args or [])
        options = options or StartOptions()
        options.check()
        self._check_label(options.label)
        record = ProcessRecord(
            id=new_id(self._records),
            command=command,
            args=args,
            cwd=cwd or "",  # resolved by start_run
            env=dict(env or {}),
            notify_on_exit=notify_on_exit,
            options=options,
            base_env=None if base_env is None else dict(base_env),
        )
        # A log creates no file before the child writes: a failed start leaves none.
        log = LogStore(
            self.instance_dir / "logs" / record.id,
            self.settings.log_max_bytes,
            self.settings.max_line_bytes,
        )
        self._launch(record, log)
        self._records[record.id] = record
        self._logs[record.id] = log
        self._records_changed()
        return record

    async def send_input(self, process_id: str, text: str = "", eof: bool = False) -> InputReceipt:
        """Write ``text`` to the process's stdin (then end the input when ``eof``)."""
        record = self.get(process_id)
        if not record.options.accepts_input:
            raise InvalidRequest(
                f"process {process_id!r} was started with stdin 'null', so it has no input to "
                "write to; start it again with stdin: 'pipe' (or pty: true) to send input"
            )
        live = self._live.get(process_id)
        if not record.running or live is None or live.stdin is None:
            raise InvalidRequest(
                f"process {process_id!r} has ended (status {record.status.value}), so nothing "
                f"reads its input; call 'restart' with id {process_id!r} to run it again"
            )
        if record.options.pty:
            record.signals_sent.update(terminal_signals(text))
        try:
            live.stdin.write(text.encode(), eof=eof)
        except InvalidRequest as exc:
            raise InvalidRequest(f"process {process_id!r}: {exc}") from None
        return live.stdin.receipt()

    async def send_signal(self, process_id: str, name: str) -> ProcessRecord:
        """Send signal ``name`` (one of SIGNALS) to the process group of a running process."""
        record = self.get(process_id)
        if name not in SIGNALS:
            raise InvalidRequest(f"signal {name!r} is not allowed; use one of {', '.join(SIGNALS)}")
        live = self._live.get(process_id)
        if not record.running or live is None:
            raise InvalidRequest(
                f"process {process_id!r} has already ended (status {record.status.value}); "
                "there is nothing to signal"
            )
        number = SIGNALS[name]
        record.signals_sent.add(number)
        proc.signal_group(live.pgid, number)
        return record

    async def restart(self, process_id: str) -> ProcessRecord:
        """Stop the process (as ``stop``) if running, then start it again under the same id.

        On return it runs again: same command, args, cwd, env overlay and options; a new
        pid; status running with no exit code, signal or end time; ``restarts`` one more;
        the log continues after a marker line, its numbering unbroken. Raises UnknownProcess
        (no such id, or removed meanwhile), InvalidRequest (a restart of it is under way, or
        its label is taken), ProcessRunning (the old run outlived SIGKILL), or what ``start``
        raises when it cannot start again; then the record keeps its final state."""
        record = self.get(process_id)
        if process_id in self._restarting:
            raise InvalidRequest(
                f"process {process_id!r} is already being restarted; wait for that call to answer"
            )
        self._check_label(record.options.label, exclude=process_id)
        self._restarting.add(process_id)
        try:
            if record.running:
                await self.stop(process_id)
            return self._start_again(record)
        finally:
            self._restarting.discard(process_id)

    def _start_again(self, record: ProcessRecord) -> ProcessRecord:
        process_id = record.id
        if self._records.get(process_id) is not record:  # removed while it was stopping
            raise UnknownProcess(process_id, list(self._records))
        old = self._live.get(process_id)
        if old is not None and old.exit_status is None:
            raise ProcessRunning(
                f"process {process_id!r} (pid {record.pid}) did not end after SIGKILL (stuck in "
                "the kernel?); it cannot be restarted until it has ended"
            )
        self._live.pop(process_id, None)
        if old is not None:  # a grandchild may still hold the old pipes
            proc.signal_group(old.pgid, signal.SIGKILL)
            old.release()
        self._launch(record, self._logs[process_id])
        record.restarts += 1
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
        self._live[record.id] = run
        self.facts.track(run.pgid)

    def live_facts(self, process_id: str) -> dict[str, object] | None:
        """CPU, memory, processes, ports, idle time and log size; None once it has ended."""
        record = self.get(process_id)
        facts = self._tree_facts(process_id)
        if facts is None:
            return None
        last = record.last_output_at or 0.0
        return {
            "cpuPercent": facts.cpu_percent,
            "memoryBytes": facts.memory_bytes,
            "processCount": facts.process_count,
            "listeningPorts": facts.listening_ports,
            "idleSeconds": round(max(time.monotonic() - last, 0.0), 3),
            "logBytes": self._logs[process_id].size,
        }

    def listening_ports(self, process_id: str) -> list[int]:
        """TCP ports its tree listens on (empty once it has ended); at most 1 s old."""
        facts = self._tree_facts(process_id)
        return [] if facts is None else facts.listening_ports

    def _tree_facts(self, process_id: str) -> TreeFacts | None:
        """The running tree's sampled facts; None once the process has ended."""
        live = self._live.get(process_id)
        if not self.get(process_id).running or live is None:
            return None
        return self.facts.tree_facts(live.pgid)

    def _check_label(self, label: str | None, exclude: str | None = None) -> None:
        if label is None:
            return
        for other in self._records.values():
            if other.running and other.options.label == label and other.id != exclude:
                raise InvalidRequest(
                    f"label {label!r} is already used by running process {other.id!r} "
                    f"(pid {other.pid}, command {other.command!r}); choose another label, "
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
        live = self._live.get(process_id)
        if live is None or live.ended.is_set():
            # a grandchild or daemon that outlived it
            return StopResult(record, await self._end_leftovers(record))
        # The leader may already have ended by itself while a grandchild holds its output
        # open: end that tree too, but keep the status it earned (exited/crashed).
        if live.exit_status is None:
            record.stop_requested = True
        grace = 0.0 if force else self.settings.stop_grace
        survivors = await stopping.end_tree(
            self.ownership, process_id, live.pgid, live.ended, grace
        )
        return StopResult(record, survivors)

    async def remove(self, process_id: str) -> ProcessRecord:
        """Forget an ended process, end what it left running, and delete its log.

        On return the id is unknown and no process of its tree runs (unless stuck in the
        kernel). Raises UnknownProcess, or ProcessRunning while it runs.
        """
        record = self.get(process_id)
        if record.running:
            raise ProcessRunning(
                f"process {process_id!r} (pid {record.pid}) is still running; "
                "call 'stop' first, then 'remove'"
            )
        live = self._live.pop(process_id, None)
        if live is not None:
            live.release()
        await self._end_leftovers(record)  # no id would reach a daemon it left any more
        if record.pid is not None:
            self.ownership.release(record.pid)
        del self._records[process_id]
        self._logs.pop(process_id).delete()
        self._records_changed()
        return record

    async def shutdown(self) -> None:
        """Stop every process tree in parallel under one deadline, then delete our files.

        On return nothing this server started runs (unless stuck in the kernel), the
        sentinel is dismissed and the instance directory is gone. Raises nothing of its own.
        """
        running = [
            (self._records[pid], live)
            for pid, live in self._live.items()
            if not live.ended.is_set()
        ]
        for record, live in running:
            if live.exit_status is None:  # see stop(): an earned status is kept
                record.stop_requested = True
            if live.timeout is not None:
                live.timeout.cancel()
        trees = {live.process_id: (live.pgid, live.ended) for _, live in running}
        await stopping.end_all(self.ownership, trees, self.settings.stop_grace)
        for live in list(self._live.values()):
            proc.signal_group(live.pgid, signal.SIGKILL)
            live.release()
        await stopping.end_all(self.ownership, {}, 0)  # what was forked during the shutdown
        await self.ownership.close()
        shutil.rmtree(self.instance_dir, ignore_errors=True)

    # ------------------------------------------------------------- internals
    def _records_changed(self) -> None:
        for listener in list(self._records_listeners):
            listener()

    def _run_output(self, process_id: str) -> None:
        for listener in list(self._output_listeners.values()):
            listener(process_id)

    def _run_timed_out(self, run: Run) -> None:
        """The run lasted its ``timeoutSeconds``: stop it as ``stop`` would."""
        self._tasks.spawn(self.stop(run.process_id))

    def _run_ended(self, run: Run) -> None:
        self.facts.forget(run.pgid)
        if not proc.group_exists(run.pgid):
            self.ownership.release(run.pgid)
        for listener in self._exit_listeners:
            listener(run.record)

    def _run_closed(self, run: Run) -> None:
        if self._live.get(run.process_id) is run:
            del self._live[run.process_id]

    async def _end_leftovers(self, record: ProcessRecord) -> list[int]:
        """After the leader ended: SIGKILL what of its tree still runs; returns survivors."""
        if record.pid is None:
            return []
        return await stopping.end_leftovers(self.ownership, record.id, record.pid)
