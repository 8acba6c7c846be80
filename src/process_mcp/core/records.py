"""The record kept for each managed process, and its status vocabulary (SPEC §2)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from process_mcp.core.options import StartOptions


class Status(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    EXITED = "exited"
    CRASHED = "crashed"
    NOT_EXISTS = "not-exists"


def utc_now() -> str:
    """ISO-8601 UTC with millisecond precision and a ``Z``, like JavaScript's ``toISOString``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class ProcessRecord:
    """What a client may know about one process. Mutated only by the manager and the run
    watching it (``core/run.py``: the end, idle time, a timeout)."""

    id: str
    command: str
    args: list[str]
    cwd: str
    env: dict[str, str]
    notify_on_exit: bool
    pid: int | None = None
    status: Status = Status.RUNNING
    exit_code: int | None = None
    signal: str | None = None
    started_at: str = field(default_factory=utc_now)
    ended_at: str | None = None
    stop_requested: bool = False
    options: StartOptions = field(default_factory=StartOptions)
    timed_out: bool = False
    restarts: int = 0
    # Private: signals sent through ``signal`` during this run (an end by one of them is
    # ours, so not a crash), and when the process last wrote output (time.monotonic()).
    signals_sent: set[int] = field(default_factory=set)
    last_output_at: float | None = None
    # Private: the environment ``env`` overlays (None: the manager's own), kept for restart.
    base_env: dict[str, str] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.status is Status.RUNNING

    def exit_facts(self) -> dict[str, Any]:
        """How it ended, camelCase: the one payload behind ``events``, ``process/exit`` and
        exit log messages (each adds or renames around it; a new dict each call)."""
        return {
            "id": self.id,
            "status": self.status.value,
            "exitCode": self.exit_code,
            "signal": self.signal,
            "endedAt": self.ended_at,
        }

    def public(self) -> dict[str, Any]:
        """The record as clients see it (camelCase, SPEC §2); ``env`` stays private."""
        return {
            "id": self.id,
            "pid": self.pid,
            "status": self.status.value,
            "command": self.command,
            "args": list(self.args),
            "cwd": self.cwd,
            "exitCode": self.exit_code,
            "signal": self.signal,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "notifyOnExit": self.notify_on_exit,
            "label": self.options.label,
            "shell": self.options.shell,
            "stdin": self.options.stdin,
            "pty": self.options.pty,
            "timeoutSeconds": self.options.timeout_seconds,
            "timedOut": self.timed_out,
            "restarts": self.restarts,
        }


@dataclass(frozen=True)
class StopResult:
    """What ``stop`` answers: the process's record, and what of its tree outlived SIGKILL.

    ``survivors`` are the pids found alive by the last look of the shutdown sequence
    (escapees included); empty means the whole tree is verified gone.
    """

    record: ProcessRecord
    survivors: list[int]

    @property
    def tree_gone(self) -> bool:
        return not self.survivors
