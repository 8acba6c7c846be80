"""``events`` in every tool answer: exits a client has not been told about yet.

Clients drop custom notifications and most never show standard ones to the model, but
every tool answer reaches it. So each answer carries the processes that ended since the
previous answer to the same client, each reported exactly once, and a model learns of a
crash on its next call of any tool, without polling.
"""

from __future__ import annotations

from collections import deque
from copy import deepcopy
from typing import Any

from mcp_types import Tool
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from process_mcp.core import ProcessRecord
from process_mcp.server.portable import output_schema
from process_mcp.server.schemas import EndedStatus

KEEP_EVENTS = 1000  # a client that stays away longer only hears of the newest ones


class ExitEvent(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    id: str = Field(description="Process id.")
    status: EndedStatus
    exit_code: int | None = Field(description="Exit code, when it exited by itself.")
    signal: str | None = Field(description="Name of the signal that ended it.")
    ended_at: str | None = Field(description="ISO-8601 UTC time it ended.")


# It rides every tool's output schema, so it declares only the identifying fields (true
# of every event; ``exitCode``, ``signal`` and ``endedAt`` come too, as ExitEvent says):
# the whole tools/list must stay small.
EVENTS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            name: output_schema(ExitEvent)["properties"][name] for name in ("id", "status")
        },
    },
}


class ExitEvents:
    """Ended processes, numbered, with one read cursor per client; an event recorded for
    one client (the one that started or touched the process) is given to that client only."""

    def __init__(self, keep: int = KEEP_EVENTS) -> None:
        self._events: deque[tuple[int, str | None, dict[str, Any]]] = deque(maxlen=keep)
        self._seq = 0
        self._cursors: dict[str, int] = {}

    def record(self, record: ProcessRecord, client: str | None = None) -> None:
        self._seq += 1
        self._events.append((self._seq, client, record.exit_facts()))

    def meet(self, client: str) -> None:
        """Start a client's cursor at its first request: it hears of exits from then on."""
        self._cursors.setdefault(client, self._seq)

    def forget(self, client: str) -> None:
        """The client's session ended: drop its cursor."""
        self._cursors.pop(client, None)

    def clients(self) -> set[str]:
        return set(self._cursors)

    def take(self, client: str) -> list[dict[str, Any]]:
        """The events this client has not been given yet; they count as given."""
        cursor = self._cursors.get(client, 0)
        self._cursors[client] = self._seq
        return [
            deepcopy(event)
            for seq, owner, event in self._events
            if seq > cursor and owner in (None, client)
        ]


def declare_events(tool: Tool) -> Tool:
    """``tool`` with ``events`` in its output schema: not required, since an answer leaves
    it out when no exit is left to report."""
    if not tool.output_schema:
        return tool
    schema = deepcopy(tool.output_schema)
    schema.setdefault("properties", {})["events"] = deepcopy(EVENTS_SCHEMA)
    return tool.model_copy(update={"output_schema": schema})
