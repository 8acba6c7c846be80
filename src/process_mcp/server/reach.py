"""Which clients an unsolicited notification can reach right now.

Over stdio the one client always can. Over streamable HTTP only a client holding its
standalone GET stream open can: a notification for any other session is built, routed and
then dropped by the SDK. Hundreds of abandoned sessions would make every start and exit
pay for all of them, so the fan-outs (:mod:`messages`, :mod:`resources`) go through
:meth:`Reach.select`, which costs what the open streams cost, not what the sessions do.
The HTTP front-end reports streams opening and closing (``http.StreamTracker``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


class Reach:
    """Open standalone streams per client key; everyone is reachable until
    :meth:`only_open_streams` is called (stdio)."""

    def __init__(self) -> None:
        self._everyone = True
        self._open: dict[str, int] = {}

    def only_open_streams(self) -> None:
        """From now on only clients with an open stream are reachable (HTTP)."""
        self._everyone = False

    def opened(self, client: str) -> None:
        self._open[client] = self._open.get(client, 0) + 1

    def closed(self, client: str) -> None:
        left = self._open.get(client, 0) - 1
        if left > 0:
            self._open[client] = left
        else:
            self._open.pop(client, None)

    def select(self, by_client: Mapping[str, T]) -> list[tuple[str, T]]:
        """The entries of ``by_client`` whose client is reachable, in O(reachable)."""
        if self._everyone:
            return list(by_client.items())
        return [(key, by_client[key]) for key in list(self._open) if key in by_client]
