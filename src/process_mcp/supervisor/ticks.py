"""What the service pushes to one session besides record changes: ``output`` ticks (a
subscription's change notice, not the data) and a wait's ``progress``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from process_mcp.core.throttle import Throttle
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


class OutputTicks(Throttle):
    """``output`` events to one session: the first at once, then at most one per
    ``interval`` per process (later ones coalesced into one at the end of the interval;
    the rate limit is :class:`~process_mcp.core.throttle.Throttle`, keyed by process id)."""

    def __init__(self, session: Session, interval: float = OUTPUT_INTERVAL) -> None:
        super().__init__(lambda process_id: session.publish("output", Output(process_id)), interval)
