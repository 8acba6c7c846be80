"""One line of the host's process table, the same in both OS backends: a leaf that the
backends (``core/platform``) and everything above them share, so that the seam imports
nothing that imports it back."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """One line of the process table, as read at one moment."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start_ticks: int  # the start time, in the backend's clock (with the pid: one process)

    @property
    def zombie(self) -> bool:
        """Dead but not yet reaped (or being reaped): counts as gone."""
        return self.state in ZOMBIE_STATES


ZOMBIE_STATES = ("Z", "X")  # the same letters in both backends' tables


def from_stat(pid: int, stat: tuple[str, int, int, int, int]) -> ProcInfo:
    """``ProcInfo`` of a table line ``(state, ppid, pgid, sid, start)``."""
    state, ppid, pgid, sid, start_ticks = stat
    return ProcInfo(pid, ppid, pgid, sid, state, start_ticks)
