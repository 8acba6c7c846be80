"""A blocking connection to the supervisor, for one-shot commands: hello, requests, events.

The supervisor speaks newline-delimited JSON; every request and reply is a typed object
of ``supervisor/protocol`` (the same definitions the MCP front-end and the supervisor
use). This client sends one request at a time and keeps the events that arrive between
answers, so it needs no event loop. When no supervisor answers, one is started by the
same code the MCP front-end uses (``supervisor/client.ensure_supervisor``, which needs
``asyncio``: paid once, by the first command of the day).
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from typing import Any

from process_mcp import __version__
from process_mcp.core.platform.unixsock import stranger
from process_mcp.supervisor.paths import SupervisorPaths, socket_address
from process_mcp.supervisor.protocol import (
    MAX_MESSAGE_BYTES,
    Event,
    Hello,
    ProtocolError,
    Refused,
    Request,
    Response,
    Welcome,
    decode,
    ops,
    wire_line,
)

KIND = "cli"


class LinkError(Exception):
    """The supervisor could not be reached or refused us; the message says what to do."""


class RequestFailed(Exception):
    """The supervisor answered a request with an error (``code``: e.g. ``not_found``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Link:
    """One session with the supervisor. Use :meth:`open`; close with :meth:`close` (a
    session's own processes are stopped when it closes, so the CLI starts with ``keep``)."""

    def __init__(self, sock: socket.socket, welcome: Welcome) -> None:
        self.sock = sock
        self.welcome = welcome
        self.events: deque[Event] = deque()
        self._buffer = b""
        self._next = 0

    @classmethod
    def open(cls, paths: SupervisorPaths | None = None, start: bool = True) -> Link:
        """A session with the user's supervisor, starting one (``start``) if none answers.
        Raises LinkError with the reason and the fix."""
        paths = paths or SupervisorPaths.from_env()
        try:
            return cls._connect(paths)
        except (FileNotFoundError, ConnectionRefusedError):
            if not start:
                raise LinkError(f"no supervisor is running (socket {paths.socket})") from None
        _start_supervisor(paths)
        try:
            return cls._connect(paths)
        except OSError as exc:
            raise LinkError(f"cannot reach the supervisor on {paths.socket}: {exc}") from None

    @classmethod
    def _connect(cls, paths: SupervisorPaths) -> Link:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with socket_address(paths.socket) as address:
                sock.connect(address)
            _check_peer(sock, paths)  # a full listen queue makes connect() wait, not fail
            sock.sendall(wire_line(Hello(__version__, KIND, os.getpid())))
            link = cls(sock, Welcome("", 0, "", MAX_MESSAGE_BYTES))
            reply = decode(link._line(timeout=10))
        except BaseException:
            sock.close()
            raise
        if isinstance(reply, Welcome):
            link.welcome = reply
            return link
        sock.close()
        if isinstance(reply, Refused):
            raise LinkError(f"the supervisor refused this command: {reply.message}")
        raise LinkError(f"the supervisor answered hello with {reply!r:.80}")

    def call(self, request: Any) -> Any:
        """Send one request (a typed object of ``protocol.ops``, e.g. ``ops.Stop(id)``)
        and return its typed reply; raises RequestFailed or LinkError."""
        op, args = ops.encode_request(request)
        self._next += 1
        number = self._next
        self.sock.sendall(wire_line(Request(number, op, args), self.welcome.max_message_bytes))
        while True:
            message = decode(self._line())
            if isinstance(message, Event):
                self.events.append(message)
            elif isinstance(message, Response) and message.id == number:
                if message.error is not None:
                    raise RequestFailed(message.error.code, message.error.message)
                try:
                    return ops.decode_reply(op, message.ok)
                except ProtocolError as exc:
                    raise LinkError(f"the supervisor's answer to {op}: {exc.message}") from None

    def next_event(self, timeout: float) -> Event | None:
        """The next event (kept or newly read), or None after ``timeout`` seconds."""
        if self.events:
            return self.events.popleft()
        try:
            message = decode(self._line(timeout=timeout))
        except TimeoutError:
            return None
        return message if isinstance(message, Event) else None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, timeout: float | None = None) -> bytes:
        """The next line (without its newline); TimeoutError after ``timeout``; LinkError
        when the supervisor hangs up."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
            else:
                self.sock.settimeout(None)
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                raise
            if not chunk:
                raise LinkError("the supervisor hung up (it may have been stopped)")
            self._buffer += chunk
            if len(self._buffer) > 2 * MAX_MESSAGE_BYTES:
                raise LinkError("the supervisor sent an oversize message")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


def _check_peer(sock: socket.socket, paths: SupervisorPaths) -> None:
    """The listener must be our own user: a planted socket would see our requests."""
    peer = stranger(sock)
    if peer is not None:
        raise LinkError(
            f"the socket {paths.socket} is served by pid {peer.pid} of uid {peer.uid}, not by "
            f"our uid {os.getuid()}; remove it or set PROCESS_MCP_RUNTIME_DIR to a private folder"
        )


def _start_supervisor(paths: SupervisorPaths) -> None:
    """Start the supervisor as the MCP front-end does (lock, detach, wait for its socket)."""
    import asyncio

    from process_mcp.supervisor.client import SupervisorError, ensure_supervisor

    async def start() -> None:
        client = await ensure_supervisor(KIND, paths=paths)
        await client.close()

    try:
        asyncio.run(start())
    except SupervisorError as exc:
        raise LinkError(str(exc)) from None
