"""Streamable HTTP transport: one long-lived server shared by several clients.

Bound to loopback by default and guarded by a bearer token, because whoever reaches it
can run any command as this user. The SDK's app already rejects foreign ``Host`` and
``Origin`` headers on loopback (DNS-rebinding protection); the token check sits in front.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class BearerTokenGuard:
    """Answers 401 to any HTTP request without ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            body = json.dumps(
                {
                    "error": "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                    "with the token the server printed at start (or PROCESS_MCP_TOKEN)"
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="process-mcp"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self._app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False


class _QuietSignals(uvicorn.Server):
    """uvicorn without its own signal handlers: the CLI owns SIGTERM/SIGINT/SIGHUP."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def make_http_server(app: ASGIApp, host: str, port: int, token: str) -> uvicorn.Server:
    config = uvicorn.Config(
        BearerTokenGuard(app, token),
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    return _QuietSignals(config)
