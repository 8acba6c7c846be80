"""One client connection after its handshake: reading its requests, running each in its
own task, writing answers and events, and the bounds that keep a client from costing the
supervisor more than its share.

Guarantees:
- **Requests never block each other.** Each request runs in its own task; a slow one (a
  wait) does not delay the others on the same connection. A client may cancel one.
- **Pipelining is paused, not refused.** With ``MAX_IN_FLIGHT`` requests of a session
  running, the session's socket is not read until one answers (the kernel's buffer then
  holds the client back; a ``cancel`` sent meanwhile is read then too): 5,000 requests
  sent at once are all answered, 256 at a time. A paused session still notices its
  client hanging up (within ``PAUSED_LOOK``) and ends as any other.
  Reading also yields to the loop after each request, so the tasks of a burst run as it
  is read rather than after the whole buffer.
- **Sending never blocks the handler.** Answers and events go to the socket buffer at once.
  What a client leaves unread is bounded twice: a session over its own cap
  (``PendingBudget.per_session``) is cut; and when all sessions together hold more than
  ``PendingBudget.total``, the sessions holding the most are cut, largest first, until
  the rest fit. Each cut is a warning line in the supervisor's log, and closes the
  session (its processes stop as for any ended session).
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from process_mcp.supervisor.protocol import (
    Cancel,
    ErrorInfo,
    Event,
    Hello,
    MessageTooLarge,
    Oversize,
    ProtocolError,
    Request,
    RequestError,
    Response,
    decode,
    read_line,
    wire_line,
)
from process_mcp.supervisor.protocol.ops import encode_event

if TYPE_CHECKING:
    from process_mcp.core.platform.unixsock import PeerCredentials

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256
PAUSED_LOOK = 0.25  # seconds: how often a paused session looks whether its client hung up
_HANGUP = select.POLLHUP | getattr(select, "POLLRDHUP", 0)
CHECK_TOTAL_ABOVE = 256 * 1024  # a session's unread bytes above which the total is summed


class PendingBudget:
    """The unread-bytes caps shared by a server's sessions (see the module docstring)."""

    def __init__(self, per_session: int, total: int) -> None:
        self.per_session = per_session
        self.total = total
        self.sessions: dict[str, Session] = {}

    def check(self, session: Session, pending: int) -> None:
        """After a write to ``session`` left ``pending`` bytes unread: cut what is over."""
        if pending > self.per_session:
            session.cut(f"{pending} bytes unread (the cap per session is {self.per_session})")
            return
        if pending <= CHECK_TOTAL_ABOVE:
            return
        held = {s: s.pending_bytes for s in self.sessions.values() if not s.closed}
        total = sum(held.values())
        for slow in sorted(held, key=held.__getitem__, reverse=True):
            if total <= self.total:
                return
            slow.cut(
                f"{held[slow]} bytes unread, the most of any session, while all sessions "
                f"held {total} (the cap for all is {self.total})"
            )
            total -= held[slow]


class Handler(Protocol):
    """What the supervisor serves. Every method may assume it runs on the server's loop.

    ``handle`` returns any JSON value (the answer's ``ok``) or raises
    :class:`~process_mcp.supervisor.protocol.RequestError` for an ``error`` answer; any
    other exception becomes an ``internal`` error (logged with its traceback). It is
    cancelled if the client cancels the request or the session closes.
    """

    async def open_session(self, session: Session) -> None: ...

    async def handle(self, session: Session, op: str, args: dict[str, Any]) -> Any: ...

    async def close_session(self, session: Session) -> None: ...

    def busy(self) -> bool:
        """True while there is work (e.g. running processes) that forbids an idle exit."""
        ...

    async def shutdown(self) -> None:
        """The server is stopping; every session is already closed."""
        ...


