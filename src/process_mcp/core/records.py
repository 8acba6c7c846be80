"""The record kept for each managed process, and its status vocabulary."""

from __future__ import annotations

import enum
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from process_mcp.core.options import StartOptions
from process_mcp.core.settings import RunSettings

COMMAND_LINE_CHARS = 120  # how much of a command line a summary shows


class Status(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    EXITED = "exited"
    CRASHED = "crashed"
    INTERRUPTED = "interrupted"  # a past run whose server died while it ran (history only)
    NOT_EXISTS = "not-exists"


# How a run ends, in the order the wire lists them; a past run may also be ``interrupted``.
END_STATUSES = (Status.STOPPED.value, Status.EXITED.value, Status.CRASHED.value)
# The keys of ``public()`` that say how a run ended, in the order ``exit_facts`` gives them.
EXIT_FACTS = ("id", "status", "exitCode", "signal", "endedAt")


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
    reason: str | None = None  # why the supervisor ended this run (a limit), else None
    # Earlier runs of the same command, args and cwd, as the history knew at start:
    # ``{runs, failures, medianSeconds}``, or None. Only ``start``'s answer shows it.
    history: dict[str, Any] | None = None
    # Private: signals sent through ``signal`` during this run (an end by one of them is
    # ours, so not a crash), and when the process last wrote output (time.monotonic()).
    signals_sent: set[int] = field(default_factory=set)
    last_output_at: float | None = None
    _line: tuple[list[str], str, StartOptions, str] | None = field(
        default=None, repr=False, compare=False
    )
    # Private: the environment ``env`` overlays (None: the manager's own), kept for restart.
    base_env: dict[str, str] | None = field(default=None, repr=False)
    # Private: how this process is stopped and how much of its output is kept (the
    # caller's settings, sent with its start; None: the manager's own). Kept for restart.
    run_settings: RunSettings | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.status is Status.RUNNING

    def exit_facts(self) -> dict[str, Any]:
        """How it ended, camelCase: the one payload behind ``events``, ``process/exit`` and
        exit log messages (each adds or renames around it; a new dict each call). Its
        values are :meth:`public`'s (the ``EXIT_FACTS`` keys), and ``reason`` when set."""
        public = self.public()
        facts = {key: public[key] for key in EXIT_FACTS}
        if self.reason:
            facts["reason"] = self.reason
        return facts

    def public(self) -> dict[str, Any]:
        """The record as clients see it (camelCase); ``env`` stays private."""
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
            "reason": self.reason,
        }

    def command_line(self, limit: int = COMMAND_LINE_CHARS) -> str:
        """The command as one would type it (a shell line as given), cut to ``limit``
        characters with a trailing ``…`` when longer. Remembered until ``command``, ``args``
        or ``options`` are replaced (``list`` asks it of every record on each call)."""
        cached = self._line
        if (
            cached is not None
            and cached[0] is self.args
            and cached[1] is self.command
            and cached[2] is self.options
            and limit == COMMAND_LINE_CHARS
        ):
            return cached[3]
        line = self.command if self.options.shell else shlex.join([self.command, *self.args])
        line = line if len(line) <= limit else line[: limit - 1] + "…"
        if limit == COMMAND_LINE_CHARS:
            self._line = (self.args, self.command, self.options, line)
        return line

    def summary(self, listening_ports: list[int]) -> dict[str, Any]:
        """One line of facts for ``list`` (camelCase): id, pid, status, label, the command
        line cut to ``COMMAND_LINE_CHARS``, exitCode, signal, startedAt and the given
        ports. Reads only memory."""
        return {
            "id": self.id,
            "pid": self.pid,
            "status": self.status.value,
            "label": self.options.label,
            "command": self.command_line(),
            "exitCode": self.exit_code,
            "signal": self.signal,
            "startedAt": self.started_at,
            "listeningPorts": listening_ports,
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
