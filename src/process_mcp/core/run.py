"""A run: one spawned child, watched from its spawn until its end is published.

A run owns the child's ends of its standard streams (output pipes drained into the log,
stdin written without blocking), the pidfd that tells when the leader exits, and two
timers (``timeoutSeconds``, and the drain grace after the exit). ``start_run`` spawns the
child and begins its run: the one spawn path of start and restart (a restart is a new run
of the same record). The manager keeps the records and which run is current.

The end is published exactly once: ``ended`` is set and ``RunHooks.ended`` called when the
leader has been reaped *and* either every output pipe has reached EOF or ``drain_grace``
has passed since the reap (a grandchild may hold a pipe open forever). Only then are the
record's status, exit code, signal and end time set, so a client that sees ``exited``
also sees the last line the child wrote, and ``stopped`` is never reported while the
process is still shutting down. What a grandchild writes after that still reaches the log
until the pipe closes (``RunHooks.closed``) or the run is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from process_mcp.core import limits
from process_mcp.core.errors import StartFailed
from process_mcp.core.logs.store import LogStore
from process_mcp.core.platform import watch_exit
from process_mcp.core.records import ProcessRecord, Status, utc_now
from process_mcp.core.signals import ended_by_our_signal
from process_mcp.core.spawn import fdlimit, launch, wiring
from process_mcp.core.spawn.drain import PipeDrain
from process_mcp.core.spawn.reaping import ExitStatus
from process_mcp.core.spawn.stdin import StdinWriter
from process_mcp.core.trees import proc
from process_mcp.core.trees.ownership import Ownership


@dataclass(frozen=True)
class RunHooks:
    """What a run tells its owner. Each runs on the event loop and must not raise."""

    output: Callable[[str], None]
    """After each chunk of output reached the log (argument: the process id); hot path."""
    reaped: Callable[[Run], None]
    """The leader has been reaped; its end may not be published yet."""
    time_out: Callable[[Run], None]
    """``timeoutSeconds`` passed while it ran: ``record.timed_out`` is set; stop the run."""
    ended: Callable[[Run], None]
    """The end is published: the record holds its final state and ``ended`` is set."""
    closed: Callable[[Run], None]
    """After ``ended``, once no output pipe is open: nothing more will come, forget it."""


def start_run(
    record: ProcessRecord,
    log: LogStore,
    ownership: Ownership,
    *,
    drain_grace: float,
    hooks: RunHooks,
) -> Run:
    """Spawn ``record``'s command as it says (cwd, env overlay, options), owned by
    ``ownership``, and watch it as a new run writing to ``log``.

    On return the record describes the new run: ``cwd`` the resolved directory (checked
    again on a restart: it may be gone), ``pid`` the new child's, status running, no exit
    code, signal or end time, ``startedAt`` now, no stop, timeout or signal of ours yet;
    and the tree is owned. Raises StartFailed/InvalidRequest with nothing left running and
    the record unchanged: a failed spawn leaves nothing, and a watch that cannot be set up
    (out of descriptors) kills and reaps the child first; a request over a cap of
    ``limits`` is refused before anything is resolved."""
    limits.check_start(record.command, record.args, record.env)
    record.options.check()
    cwd = launch.resolve_cwd(record.cwd)
    env = launch.build_env(record.env, record.base_env)
    earliest = ownership.before_spawn(record.command)
    ownership.mark(env, record.id)
    wired = wiring.start_wired(
        record.command, record.args, cwd, env, record.options, ownership.placer(record.id)
    )
    try:
        run = Run(record, log, wired, drain_grace=drain_grace, hooks=hooks)
    except OSError as exc:
        raise StartFailed(fdlimit.describe_shortage(record.command, exc.errno)) from None
    record.cwd, record.pid = cwd, run.pgid
    record.status, record.started_at = Status.RUNNING, utc_now()
    record.exit_code = record.signal = record.ended_at = None
    record.stop_requested = record.timed_out = False
    record.reason = None
    record.signals_sent.clear()
    ownership.adopt(record.id, run.pgid, record.command, record.args, earliest)
    return run


class Run:
    """One spawned child's pipes, pidfd, timers and end (see the module docstring).

    Constructing it starts the watching. If that cannot be set up (an ``OSError``, i.e. out
    of descriptors), the child is killed and reaped, every fd of ``wired`` is closed, and
    the error is raised: nothing of the spawn is left.
    """

    def __init__(
        self,
        record: ProcessRecord,
        log: LogStore,
        wired: wiring.Wired,
        *,
        drain_grace: float,
        hooks: RunHooks,
    ) -> None:
        self.record = record
        self.log = log
        self.popen = wired.popen
        self.pgid = wired.popen.pid  # its own session: the leader's pid is the group's id
        self.process_id = record.id
        self.exit_status: ExitStatus | None = None  # set when the leader has been reaped
        self.ended = asyncio.Event()  # set when the end is published
        self.stdin: StdinWriter | None = None
        self.timeout: asyncio.TimerHandle | None = None
        self._drains: dict[str, PipeDrain] = {}
        self._drain_timer: asyncio.TimerHandle | None = None
        self._release_pidfd: Callable[[], None] | None = None
        self._drain_grace = drain_grace
        self._hooks = hooks
        try:
            self._watch(wired)
        except OSError:
            self._undo(wired)
            raise
        record.last_output_at = time.monotonic()  # idle time counts from the start

    def release(self) -> None:
        """Stop watching: close stdin, the output pipes (unread output is left to the
        kernel) and the pidfd. Does not publish an end that was not published yet."""
        if self.stdin is not None:
            self.stdin.close()
        for drain in self._drains.values():
            drain.close()
        if self._release_pidfd is not None:
            self._release_pidfd()

    # ------------------------------------------------------------- internals
    def _watch(self, wired: wiring.Wired) -> None:
        for stream, fd in wired.outputs.items():
            self._drains[stream] = PipeDrain(
                fd,
                on_data=lambda data, s=stream: self._output(s, data),
                on_eof=lambda s=stream: self._output_closed(s),
            )
        if wired.input is not None:
            self.stdin = StdinWriter(wired.input, wired.eof)
        self._release_pidfd = watch_exit(self.pgid, self._leader_reaped)
        seconds = self.record.options.timeout_seconds
        if seconds is not None:
            self.timeout = asyncio.get_running_loop().call_later(seconds, self._time_out)

    def _undo(self, wired: wiring.Wired) -> None:
        """Kill and reap a child whose watching could not be set up, and close its fds."""
        proc.signal_group(self.pgid, signal.SIGKILL)
        self.popen.wait()
        owned: set[int | None] = {drain.fd for drain in self._drains.values()}
        if self.stdin is not None:
            owned.add(wired.input)
        self.release()
        for fd in [*wired.outputs.values(), wired.input]:
            if fd is not None and fd not in owned:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _outputs_open(self) -> bool:
        return any(drain.open for drain in self._drains.values())

    def _output(self, stream: str, data: bytes) -> None:
        self.record.last_output_at = time.monotonic()
        self.log.append(stream, data)
        self._hooks.output(self.process_id)

    def _time_out(self) -> None:
        """The run lasted its ``timeoutSeconds``: mark it and have the owner stop it."""
        if self.ended.is_set() or self.record.stop_requested or self.exit_status is not None:
            return
        self.record.timed_out = True
        self._hooks.time_out(self)

    def _leader_reaped(self, status: ExitStatus) -> None:
        self.popen.returncode = status.exit_code if status.exit_code is not None else -1
        self.exit_status = status
        self._hooks.reaped(self)
        if self._outputs_open():
            # A grandchild may hold the pipe open forever: publish the end after a short
            # grace, and keep draining whatever it still writes.
            loop = asyncio.get_running_loop()
            self._drain_timer = loop.call_later(self._drain_grace, self._publish_end)
        else:
            self._publish_end()

    def _output_closed(self, stream: str) -> None:
        self.log.end_stream(stream)
        if self._outputs_open():
            return
        self.log.close()  # no output can come any more: hold no fd for an ended process
        if self.exit_status is None:
            return
        if self.ended.is_set():
            self._hooks.closed(self)  # a grandchild finally closed the pipe
        else:
            self._publish_end()

    def _publish_end(self) -> None:
        """Set the record's final state, then ``ended`` (see the module docstring)."""
        if self.ended.is_set():
            return
        for timer in (self._drain_timer, self.timeout):
            if timer is not None:
                timer.cancel()
        if self.stdin is not None:
            self.stdin.close()
        record = self.record
        status = self.exit_status or ExitStatus(None, None)
        record.exit_code, record.signal = status.exit_code, status.signal
        record.ended_at = utc_now()
        if record.stop_requested:
            record.status = Status.STOPPED
        elif status.exit_code == 0:
            record.status = Status.EXITED
        elif ended_by_our_signal(record.signals_sent, status.signal, status.exit_code):
            record.status = Status.STOPPED
        else:
            record.status = Status.CRASHED
        self.ended.set()
        self._hooks.ended(self)
        if not self._outputs_open():
            self._hooks.closed(self)
