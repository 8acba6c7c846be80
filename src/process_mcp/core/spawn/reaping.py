"""Learning that a child exited, without a thread per child and without ``waitpid(-1)``.

A pidfd becomes readable when its process exits; the event loop watches it like a
socket and we then ``waitpid`` exactly that pid. This works the same on Python 3.11
(whose default child watcher starts one thread per child) and later versions, and never
steals an exit status from anyone else.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass


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


def watch_exit(pid: int, on_exit: Callable[[ExitStatus], None]) -> Callable[[], None]:
    """Call ``on_exit`` once ``pid`` (our child) has exited and been reaped.

    Returns a function that stops watching and releases the pidfd.
    """
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
        try:
            reaped, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # someone else reaped it: we cannot know how it ended
            release()
            on_exit(ExitStatus(exit_code=None, signal=None))
            return
        if reaped == 0:
            return
        release()
        on_exit(ExitStatus.from_wait_status(status))

    loop.add_reader(pidfd, ready)
    return release
