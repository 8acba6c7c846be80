"""The server's handle on its sentinel (the program is ``sentinel_program.py``).

Started lazily by the first ``start`` (a server that never starts anything costs nothing),
then told each managed leader over a pipe. Only the server holds the pipe's write end
(O_CLOEXEC, ``close_fds``), so the sentinel sees EOF exactly when the server is gone, however
it died. Messages are batched for ``BATCH_DELAY`` (one write and one wake-up of the
sentinel per batch, not two per spawn); until a leader is sent, its tree is still found by
its ownership mark. Writes are non-blocking with a backlog, so a stalled sentinel can never
stall the event loop. If the sentinel dies (someone killed it), a new one is started and told
every leader again; at most ``_RESPAWNS`` times per minute, after which the server logs the
failure and runs without one rather than spinning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from process_mcp.core.platform import watch_exit
from process_mcp.core.spawn.reaping import ExitStatus
from process_mcp.core.trees import sentinel_program

logger = logging.getLogger(__name__)
PROGRAM = Path(sentinel_program.__file__).resolve()
_RESPAWNS = 5
_CLOSE_WAIT = 2.0
BATCH_DELAY = 0.02


class Sentinel:
    """Keeps one sentinel process informed of every managed leader (pid, start ticks)."""

    def __init__(
        self,
        token: str,
        instance_dir: Path,
        grace: float,
        cgroup: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        """``cgroup``: the server's cgroup subtree, whose ``jobs/`` it kills on a crash;
        ``extra_args``: the OS backend's (which process table the program reads)."""
        # The token goes down the pipe, first line: a command line is readable by every
        # local user, and the token finds (and so lets anyone read the environment of)
        # every managed process.
        self._token = token
        self._argv = [sys.executable, "-I", "-S", str(PROGRAM), str(instance_dir), f"{grace:g}"]
        self._argv += [str(cgroup) if cgroup is not None else "", *(extra_args or [])]
        self._leaders: dict[int, tuple[int, int]] = {}
        self._members: dict[int, int] = {}  # loose members (left group and session): start
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None
        self._backlog = bytearray()
        self._batch = bytearray()
        self._batch_timer: asyncio.TimerHandle | None = None
        self._exited: asyncio.Event | None = None
        self._respawns: list[float] = []
        self._closing = False
        self._given_up = False

    @property
    def pid(self) -> int | None:
        """The running sentinel's pid; None before the first register or after giving up."""
        return self._proc.pid if self._proc is not None else None

    def register(self, pid: int, start_ticks: tuple[int, int]) -> None:
        """Tell the sentinel about leader ``pid`` (starting it on first use); never raises.

        ``start_ticks``: the (earliest, latest) start time the leader can have. Sent with
        the next batch (:meth:`flush`).
        """
        self._leaders[pid] = start_ticks
        if self._proc is None and not self._closing and not self._given_up:
            self._spawn()  # sends every leader, this one included
        else:
            self._queue(f"+ {pid} {start_ticks[0]} {start_ticks[1]}\n".encode())

    def ensure(self) -> None:
        """Start the sentinel if it is not running (as :meth:`register` does): for what it
        cleans up besides leaders, such as the instance's cgroup subtree. Never raises."""
        if self._proc is None and not self._closing and not self._given_up:
            self._spawn()

    def member(self, pid: int, start: int) -> None:
        """Tell the sentinel about a tree member that left its leader's group and session
        (sticky membership, posix): it ends it too if still the same process. Never raises."""
        self._members[pid] = start
        if self._proc is not None:
            self._queue(f"m {pid} {start}\n".encode())

    def unregister(self, pid: int) -> None:
        """Tell the sentinel to forget leader ``pid`` (its tree is gone); never raises."""
        if self._leaders.pop(pid, None) is not None:
            self._queue(f"- {pid}\n".encode())

    async def close(self) -> None:
        """Clean exit: say ``bye`` (so it ends nothing), then wait briefly for it to exit.

        On return it has exited, or ``_CLOSE_WAIT`` has passed. Never raises."""
        self._closing = True
        if self._proc is None or self._exited is None:
            return
        self.flush()
        self._send(b"bye\n")
        self._flush()
        self._close_pipe()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exited.wait(), _CLOSE_WAIT)

    # ------------------------------------------------------------- internals
    def _spawn(self) -> None:
        try:
            proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:  # tried again at the next start; the marks still work
            logger.error(
                "cannot start the sentinel (%s %s): %s; until it runs, a SIGKILL of this "
                "server would leave its processes running",
                sys.executable,
                PROGRAM,
                exc,
            )
            return
        assert proc.stdin is not None
        self._fd = os.dup(proc.stdin.fileno())
        proc.stdin.close()
        os.set_blocking(self._fd, False)
        self._proc = proc
        self._backlog.clear()
        self._batch.clear()  # superseded by the full list sent below
        self._exited = exited = asyncio.Event()
        watch_exit(proc.pid, lambda status: self._died(proc, exited, status))
        leaders = b"".join(f"+ {p} {lo} {hi}\n".encode() for p, (lo, hi) in self._leaders.items())
        leaders += b"".join(f"m {p} {start}\n".encode() for p, start in self._members.items())
        self._send(f"{self._token}\n".encode() + leaders)

    def _queue(self, data: bytes) -> None:
        self._batch += data
        if self._batch_timer is None:
            loop = asyncio.get_running_loop()
            self._batch_timer = loop.call_later(BATCH_DELAY, self.flush)

    def flush(self) -> None:
        """Send the queued messages now (otherwise sent ``BATCH_DELAY`` after the first)."""
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        data, self._batch = bytes(self._batch), bytearray()
        self._send(data)

    def _send(self, data: bytes) -> None:
        if self._fd is None or not data:
            return
        if self._backlog:
            self._backlog += data
            return
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except BrokenPipeError:
            return  # it died; _died restarts it and resends every leader
        if written < len(data):
            self._backlog += data[written:]
            asyncio.get_running_loop().add_writer(self._fd, self._flush)

    def _flush(self) -> None:
        if self._fd is None:
            return
        try:
            while self._backlog:
                del self._backlog[: os.write(self._fd, self._backlog)]
        except BlockingIOError:
            return
        except BrokenPipeError:
            self._backlog.clear()
        asyncio.get_running_loop().remove_writer(self._fd)

    def _close_pipe(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_writer(self._fd)
            os.close(self._fd)
            self._fd = None

    def _died(
        self, proc: subprocess.Popen[bytes], exited: asyncio.Event, status: ExitStatus
    ) -> None:
        proc.returncode = status.exit_code if status.exit_code is not None else -1
        exited.set()
        if self._closing or proc is not self._proc:
            return
        self._close_pipe()
        self._proc = None
        now = time.monotonic()
        self._respawns = [t for t in self._respawns if now - t < 60] + [now]
        if len(self._respawns) > _RESPAWNS:
            self._given_up = True
            logger.error(
                "the sentinel keeps dying (%s); running without one: a SIGKILL of this server "
                "would leave its processes running",
                status,
            )
            return
        logger.warning("the sentinel ended (%s); starting a new one", status)
        self._spawn()
