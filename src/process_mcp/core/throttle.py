"""A per-key rate limit for change notices (resource updates, output ticks)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Throttle:
    """At most one ``send(key)`` per ``interval`` seconds per key: the first at once, later
    ones coalesced into one at the end of the interval, so a burst costs one notice and the
    last change is never left unsent. Use it from one event loop."""

    def __init__(self, send: Callable[[str], object], interval: float) -> None:
        self._send = send
        self._interval = interval
        self._last: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def touch(self, key: str) -> None:
        """``key`` changed: send now, or once its interval is over."""
        if key in self._timers:
            return
        loop = asyncio.get_running_loop()
        due = self._last.get(key, float("-inf")) + self._interval
        now = loop.time()
        if now >= due:
            self._fire(key)
        else:
            self._timers[key] = loop.call_later(due - now, self._fire, key)

    def flush(self, key: str) -> None:
        """Send now whatever the state (an exit), and drop the key's pending timer."""
        self._cancel(key)
        self._fire(key)

    def forget(self, key: str) -> None:
        """Drop ``key``: nothing pending is sent, and its next touch sends at once."""
        self._cancel(key)
        self._last.pop(key, None)

    def close(self) -> None:
        """Cancel every pending send."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _cancel(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self._last[key] = asyncio.get_running_loop().time()
        self._send(key)
