"""How long an ended process stays in memory: flat memory for a supervisor that lives for days.

A supervisor may run thousands of short commands a day; each ended record held in memory
costs its record, its log store's index and a line of every snapshot. So an ended process
leaves memory (never its history, where its record and log stay) once it has been ended for
``HOLD_SECONDS``, or as soon as more than ``MOST_HELD`` ended ones are held (oldest end
first). Its id keeps answering ``get-status``, ``get-log`` and ``wait`` from the history.

:class:`EndedRecords` only keeps the order and time of the ends and says which are due;
the manager does the forgetting (it owns the tables). Pure bookkeeping: no I/O.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MOST_HELD = 1000
"""Ended processes held in memory at most; more leave, oldest end first."""
HOLD_SECONDS = 3600.0
"""An ended process leaves memory this long after its end."""


class EndedRecords:
    """The ended processes still held, oldest end first (see the module docstring)."""

    def __init__(
        self,
        most: int = MOST_HELD,
        seconds: float = HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.most = most
        self.seconds = seconds
        self._clock = clock
        self._ended: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ended)

    def __contains__(self, process_id: object) -> bool:
        return process_id in self._ended

    def ended(self, process_id: str) -> None:
        """``process_id``'s run has ended and its output is captured: it now counts."""
        self._ended.pop(process_id, None)
        self._ended[process_id] = self._clock()

    def age(self, process_id: str) -> float | None:
        """Seconds since its end, None when it is not held as ended."""
        ended_at = self._ended.get(process_id)
        return None if ended_at is None else self._clock() - ended_at

    def discard(self, process_id: str) -> None:
        """It runs again (restart) or was removed: it no longer counts."""
        self._ended.pop(process_id, None)

    def due(self) -> list[str]:
        """The ids to forget now, oldest end first: beyond ``most``, or ended
        ``seconds`` ago or more. They no longer count once returned."""
        leaving: list[str] = []
        horizon = self._clock() - self.seconds
        while self._ended:
            process_id, ended_at = next(iter(self._ended.items()))
            if len(self._ended) <= self.most and ended_at > horizon:
                break
            del self._ended[process_id]
            leaving.append(process_id)
        return leaving
