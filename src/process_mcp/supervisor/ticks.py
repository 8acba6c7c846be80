"""What the service pushes to one session besides record changes: ``output`` ticks (a
subscription's change notice, not the data) and a wait's ``progress``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from process_mcp.supervisor.protocol.ops import Output, Progress
from process_mcp.supervisor.transport import Session

OUTPUT_INTERVAL = 1.0  # seconds between two ``output`` events of one process to one session
MIN_OUTPUT_INTERVAL = 0.01  # the shortest a session may ask for


def progress_to(
    session: Session, token: str | None
) -> Callable[[float, str], Awaitable[None]] | None:
    """A wait's progress reporter that sends ``progress`` events tagged with the request's
    ``token`` to ``session``; None when the request asked for no progress."""
    if token is None:
        return None

    async def progress(elapsed: float, message: str) -> None:
        session.publish("progress", Progress(token, elapsed, message))

    return progress


class OutputTicks:
    """``output`` events to one session: the first at once, then at most one per
    ``interval`` per process (later ones coalesced into one at the end of the interval)."""

    def __init__(self, session: Session, interval: float = OUTPUT_INTERVAL) -> None:
        self._session = session
        self._interval = interval
        self._last: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def touch(self, process_id: str) -> None:
        if process_id in self._timers:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self._last.get(process_id, float("-inf")) + self._interval
        if now >= due:
            self._fire(process_id)
        else:
            self._timers[process_id] = loop.call_later(due - now, self._fire, process_id)

    def forget(self, process_id: str) -> None:
        timer = self._timers.pop(process_id, None)
        if timer is not None:
            timer.cancel()
        self._last.pop(process_id, None)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _fire(self, process_id: str) -> None:
        self._timers.pop(process_id, None)
        self._last[process_id] = asyncio.get_running_loop().time()
        self._session.publish("output", Output(process_id))
