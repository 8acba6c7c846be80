"""The process manager: the one place that starts, watches, stops and forgets processes.

Lifetime of one process::

    start ──▶ running ──(leader reaped and both pipes at EOF, or the drain grace spent)──▶ ended
                 │                                                         stopped/exited/crashed
                 └── stop: SIGTERM to the group (+ escapees), grace, SIGKILL to what is left

The terminal status is published only once output has been captured, so a client that
sees ``exited`` also sees the last line the child wrote, and ``stopped`` is never reported
while the process is still shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

from process_mcp.core import launch, tree
from process_mcp.core.draining import PipeDrain
from process_mcp.core.errors import ProcessRunning, UnknownProcess
from process_mcp.core.ids import new_id
from process_mcp.core.logstore import LogStore
from process_mcp.core.reaping import ExitStatus, watch_exit
from process_mcp.core.records import ProcessRecord, Status, utc_now
from process_mcp.core.settings import Settings

ExitListener = Callable[[ProcessRecord], None]
OutputListener = Callable[[str], None]
_TREE_POLL = 0.02
_KILL_WAIT = 10.0  # only a process stuck in the kernel (state D) outlasts SIGKILL this long


@dataclass
class _Live:
    """Internals of a process whose output or exit is still being watched."""

    popen: Popen[bytes]
    pgid: int
    drains: dict[str, PipeDrain] = field(default_factory=dict)
    exit_status: ExitStatus | None = None
    release_pidfd: Callable[[], None] | None = None
    drain_timer: asyncio.TimerHandle | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class ProcessManager:
    """Owns every managed process of one server instance. Not thread-safe: use from one loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance_dir = Path(settings.state_dir) / f"{os.getpid()}-{secrets.token_hex(4)}"
        self._records: dict[str, ProcessRecord] = {}
        self._live: dict[str, _Live] = {}
        self._logs: dict[str, LogStore] = {}
        self._exit_listeners: list[ExitListener] = []
        self._output_listeners: dict[object, OutputListener] = {}
        self._records_listeners: list[Callable[[], None]] = []

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

    async def wait_ended(self, process_id: str) -> ProcessRecord:
        """Wait until the process has ended and its output is captured."""
        record = self.get(process_id)
        live = self._live.get(process_id)
        if live is not None and not live.ended.is_set():
            await live.ended.wait()
        return record

    # ---------------------------------------------------------------- control
    async def start(
        self,
        command: str,
        args: list[str] | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        notify_on_exit: bool = False,
    ) -> ProcessRecord:
        """Start ``command`` with ``args`` (no shell). Raises StartFailed with no record left."""
        args = list(args or [])
        resolved_cwd = launch.resolve_cwd(cwd)
        full_env = launch.build_env(env)
        popen = launch.spawn([command, *args], resolved_cwd, full_env)
        process_id = new_id(self._records)
        record = ProcessRecord(
            id=process_id,
            command=command,
            args=args,
            cwd=resolved_cwd,
            env=dict(env or {}),
            notify_on_exit=notify_on_exit,
            pid=popen.pid,
        )
        self._records[process_id] = record
        self._logs[process_id] = LogStore(
            self.instance_dir / "logs" / process_id,
            self.settings.log_max_bytes,
            self.settings.max_line_bytes,
        )
        self._watch(record, popen)
        self._records_changed()
        return record

    async def stop(self, process_id: str, force: bool = False) -> ProcessRecord:
        """End the process tree and answer once it has ended (an ended process: its record)."""
        record = self.get(process_id)
        live = self._live.get(process_id)
        if live is None or live.ended.is_set():
            if live is not None:
                tree.signal_group(live.pgid, signal.SIGKILL)  # a leftover grandchild
            return record
        record.stop_requested = True
        await self._terminate(live, force=force, grace=self.settings.stop_grace)
        return record

    async def remove(self, process_id: str) -> ProcessRecord:
        """Forget an ended process and delete its log."""
        record = self.get(process_id)
        if record.running:
            raise ProcessRunning(
                f"process {process_id!r} (pid {record.pid}) is still running; "
                "call 'stop' first, then 'remove'"
            )
        live = self._live.pop(process_id, None)
        if live is not None:
            tree.signal_group(live.pgid, signal.SIGKILL)
            self._close_drains(live)
        del self._records[process_id]
        self._logs.pop(process_id).delete()
        self._records_changed()
        return record

    async def shutdown(self) -> None:
        """Stop every process tree in parallel under one deadline, then delete our files."""
        running = [
            (self._records[pid], live)
            for pid, live in self._live.items()
            if not live.ended.is_set()
        ]
        for record, _ in running:
            record.stop_requested = True
        table = tree.process_table()  # one scan of /proc for all trees, not one per tree
        await asyncio.gather(
            *(
                self._terminate(live, force=False, grace=self.settings.stop_grace, table=table)
                for _, live in running
            )
        )
        for live in list(self._live.values()):
            tree.signal_group(live.pgid, signal.SIGKILL)
            self._close_drains(live)
        shutil.rmtree(self.instance_dir, ignore_errors=True)

    # ------------------------------------------------------------- internals
    def _records_changed(self) -> None:
        for listener in list(self._records_listeners):
            listener()

    def _watch(self, record: ProcessRecord, popen: Popen[bytes]) -> None:
        live = _Live(popen=popen, pgid=popen.pid)
        self._live[record.id] = live
        log = self._logs[record.id]
        for stream, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
            assert pipe is not None
            fd = os.dup(pipe.fileno())
            pipe.close()
            live.drains[stream] = PipeDrain(
                fd,
                on_data=lambda data, s=stream: self._output(record.id, log, s, data),
                on_eof=lambda s=stream: self._stream_ended(record, live, s),
            )
        live.release_pidfd = watch_exit(
            popen.pid, lambda status: self._reaped(record, live, status)
        )

    def _output(self, process_id: str, log: LogStore, stream: str, data: bytes) -> None:
        log.append(stream, data)
        for listener in list(self._output_listeners.values()):
            listener(process_id)

    def _reaped(self, record: ProcessRecord, live: _Live, status: ExitStatus) -> None:
        live.popen.returncode = status.exit_code if status.exit_code is not None else -1
        live.exit_status = status
        if any(d.open for d in live.drains.values()):
            # A grandchild may hold the pipe open forever: publish the end after a short grace,
            # and keep draining whatever it still writes.
            loop = asyncio.get_running_loop()
            live.drain_timer = loop.call_later(
                self.settings.exit_drain_grace, self._finish, record, live
            )
        else:
            self._finish(record, live)

    def _stream_ended(self, record: ProcessRecord, live: _Live, stream: str) -> None:
        self._logs[record.id].end_stream(stream)
        if live.exit_status is None or any(d.open for d in live.drains.values()):
            return
        if live.ended.is_set():
            self._live.pop(record.id, None)  # a grandchild finally closed the pipe
        else:
            self._finish(record, live)

    def _finish(self, record: ProcessRecord, live: _Live) -> None:
        if live.ended.is_set():
            return
        if live.drain_timer is not None:
            live.drain_timer.cancel()
        status = live.exit_status or ExitStatus(None, None)
        record.exit_code, record.signal = status.exit_code, status.signal
        record.ended_at = utc_now()
        if record.stop_requested:
            record.status = Status.STOPPED
        elif status.exit_code == 0:
            record.status = Status.EXITED
        else:
            record.status = Status.CRASHED
        live.ended.set()
        if not any(d.open for d in live.drains.values()):
            self._live.pop(record.id, None)
        for listener in self._exit_listeners:
            listener(record)

    async def _terminate(
        self,
        live: _Live,
        *,
        force: bool,
        grace: float,
        table: list[tree.ProcInfo] | None = None,
    ) -> None:
        """SIGTERM the group and its escapees, give them ``grace``, SIGKILL what remains."""
        members = tree.descendants(live.pgid, table)
        if not force:
            tree.kill_tree(live.pgid, members, signal.SIGTERM)
            tree.kill_tree(live.pgid, members, signal.SIGCONT)  # a stopped process cannot exit
            if await self._tree_gone(live, members, grace):
                return
        members = members + tree.descendants(live.pgid)
        tree.kill_tree(live.pgid, members, signal.SIGKILL)
        await self._tree_gone(live, members, _KILL_WAIT)

    async def _tree_gone(self, live: _Live, members: list[tree.ProcInfo], timeout: float) -> bool:
        """Wait until the leader has ended and nothing of the group or snapshot lives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(live.ended.wait(), timeout)
        while live.ended.is_set():
            if not tree.group_exists(live.pgid) and not tree.alive(members):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(_TREE_POLL)
        return False

    def _close_drains(self, live: _Live) -> None:
        for drain in live.drains.values():
            drain.close()
        if live.release_pidfd is not None:
            live.release_pidfd()
