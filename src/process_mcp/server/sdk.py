"""Every use of the MCP SDK's private or provisional surface lives here.

An SDK upgrade should touch this file only. What it works around (mcp 2.3):

* there is no public API for a vendor notification such as ``process/exit``: a
  ``Notification`` subclass is sent through ``ServerSession.send_notification``, whose
  static type is the closed ``ServerNotification`` union (it only ``model_dump``s);
* ``experimental`` capabilities can only be advertised by running the low-level server
  with our own ``InitializationOptions``;
* a session captured during a request keeps working after it (notes/mcp-sdk.md §1.2);
* the two protocol eras deliver change notifications differently: handshake-era (2025)
  connections take ``notifications/resources/*`` on the session, while 2026-07-28
  connections drop those there by design and only get them on a ``subscriptions/listen``
  stream fed by a subscription bus (:class:`ListenBus`);
* there is no hook for the end of a streamable-HTTP session (closed or expired): the
  session manager's ``_discard_session`` is wrapped (:func:`on_http_session_end`);
* ``logging/setLevel`` is registered with ``add_request_handler`` because the constructor
  keyword emits a deprecation warning (logging is deprecated at 2026-07-28), and log
  messages are written raw to handshake-era connections only: at 2026-07-28 a server may
  not send unsolicited ``notifications/message``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import mcp_types as types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
)
from mcp_types import Notification, NotificationParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict
from pydantic.alias_generators import to_camel

from process_mcp.core.tasks import BackgroundTasks

try:  # the deprecation category moved between 2.x releases; never let it fail a tool
    from mcp.shared.exceptions import MCPDeprecationWarning
except ImportError:  # pragma: no cover
    MCPDeprecationWarning = DeprecationWarning  # type: ignore[misc,assignment]

warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

logger = logging.getLogger(__name__)

EXPERIMENTAL_CAPABILITIES: dict[str, dict[str, Any]] = {
    "process/exit": {"description": "Sent once when a process started with notifyOnExit ends."},
    "io.github.process-mcp/notifications": {"methods": ["process/exit"]},
}


class ProcessExitParams(NotificationParams):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    id: str
    status: str
    exit_code: int | None
    signal: str | None
    timestamp: str


class ProcessExitNotification(Notification[ProcessExitParams, Literal["process/exit"]]):
    method: Literal["process/exit"] = "process/exit"
    params: ProcessExitParams


class SessionHolder:
    """The client connection to send unsolicited notifications on (stdio has exactly one)."""

    def __init__(self) -> None:
        self.session: ServerSession | None = None

    def capture(self, ctx: Any) -> None:
        session = getattr(ctx, "session", None)
        if session is not None:
            self.session = session

    async def send_process_exit(self, params: dict[str, Any]) -> None:
        if self.session is None:
            return
        # ``send_notification`` dumps with exclude_none, but the seed's payload always
        # carries ``exitCode``/``signal`` (null when not applicable): write it raw.
        payload = ProcessExitParams.model_validate(params).model_dump(by_alias=True, mode="json")
        payload.pop("_meta", None)
        try:
            await self.session._connection.outbound.notify(
                ProcessExitNotification.model_fields["method"].default, payload
            )
        except Exception as exc:  # the client may be gone; the process record still holds it
            logger.debug("process/exit not delivered: %r", exc)


def client_key(ctx: Any) -> str:
    """Who is asking: the transport session id (streamable HTTP), else the one stdio client."""
    session = getattr(ctx, "session", None)
    connection = getattr(session, "_connection", None)
    return str(getattr(connection, "session_id", None) or "default")


def is_handshake_era(session: Any) -> bool:
    """Whether unsolicited notifications on this session reach the client (2025 era)."""
    return getattr(session, "protocol_version", None) not in MODERN_PROTOCOL_VERSIONS


def progress_reporter(ctx: Any) -> Callable[[float, float | None, str | None], Awaitable[None]]:
    """``notifications/progress`` for this request; a no-op without a progress token."""
    session = ctx.session

    async def report(progress: float, total: float | None, message: str | None) -> None:
        try:
            await session.report_progress(progress, total, message)
        except Exception as exc:  # a vanished client must not fail the wait
            logger.debug("progress not delivered: %r", exc)

    return report


async def notify_raw(session: ServerSession, method: str, params: dict[str, Any] | None) -> None:
    """Write a notification on the connection's own channel (not tied to a request)."""
    try:
        await session._connection.outbound.notify(method, params)
    except Exception as exc:  # the client may be gone
        logger.debug("%s not delivered: %r", method, exc)


