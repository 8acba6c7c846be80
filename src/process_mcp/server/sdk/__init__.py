"""Every use of the MCP SDK's private or provisional surface lives here.

An SDK upgrade should touch this file only. What it works around (mcp 2.3):

* there is no public API for a vendor notification such as ``process/exit``: a
  ``Notification`` subclass is sent through ``ServerSession.send_notification``, whose
  static type is the closed ``ServerNotification`` union (it only ``model_dump``s);
* ``experimental`` capabilities can only be advertised by running the low-level server
  with our own ``InitializationOptions``;
* a session captured during a request keeps working after it (the SDK's migration guide
  says so: sends without a related request use the connection's channel);
* the two protocol eras deliver change notifications differently: handshake-era (2025)
  connections take ``notifications/resources/*`` on the session, while 2026-07-28
  connections drop those there by design and only get them on a ``subscriptions/listen``
  stream fed by a subscription bus (:class:`ListenBus`);
* ``logging/setLevel`` is registered with ``add_request_handler`` because the constructor
  keyword emits a deprecation warning (logging is deprecated at 2026-07-28), and log
  messages are written raw to handshake-era connections only: at 2026-07-28 a server may
  not send unsolicited ``notifications/message``;
* a tool handler may return the result's wire form (a dict) instead of a
  ``CallToolResult``: the runner then copies it instead of walking it with pydantic, which
  for a ``list`` of hundreds of processes is a millisecond saved (it is still checked
  against the protocol's result shape once);
* roots (deprecated at 2026-07-28, still what handshake-era clients use to say where the
  project is): there is no "client initialised" hook, so ``notifications/initialized`` and
  ``notifications/roots/list_changed`` get handlers through ``add_notification_handler``
  (the constructor keyword warns), and ``roots/list`` is sent as a raw typed request with
  a read timeout, since a client may declare roots and never answer.
* ``initialize`` answers are built from ``create_initialization_options()`` with no
  arguments on streamable HTTP, so :class:`Server` makes our capabilities (``listChanged``,
  ``experimental``) its defaults: both transports advertise the same ones;
* a session's end (DELETE, idle timeout, server exit) is only visible as the close of
  its ``Connection.exit_stack``; :class:`SessionWatch` hooks it so every per-session
  structure is forgotten;
* a request before ``initialize`` gets a bare "Invalid request parameters" from the
  runner: :class:`SessionWatch` answers "not initialized" first;
* a line that is not valid JSON-RPC reaches the dispatcher as an exception, which it
  drops: :func:`run_stdio` answers it (:mod:`process_mcp.server.malformed`);
* the stdio writer serialises each message on the event loop: :func:`run_stdio` builds a
  large answer's JSON in a worker thread first.

The stdio serving (the last two) is :mod:`.stdio`; the rest is here.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import mcp_types as types
from mcp import MCPError
from mcp.server.lowlevel import NotificationOptions
from mcp.server.lowlevel import Server as _SdkServer
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
)
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import Notification, NotificationParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict
from pydantic.alias_generators import to_camel

from process_mcp.core.tasks import BackgroundTasks
from process_mcp.server.sdk.stdio import LARGE_ANSWER_CHARS, dumps_in_pieces, run_stdio

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


NOT_INITIALIZED = (
    "not initialized: send 'initialize' first (then 'notifications/initialized'); "
    "only 'ping' is answered before that"
)


class Server(_SdkServer[Any]):
    """The SDK's low-level server, advertising our capabilities on every transport."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(resources_changed=True),
            experimental_capabilities or EXPERIMENTAL_CAPABILITIES,
            extensions,
        )

    def get_capabilities(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        return super().get_capabilities(
            notification_options,
            experimental_capabilities or EXPERIMENTAL_CAPABILITIES,
            extensions,
            protocol_version=protocol_version,
        )


_WATCHED = "process-mcp/watched"  # Connection.state key: the end hook is installed


class SessionWatch:
    """Server middleware: "not initialized" before ``initialize``, and a call of every
    ``on_end`` listener with the client key when a streamable-HTTP session ends.

    The end hook is installed at a session's first request, before any handler can keep
    something for it, so a session is forgotten however it ends: DELETE, idle timeout,
    or the server shutting down. Stdio's one client (no session id) is never forgotten:
    it lives as long as the server.
    """

    def __init__(self, server: _SdkServer[Any]) -> None:
        self._server = server
        self._listeners: list[Callable[[str], None]] = []
        server.middleware.append(self)

    def on_end(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        connection = getattr(ctx.session, "_connection", None)
        if connection is not None and ctx.request_id is not None:
            if (
                not connection.initialize_accepted
                and ctx.method not in ("initialize", "ping")
                and self._server.get_request_handler(ctx.method) is not None
            ):
                raise MCPError(code=types.INVALID_REQUEST, message=NOT_INITIALIZED)
            if connection.session_id is not None and _WATCHED not in connection.state:
                connection.state[_WATCHED] = True
                connection.exit_stack.callback(self._ended, str(connection.session_id))
        return await call_next(ctx)

    def _ended(self, key: str) -> None:
        for listener in self._listeners:
            try:
                listener(key)
            except Exception:  # one listener's bug must not keep the rest from forgetting
                logger.exception("forgetting session %s failed", key)


class ProcessExitParams(NotificationParams):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    id: str
    status: str
    exit_code: int | None
    signal: str | None
    timestamp: str
    reason: str | None = None  # a limit that ended it; left out when None


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

    def forget(self, key: str) -> None:
        """The session of client ``key`` ended: stop holding it."""
        if self.session is not None and session_key(self.session) == key:
            self.session = None

    async def send_process_exit(self, params: dict[str, Any]) -> None:
        if self.session is None:
            return
        # ``send_notification`` dumps with exclude_none, but the seed's payload always
        # carries ``exitCode``/``signal`` (null when not applicable): write it raw.
        payload = ProcessExitParams.model_validate(params).model_dump(by_alias=True, mode="json")
        payload.pop("_meta", None)
        if payload.get("reason") is None:
            payload.pop("reason", None)
        try:
            await self.session._connection.outbound.notify(
                ProcessExitNotification.model_fields["method"].default, payload
            )
        except Exception as exc:  # the client may be gone; the process record still holds it
            logger.debug("process/exit not delivered: %r", exc)


def tool_result(text: str, structured: dict[str, Any]) -> dict[str, Any]:
    """A successful ``tools/call`` result in wire form: ``text`` and ``structuredContent``.
    ``resultType`` is required at 2026-07-28; the runner's sieve drops it for older eras."""
    return {
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": False,  # what a CallToolResult says too: clients read it
        "resultType": "complete",
    }


def client_key(ctx: Any) -> str:
    """Who is asking: the transport session id (streamable HTTP), else the one stdio client."""
    return session_key(getattr(ctx, "session", None))


def session_key(session: Any) -> str:
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


def enable_subscriptions(server: Server, bus: ListenBus) -> None:
    """Serve ``subscriptions/listen`` (2026-07-28) from ``bus``."""
    server.add_request_handler(
        "subscriptions/listen", types.SubscriptionsListenRequestParams, ListenHandler(bus)
    )


def enable_roots(
    server: Server[Any],
    on_initialized: Callable[[Any, Any], Awaitable[None]],
    on_roots_changed: Callable[[Any, Any], Awaitable[None]],
) -> None:
    """Call ``on_initialized(ctx, params)`` once a client has finished the handshake, and
    ``on_roots_changed(ctx, params)`` when it says its roots changed. Both run inline in
    the reader of the connection: they must not await the client (spawn a task)."""
    server.add_notification_handler(
        "notifications/initialized", types.NotificationParams, on_initialized
    )
    server.add_notification_handler(
        "notifications/roots/list_changed", types.NotificationParams, on_roots_changed
    )


def can_ask_roots(session: Any) -> bool:
    """Whether ``roots/list`` may be sent: a handshake-era client that declared roots (at
    2026-07-28 a server may not send requests of its own)."""
    capabilities = getattr(session, "client_capabilities", None)
    return capabilities is not None and capabilities.roots is not None and is_handshake_era(session)


async def list_root_uris(session: ServerSession, timeout: float) -> list[str]:
    """The client's root URIs, in its order. Raises on timeout (the client may never
    answer), a refusal or a malformed answer; the caller decides what that means."""
    result = await session.send_request(
        types.ListRootsRequest(), types.ListRootsResult, request_read_timeout_seconds=timeout
    )
    return [str(root.uri) for root in result.roots]


def enable_logging(
    server: Server, on_set_level: Callable[[Any, types.SetLevelRequestParams], Awaitable[Any]]
) -> None:
    """Serve ``logging/setLevel``, which also advertises the ``logging`` capability."""
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, on_set_level)


def http_app(
    server: Server, security: TransportSecuritySettings, session_idle_timeout: float
) -> Any:
    """The SDK's streamable-HTTP ASGI app, with our Host/Origin checks and session expiry."""
    return server.streamable_http_app(
        transport_security=security, session_idle_timeout=session_idle_timeout
    )


__all__ = [
    "LARGE_ANSWER_CHARS",
    "ListenBus",
    "ProcessExitNotification",
    "Server",
    "SessionHolder",
    "SessionWatch",
    "TransportSecuritySettings",
    "dumps_in_pieces",
    "run_stdio",
    "types",
]
