"""Processes as MCP resources, with change notifications.

``process://{id}`` is the record (JSON) and ``process://{id}/log`` the newest 64 KiB of
the cleaned log (text). A client that subscribes hears ``notifications/resources/updated``
when the process writes, at most once a second per URI so a flood cannot flood the
client, and once more when it ends; ``notifications/resources/list_changed`` is sent when
a process is started or removed.

Both protocol eras are served: handshake-era clients subscribe with
``resources/subscribe`` and get notifications on their session; 2026-07-28 clients open
a ``subscriptions/listen`` stream, fed through the SDK's subscription bus.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mcp import MCPError
from mcp_types import (
    INVALID_PARAMS,
    EmptyResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    SubscribeRequestParams,
    TextResourceContents,
    UnsubscribeRequestParams,
)

from process_mcp.core import ProcessRecord, limits
from process_mcp.core.logs.query import LogQuery
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.core.throttle import Throttle
from process_mcp.server import answers, sdk
from process_mcp.server.backend import Backend
from process_mcp.server.reach import Reach

SCHEME = "process://"
LOG_LIMIT = 64 * 1024
UPDATE_INTERVAL = 1.0
_URI = re.compile(r"^process://(?P<id>[^/]+)(?P<log>/log)?/?$")


def record_uri(process_id: str) -> str:
    return f"{SCHEME}{process_id}"


def log_uri(process_id: str) -> str:
    return f"{SCHEME}{process_id}/log"


async def log_text(manager: Backend, process_id: str, limit: int = LOG_LIMIT) -> str:
    """The newest ``limit`` bytes of the cleaned log, whole lines, with a note of the rest:
    ``get-log``'s own tail query through ``read_log``, so both always show the same text
    (read off the event loop). Raises UnknownProcess for an unknown id."""
    answer = await manager.read_log(process_id, LogQuery(max_bytes=limit - 128))
    header = []
    if answer.numbers and answer.numbers[0] > 1:
        earlier = answer.numbers[0] - 1
        header = [f"[{earlier} earlier lines not shown; read them with the get-log tool]"]
    if answer.redacted:
        header.append(f"[{answer.redacted} secrets redacted]")
    return "\n".join(header + answer.lines) + ("\n" if answer.lines else "")


class ProcessResources:
    """Resource handlers plus the subscription state of every client."""

    def __init__(self, manager: Backend, bus: sdk.ListenBus, reach: Reach) -> None:
        self.manager = manager
        self.bus = bus
        self._reach = reach
        # Handshake-era subscriptions: uri -> {client key: session}.
        self._subscribers: dict[str, dict[str, Any]] = {}
        # Handshake-era sessions that get list_changed (every client that has spoken).
        self._peers: dict[str, Any] = {}
        self._throttle = Throttle(self._send_updated, UPDATE_INTERVAL)
        self._tasks = BackgroundTasks()
        manager.add_output_listener(self._on_output)
        manager.add_records_listener(self._on_records_changed)
        bus.on_listening = lambda _: self._follow_output()

    def _follow_output(self) -> None:
        """Output ticks from the supervisor only while some client subscribed or listens."""
        self.manager.want_output(bool(self._subscribers) or self.bus.listening)

    def meet(self, ctx: Any) -> None:
        """Remember a handshake-era client so it hears ``list_changed``."""
        session = getattr(ctx, "session", None)
        if session is not None and sdk.is_handshake_era(session):
            self._peers[sdk.client_key(ctx)] = session

    def forget(self, client: str) -> None:
        """The client's session ended: drop it from the peers and every subscription."""
        self._peers.pop(client, None)
        for uri in list(self._subscribers):
            subscribers = self._subscribers[uri]
            subscribers.pop(client, None)
            if not subscribers:
                del self._subscribers[uri]
        self._follow_output()

    def clients(self) -> set[str]:
        keys = set(self._peers)
        for subscribers in self._subscribers.values():
            keys |= set(subscribers)
        return keys

    # --------------------------------------------------------------- handlers
    async def list_resources(
        self, ctx: Any, params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        self.meet(ctx)
        resources: list[Resource] = []
        for record in self.manager.records():
            label, ident = " ".join([record.command, *record.args]), record.id
            resources += [
                Resource(uri=record_uri(ident), name=f"process {ident}",
                         title=f"{label} ({record.status.value})", mime_type="application/json",
                         description=f"Record of process {ident}: status, pid, exit code, times."),
                Resource(uri=log_uri(ident), name=f"process {ident} log",
                         title=f"log of {label}", mime_type="text/plain",
                         description=f"Newest 64 KiB of the output of {ident} (ANSI removed)."),
            ]  # fmt: skip
        return ListResourcesResult(resources=resources)

    async def list_templates(
        self, ctx: Any, params: PaginatedRequestParams | None
    ) -> ListResourceTemplatesResult:
        self.meet(ctx)
        return ListResourceTemplatesResult(
            resource_templates=[
                ResourceTemplate(
                    uri_template="process://{id}",
                    name="process",
                    title="Process record",
                    description="Status, pid, command, exit code and times of a managed process.",
                    mime_type="application/json",
                ),
                ResourceTemplate(
                    uri_template="process://{id}/log",
                    name="process log",
                    title="Process output",
                    description="Newest 64 KiB of a process's stdout and stderr, cleaned.",
                    mime_type="text/plain",
                ),
            ]
        )

    async def read(self, ctx: Any, params: ReadResourceRequestParams) -> ReadResourceResult:
        self.meet(ctx)
        process_id, is_log = self._parse(params.uri)
        if is_log:
            text = await log_text(self.manager, process_id)
            contents = TextResourceContents(uri=params.uri, mime_type="text/plain", text=text)
        else:
            record = self.manager.get(process_id)
            data = answers.status(process_id, record, None)  # get-status's slim record
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            contents = TextResourceContents(uri=params.uri, mime_type="application/json", text=text)
        return ReadResourceResult(contents=[contents])

    async def subscribe(self, ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        """Subscribe the client to an existing process's resource; at most
        ``MAX_SUBSCRIPTIONS`` per client (a subscription to a URI nothing will ever
        update would only hold memory)."""
        self.meet(ctx)
        self._parse(params.uri)  # raises for a malformed URI or an unknown process
        key = sdk.client_key(ctx)
        subscribers = self._subscribers.get(params.uri, {})
        if key not in subscribers:
            held = sum(key in clients for clients in self._subscribers.values())
            if held >= limits.MAX_SUBSCRIPTIONS:
                raise MCPError(
                    INVALID_PARAMS,
                    f"this session already holds {held} subscriptions, the limit is "
                    f"{limits.MAX_SUBSCRIPTIONS}; resources/unsubscribe from some first "
                    "(those of removed processes end by themselves)",
                    {"uri": params.uri[: limits.QUOTE_CHARS]},
                )
        self._subscribers.setdefault(params.uri, {})[key] = ctx.session
        self._follow_output()
        return EmptyResult()

    async def unsubscribe(self, ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        self.meet(ctx)
        subscribers = self._subscribers.get(params.uri, {})
        subscribers.pop(sdk.client_key(ctx), None)
        if not subscribers:
            self._subscribers.pop(params.uri, None)
        self._follow_output()
        return EmptyResult()

    def _parse(self, uri: str) -> tuple[str, bool]:
        match = _URI.match(uri)
        if match is None:
            raise MCPError(
                INVALID_PARAMS,
                f"unknown resource URI {limits.quote(uri)}: use process://<id> or "
                "process://<id>/log with an id from 'list' (resources/list shows them all)",
                {"uri": uri[: limits.QUOTE_CHARS]},
            )
        process_id = match["id"]
        if self.manager.find(process_id) is None:
            raise MCPError(
                INVALID_PARAMS,
                f"no process with id {limits.quote(process_id)} for {limits.quote(uri)}; "
                "call 'list' or "
                "resources/list to see the ids",
                {"uri": uri[: limits.QUOTE_CHARS]},
            )
        return process_id, match["log"] is not None

    # ------------------------------------------------------------ core events
    def _wanted(self, uri: str) -> bool:
        return uri in self._subscribers or self.bus.listening

    def _on_output(self, process_id: str) -> None:
        uri = log_uri(process_id)
        if self._wanted(uri):
            self._throttle.touch(uri)

    def on_exit(self, record: ProcessRecord) -> None:
        for uri in (record_uri(record.id), log_uri(record.id)):
            if self._wanted(uri):
                self._throttle.flush(uri)

    def _on_records_changed(self) -> None:
        if self._subscribers:  # O(processes): only when someone subscribed
            self._forget_removed()
        for _, session in self._reach.select(self._peers):
            self._tasks.spawn(sdk.send_resource_list_changed(session))
        self.bus.post_resources_list_changed()

    def _forget_removed(self) -> None:
        """A removed process's resources are gone: their subscriptions end."""
        known = {record.id for record in self.manager.records()}
        for uri in list(self._subscribers):
            match = _URI.match(uri)
            if match is not None and match["id"] not in known:
                self._throttle.forget(uri)
                del self._subscribers[uri]

    def _send_updated(self, uri: str) -> None:
        for _, session in self._reach.select(self._subscribers.get(uri, {})):
            self._tasks.spawn(sdk.send_resource_updated(session, uri))
        self.bus.post_resource_updated(uri)
