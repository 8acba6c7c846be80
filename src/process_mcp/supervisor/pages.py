"""What crosses the socket in bounded pieces, so that every message stays within the wire's
limit whatever the records hold (a record may carry 1 MiB of ``args``; nine of them once
made a one-message snapshot fail, and with it every new front-end): a snapshot in pages
(:class:`Pending`), and the ends an answer carries (:func:`take_exits`)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from process_mcp.core.records import ProcessRecord
from process_mcp.supervisor.protocol.documents import Entry, entry_size

if TYPE_CHECKING:
    from process_mcp.core import ProcessManager

PAGE_BYTES = 2 * 1024 * 1024  # JSON of one page (ASCII JSON: its wire bytes too)
ENTRY_OVERHEAD = 40  # an entry's envelope around the record: {"record": ..., "rev": N}
EXITS_BYTES = 1024 * 1024  # ends one answer carries (estimated JSON), beyond its first


class Pending:
    """The records of a snapshot not sent yet, as they were at its first page; true while
    any is left. A record removed (or let go) since is skipped."""

    def __init__(self, records: Iterable[ProcessRecord]) -> None:
        self._left: deque[ProcessRecord] = deque(records)

    def __bool__(self) -> bool:
        return bool(self._left)

    def page(self, manager: ProcessManager, entry: Callable[[ProcessRecord], Entry]) -> list[Entry]:
        """The next page: records (as ``entry`` makes them) up to ``PAGE_BYTES`` of JSON,
        one at least."""
        entries: list[Entry] = []
        size = 0
        while self._left:
            record = self._left[0]
            if manager.find(record.id) is not record:  # gone since the first page
                self._left.popleft()
                continue
            cost = len(json.dumps(record.public(), separators=(",", ":"))) + ENTRY_OVERHEAD
            if entries and size + cost > PAGE_BYTES:
                break
            entries.append(entry(record))
            size += cost
            self._left.popleft()
        return entries


def take_exits(queued: deque[Entry]) -> list[Entry]:
    """The queued ends an answer carries, oldest first: all of them, unless their records
    (a record may hold 1 MiB of ``args``) pass ``EXITS_BYTES``; then as many as fit, at
    least one, and the rest stay queued for the next answer. So no end is lost and every
    answer stays under the wire's limit (``listing.ANSWER_BUDGET`` leaves the room)."""
    taken: list[Entry] = []
    size = 0
    while queued:
        size += entry_size(queued[0])
        if taken and size > EXITS_BYTES:
            break
        taken.append(queued.popleft())
    return taken
