"""Fire-and-forget tasks that are neither lost nor leaked.

asyncio keeps only a weak reference to a task, so a task nobody holds can be collected
mid-flight. :class:`BackgroundTasks` holds each one until it finishes, then lets it go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    """A set of running tasks, each dropped once done.

    Example::

        tasks = BackgroundTasks()
        tasks.spawn(session.send_notification(...))  # runs on; held until it finishes
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Schedule ``coro`` on the running loop; the task is held until it is done.

        Raises RuntimeError when no event loop is running (``coro`` is closed first).
        """
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            raise
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)