class Session:
    """One client connection, from the handshake until it closes.

    ``client`` is the hello it sent (kind, version, pid), ``peer`` what the kernel says
    about the connecting process; ``state`` is the handler's own per-session storage (the
    transport never reads it).
    """

    def __init__(
        self,
        id: str,
        client: Hello,
        peer: PeerCredentials | None,
        writer: asyncio.StreamWriter,
        max_message_bytes: int,
        budget: PendingBudget,
        log_path: Path | None = None,
    ) -> None:
        self.id = id
        self.client = client
        self.peer = peer
        self.state: dict[str, Any] = {}
        self.opened_at = time.monotonic()
        self._writer = writer
        self._max_message_bytes = max_message_bytes
        self._budget = budget
        self._log_path = log_path
        self._seq = 0
        self._closing = False
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._slot = asyncio.Event()
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        return f"Session({self.id!r}, kind={self.client.kind!r}, pid={self.client.pid})"

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def in_flight(self) -> int:
        """Requests of this session being handled now."""
        return len(self._tasks)

    @property
    def pending_bytes(self) -> int:
        """Bytes written to this client that it has not read yet (our side's buffer)."""
        transport = self._writer.transport
        return 0 if transport.is_closing() else transport.get_write_buffer_size()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def emit(self, event: str, data: dict[str, Any] | None = None) -> bool:
        """Push an event to this client; never blocks. False if the session is closed or
        the event could not be encoded (too large: logged)."""
        if self._closing:
            return False
        self._seq += 1
        try:
            line = wire_line(Event(event, self._seq, data or {}), self._max_message_bytes)
        except ProtocolError as exc:
            logger.error("session %s: event %r dropped: %s", self.id, event, exc.message)
            return False
        self._send(line)
        return True

    def publish(self, event: str, payload: object) -> bool:
        """:meth:`emit` a typed event of the protocol (``ops.EVENTS``)."""
        return self.emit(event, encode_event(event, payload))

    def cut(self, why: str) -> None:
        """Disconnect a client that does not read (its session then closes)."""
        if self._closing:
            return
        logger.warning(
            "session %s (%s pid %s): %s; disconnecting it",
            self.id,
            self.client.kind,
            self.client.pid,
            why,
        )
        self._closing = True
        self._writer.transport.abort()

    def _send(self, line: bytes) -> None:
        if self._closing or self._writer.is_closing():
            return
        self._writer.write(line)
        pending = self._writer.transport.get_write_buffer_size()
        if pending:
            self._budget.check(self, pending)

    # -- requests ------------------------------------------------------------------

    async def serve(self, reader: asyncio.StreamReader, handler: Handler) -> None:
        """Read and dispatch this client's messages until it hangs up."""
        while True:
            while len(self._tasks) >= MAX_IN_FLIGHT:  # paused: the client waits for answers
                self._slot.clear()
                try:
                    await asyncio.wait_for(self._slot.wait(), PAUSED_LOOK)
                except TimeoutError:
                    if self._peer_gone():  # not read, but hung up: end the session now
                        return
            line = await read_line(reader, self._max_message_bytes)
            if line is None:
                return
            if isinstance(line, Oversize):
                limit = self._max_message_bytes
                error = MessageTooLarge(line.size, limit, "request" if line.id else "message")
                self._answer(line.id, ErrorInfo(error.code, error.message))
                continue
            try:
                message = decode(line)
            except ProtocolError as exc:
                self._answer(None, ErrorInfo(exc.code, exc.message))
                continue
            if isinstance(message, Request):
                self._dispatch(message, handler)
                await asyncio.sleep(0)  # let it start before the next line is read
            elif isinstance(message, Cancel):
                task = self._tasks.get(message.id)
                if task is not None:
                    task.cancel()
            else:
                text = f"a client may send requests and cancels only, not {line[:60]!r}"
                self._answer(None, ErrorInfo("bad_message", text))

    def _peer_gone(self) -> bool:
        """Whether the client hung up (or its socket failed), looked at without reading."""
        sock = self._writer.get_extra_info("socket")
        if sock is None or sock.fileno() < 0:
            return True
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | _HANGUP)
        return any(events & (_HANGUP | select.POLLERR) for _, events in poller.poll(0))

    def _dispatch(self, request: Request, handler: Handler) -> None:
        if request.id in self._tasks:
            text = f"request id {request.id} is already in flight; use a new id per request"
            self._answer(request.id, ErrorInfo("bad_message", text))
            return
        task = asyncio.create_task(self._run(request, handler), name=f"{self.id}:{request.op}")
        self._tasks[request.id] = task

    async def _run(self, request: Request, handler: Handler) -> None:
        try:
            result = await handler.handle(self, request.op, request.args)
        except RequestError as exc:
            self._answer(request.id, ErrorInfo(exc.code, exc.message))
        except asyncio.CancelledError:
            if self._closing:
                raise
            self._answer(request.id, ErrorInfo("cancelled", "cancelled by the client"))
        except Exception as exc:
            logger.exception("session %s: %s failed", self.id, request.op)
            text = f"{request.op} failed: {type(exc).__name__}: {exc} (see {self._log_path})"
            self._answer(request.id, ErrorInfo("internal", text))
        else:
            self._answer(request.id, result)
        finally:
            self._tasks.pop(request.id, None)
            self._slot.set()

    def _answer(self, id_: int | None, result: Any) -> None:
        message = (
            Response(id_, error=result) if isinstance(result, ErrorInfo) else Response(id_, result)
        )
        try:
            line = wire_line(message, self._max_message_bytes)
        except MessageTooLarge as exc:
            error = MessageTooLarge(exc.size, exc.limit, "answer")
            line = wire_line(Response(id_, error=ErrorInfo(error.code, error.message)))
        except ProtocolError as exc:
            logger.error("session %s: answer to %s not encodable: %s", self.id, id_, exc)
            line = wire_line(Response(id_, error=ErrorInfo("internal", exc.message)))
        self._send(line)

    async def end(self, handler: Handler, forget: Callable[[Session], None]) -> None:
        """The connection ended: cancel the requests in flight, then ``close_session``."""
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        forget(self)
        try:
            await handler.close_session(self)
        except Exception:
            logger.exception("session %s: close_session failed", self.id)
        finally:
            self._closed.set()
            logger.info("session %s closed", self.id)