async def send_resource_updated(session: ServerSession, uri: str) -> None:
    await notify_raw(session, "notifications/resources/updated", {"uri": uri})


async def send_resource_list_changed(session: ServerSession) -> None:
    await notify_raw(session, "notifications/resources/list_changed", None)


async def send_log(session: ServerSession, level: str, data: Any, logger_name: str) -> None:
    await notify_raw(
        session, "notifications/message", {"level": level, "logger": logger_name, "data": data}
    )


async def send_request_log(session: ServerSession, level: str, data: Any, logger_name: str) -> None:
    """A log message tied to the current request; the SDK drops it unless the request's
    ``_meta`` opted in to that level (the 2026-07-28 rule)."""
    try:
        await session.send_log_message(level, data, logger=logger_name)  # type: ignore[arg-type]
    except Exception as exc:
        logger.debug("request log not delivered: %r", exc)


class ListenBus(InMemorySubscriptionBus):
    """The 2026-07-28 subscription bus, publishable from plain callbacks.

    ``publish`` is async in the SDK; events here come from output and exit callbacks,
    so :meth:`post` schedules it, and only when a listen stream is open at all.
    """

    def __init__(self) -> None:
        super().__init__()
        self._streams = 0
        self._tasks = BackgroundTasks()
        # Told ``listening`` whenever it changes (the resources ask for output ticks then).
        self.on_listening: Callable[[bool], None] | None = None

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        self._streams += 1
        self._tell_listening()
        done = False

        def counted_unsubscribe() -> None:
            nonlocal done
            if not done:
                done = True
                self._streams -= 1
                self._tell_listening()
            unsubscribe()

        return counted_unsubscribe

    @property
    def listening(self) -> bool:
        return self._streams > 0

    def _tell_listening(self) -> None:
        if self.on_listening is not None:
            self.on_listening(self.listening)

    def post_resource_updated(self, uri: str) -> None:
        self._post(ResourceUpdated(uri=uri))

    def post_resources_list_changed(self) -> None:
        self._post(ResourcesListChanged())

    def _post(self, event: ServerEvent) -> None:
        if not self.listening:
            return
        self._tasks.spawn(self.publish(event))


def enable_subscriptions(server: Server[Any], bus: ListenBus) -> None:
    """Serve ``subscriptions/listen`` (2026-07-28) from ``bus``."""
    server.add_request_handler(
        "subscriptions/listen", types.SubscriptionsListenRequestParams, ListenHandler(bus)
    )


def enable_logging(
    server: Server[Any], on_set_level: Callable[[Any, types.SetLevelRequestParams], Awaitable[Any]]
) -> None:
    """Serve ``logging/setLevel``, which also advertises the ``logging`` capability."""
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, on_set_level)


async def run_stdio(server: Server[Any]) -> None:
    """Serve ``server`` on stdin/stdout until stdin closes, advertising ``process/exit``."""
    options = server.create_initialization_options(
        NotificationOptions(resources_changed=True),
        experimental_capabilities=EXPERIMENTAL_CAPABILITIES,
    )
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, options)


def http_app(server: Server[Any], host: str) -> Any:
    """The SDK's streamable-HTTP ASGI app (with its DNS-rebinding protection on loopback)."""
    return server.streamable_http_app(host=host)


def on_http_session_end(server: Server[Any], callback: Callable[[str], None]) -> None:
    """Call ``callback(session id)`` (the :func:`client_key` of that client) after each
    streamable-HTTP session of ``server``'s HTTP app ends, however it ends (DELETE, idle
    expiry, crash). Call after :func:`http_app`."""
    manager = server.session_manager
    discard = manager._discard_session

    async def discard_and_tell(session_id: str, transport: Any) -> None:
        known = session_id in manager._server_instances
        await discard(session_id, transport)
        if known:
            callback(session_id)

    manager._discard_session = discard_and_tell  # type: ignore[method-assign]


__all__ = [
    "ListenBus",
    "ProcessExitNotification",
    "Server",
    "SessionHolder",
    "run_stdio",
    "types",
]
