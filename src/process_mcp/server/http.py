"""Streamable HTTP transport: one long-lived server shared by several clients.

Whoever reaches it can run any command as this user, so three guards stand in front of
the SDK's app, outermost first:

* :class:`BearerTokenGuard`: 401 to any request without the token;
* the SDK's Host/Origin checks (DNS-rebinding protection), always on: the loopback names,
  plus the names given to ``--allow-remote`` when bound beyond loopback
  (:func:`security_settings`);
* :class:`MalformedGuard`: a body that is not JSON-RPC gets a JSON-RPC error with the
  request's id (the SDK would answer ``id: null`` with a pydantic dump), and so does a
  request sent before ``initialize`` ("not initialized").

The socket is bound by :func:`bind` before anything else starts, so an address in use or
out of range is a one-line start-up error, not a traceback from inside uvicorn.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from mcp_types import INVALID_REQUEST, JSONRPCRequest, jsonrpc_message_adapter
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError

from process_mcp.server import malformed
from process_mcp.server.reach import Reach
from process_mcp.server.sdk import NOT_INITIALIZED

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def security_settings(host: str, remote_names: list[str]) -> TransportSecuritySettings:
    """Host/Origin checks for the loopback names, the bound address and ``remote_names``
    (any port, http or https): a page on another origin, or a DNS name re-pointed at
    this address, is refused (421/403) whatever the bind address."""
    bound = f"[{host}]" if ":" in host and not host.startswith("[") else host
    names = dict.fromkeys([*LOOPBACK_NAMES, *remote_names])
    if not _is_unspecified(host):
        names[bound] = None
    hosts = [pattern for name in names for pattern in (name, f"{name}:*")]
    origins = [
        pattern
        for name in names
        for scheme in ("http", "https")
        for pattern in (f"{scheme}://{name}", f"{scheme}://{name}:*")
    ]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def _is_unspecified(host: str) -> bool:
    """``0.0.0.0`` / ``::``: no client can use it as a Host name."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 picks a free port).

    Raises OSError with a message naming the address and the way out."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = "pick another --port (0 picks a free one)"
        if exc.errno is not None and exc.errno == 13:
            hint = "ports below 1024 need privileges; " + hint
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}; {hint}") from None
    sock.set_inheritable(False)
    return sock


def _json_response(status: int, payload: Any, extra: list[tuple[bytes, bytes]]) -> list[Message]:
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *extra],
        },
        {"type": "http.response.body", "body": json.dumps(payload).encode()},
    ]


class BearerTokenGuard:
    """Answers 401 to any HTTP request without ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            error = (
                "missing or wrong bearer token: send 'Authorization: Bearer <token>' with the "
                "token the server printed at start (or the one in --token-file/PROCESS_MCP_TOKEN)"
            )
            auth = [(b"www-authenticate", b'Bearer realm="process-mcp"')]
            for message in _json_response(401, {"error": error}, auth):
                await send(message)
            return
        await self._app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False


class MalformedGuard:
    """Answers a POSTed JSON body that is not a JSON-RPC message with the JSON-RPC error
    of :mod:`malformed` (HTTP 400); anything else passes through, its body replayed.

    Reads at most ``limit`` bytes: a larger body is passed on for the SDK's 413."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_MAX_REQUEST_BODY_SIZE) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not _is_json(scope):
            await self._app(scope, receive, send)
            return
        received: list[Message] = []
        size, complete = 0, False
        while size <= self._limit:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                complete = True
                break
        if complete:
            body = b"".join(m.get("body", b"") for m in received)
            reply = _reply_for(body, scope)
            if reply is not None:
                for message in _json_response(400, reply, []):
                    await send(message)
                return

        async def replay() -> Message:
            return received.pop(0) if received else await receive()

        await self._app(scope, replay, send)


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return bytes(value)
    return None


def _is_json(scope: Scope) -> bool:
    return (_header(scope, b"content-type") or b"").lower().startswith(b"application/json")


def _reply_for(body: bytes, scope: Scope) -> dict[str, Any] | None:
    """The error answer to ``body``, or None to let the SDK serve it.

    Besides malformed bodies: a handshake-era request other than ``initialize`` with no
    session (the client skipped ``initialize``) is told so with its id, where the SDK
    would say "Missing session ID" to ``id: null``."""
    try:
        message = jsonrpc_message_adapter.validate_json(body, by_name=False)
    except ValidationError as exc:
        reply = malformed.reply_for(exc)
        return reply.model_dump(by_alias=True, mode="json", exclude_unset=True) if reply else None
    version = (_header(scope, b"mcp-protocol-version") or b"").decode("latin-1")
    if (
        isinstance(message, JSONRPCRequest)
        and message.method not in ("initialize", "ping")
        and _header(scope, b"mcp-session-id") is None
        and (not version or version in HANDSHAKE_PROTOCOL_VERSIONS)
    ):
        error = {"code": INVALID_REQUEST, "message": NOT_INITIALIZED}
        return {"jsonrpc": "2.0", "id": message.id, "error": error}
    return None


class StreamTracker:
    """Tells ``reach`` while a client holds a standalone GET stream open (the only way an
    unsolicited notification reaches an HTTP client). Sits behind the token guard."""

    def __init__(self, app: ASGIApp, reach: Reach) -> None:
        self._app = app
        self._reach = reach

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        session = _header(scope, b"mcp-session-id") if scope["type"] == "http" else None
        if session is None or scope.get("method") != "GET":
            await self._app(scope, receive, send)
            return
        client = session.decode("latin-1")
        self._reach.opened(client)
        try:
            await self._app(scope, receive, send)
        finally:
            self._reach.closed(client)


class _QuietSignals(uvicorn.Server):
    """uvicorn without its own signal handlers: the CLI owns SIGTERM/SIGINT/SIGHUP."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def make_http_server(app: ASGIApp, token: str) -> uvicorn.Server:
    """The uvicorn server for ``app`` behind the guards; serve it on a socket from
    :func:`bind` (``server.serve(sockets=[sock])``)."""
    config = uvicorn.Config(
        BearerTokenGuard(MalformedGuard(app), token),
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    return _QuietSignals(config)
