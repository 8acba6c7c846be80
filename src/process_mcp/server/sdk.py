"""Every use of the MCP SDK's private or provisional surface lives here.

An SDK upgrade should touch this file only. What it works around (mcp 2.3):

* there is no public API for a vendor notification such as ``process/exit``: a
  ``Notification`` subclass is sent through ``ServerSession.send_notification``, whose
  static type is the closed ``ServerNotification`` union (it only ``model_dump``s);
* ``experimental`` capabilities can only be advertised by running the low-level server
  with our own ``InitializationOptions``;
* a session captured during a request keeps working after it (notes/mcp-sdk.md §1.2).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

import mcp_types as types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server
from mcp_types import Notification, NotificationParams
from pydantic import ConfigDict
from pydantic.alias_generators import to_camel

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


__all__ = [
    "ProcessExitNotification",
    "Server",
    "SessionHolder",
    "run_stdio",
    "types",
]
