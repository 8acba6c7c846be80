"""Measuring whether the server stays responsive while an attack runs: ``ping`` it in a
loop next to the attack and keep every round trip."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from support import Client

PING_LIMIT = 0.1  # seconds: SPEC §9, the server answers ping within 100 ms during any attack
PING_EVERY = 0.02


@asynccontextmanager
async def pinging(client: Client) -> AsyncIterator[list[float]]:
    """Ping ``client``'s server every ``PING_EVERY`` s while the body runs; yields the list
    of round trips (seconds), filled as they come and final once the body has returned."""
    times: list[float] = []

    async def loop() -> None:
        while True:
            began = time.monotonic()
            await client.session.send_ping()
            times.append(time.monotonic() - began)
            await anyio.sleep(PING_EVERY)

    async with anyio.create_task_group() as group:
        group.start_soon(loop)
        try:
            yield times
        finally:
            group.cancel_scope.cancel()


def assert_responsive(times: list[float]) -> None:
    """Every ping answered within ``PING_LIMIT``; one outlier up to 1 s is forgiven, for a
    machine shared with other test runs (a frozen loop misses by seconds, not by one slot)."""
    assert times, "no ping completed during the attack"
    ordered = sorted(times)
    worst = ordered[-2] if len(ordered) > 1 else ordered[-1]
    assert worst < PING_LIMIT, f"ping round trips (s): {ordered[-5:]}"
    assert ordered[-1] < 1.0, f"ping round trips (s): {ordered[-5:]}"
