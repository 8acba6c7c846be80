"""Learning that a child exited, without a thread per child and without ``waitpid(-1)``.

Two ways, one per backend (``core/platform``), both taking exactly the watched pid's status
so that no exit status is ever stolen from anyone else:

* **pidfd** (linux): a pidfd becomes readable when its process exits; the event loop
  watches it like a socket and we then ``waitpid`` that pid. Immediate, one fd per child.
* **SIGCHLD + waitpid** (posix, e.g. macOS, which has no pidfd): one watch per event loop
  keeps the watched pids; ``SIGCHLD`` (through ``loop.add_signal_handler``, where the loop
  runs in the main thread) and a backstop timer (``POLL_BACKSTOP``, or ``POLL_ALONE``
  when no handler could be installed) make it ``waitpid(pid, WNOHANG)`` each of them.
  Immediate with the handler; signals that coalesce cost nothing, since every watched pid
  is asked each time.

Both work the same on Python 3.11 (whose default child watcher starts one thread per
child) and later versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import weakref
from collections.abc import Callable
from dataclasses import dataclass

POLL_BACKSTOP = 0.25  # with a SIGCHLD handler: only for a signal someone else took
POLL_ALONE = 0.02  # without one (a loop outside the main thread)


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int | None
    signal: str | None

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"SIG{number}"
            return cls(exit_code=None, signal=name)
        return cls(exit_code=os.waitstatus_to_exitcode(status), signal=None)


UNKNOWN = ExitStatus(exit_code=None, signal=None)  # someone else reaped it


def _reap(pid: int) -> ExitStatus | None:
    """``pid``'s status if it has exited (reaping it), None while it runs."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # someone else reaped it: we cannot know how it ended
        return UNKNOWN
    return ExitStatus.from_wait_status(status) if reaped else None


def watch_exit_pidfd(pid: int, on_exit: Callable[[ExitStatus], None]) -> Callable[[], None]:
    """The linux way: the loop watches a pidfd of ``pid``."""
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(pid)
    closed = False

    def release() -> None:
        nonlocal closed
        if not closed:
            closed = True
            loop.remove_reader(pidfd)
            os.close(pidfd)

    def ready() -> None:
        status = _reap(pid)
        if status is not None:
            release()
            on_exit(status)

    loop.add_reader(pidfd, ready)
    return release


def watch_exit_waitpid(pid: int, on_exit: Callable[[ExitStatus], None]) -> Callable[[], None]:
    """The posix way: ``pid`` joins the running loop's :class:`ChildWatch`."""
    loop = asyncio.get_running_loop()
    watch = _WATCHES.get(loop)
    if watch is None:
        watch = _WATCHES[loop] = ChildWatch(loop)
    return watch.add(pid, on_exit)


class ChildWatch:
    """The watched children of one event loop, asked on SIGCHLD and by a backstop timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watched: dict[int, Callable[[ExitStatus], None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.signalled = False
        with contextlib.suppress(RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(signal.SIGCHLD, self.check)
            self.signalled = True
        self.interval = POLL_BACKSTOP if self.signalled else POLL_ALONE

    def add(self, pid: int, on_exit: Callable[[ExitStatus], None]) -> Callable[[], None]:
        self._watched[pid] = on_exit
        self._loop.call_soon(self.check)  # it may have exited before the handler existed
        if self._timer is None:
            self._timer = self._loop.call_later(self.interval, self._tick)

        def release() -> None:
            if self._watched.get(pid) is on_exit:
                del self._watched[pid]

        return release

    def check(self) -> None:
        """Reap every watched child that has exited and tell its watcher."""
        for pid, on_exit in list(self._watched.items()):
            status = _reap(pid)
            if status is not None and self._watched.pop(pid, None) is on_exit:
                on_exit(status)

    def _tick(self) -> None:
        self._timer = None
        self.check()
        if self._watched:
            self._timer = self._loop.call_later(self.interval, self._tick)


_WATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ChildWatch] = (
    weakref.WeakKeyDictionary()
)
