"""The supervisor's socket server: sessions, requests, events, idle exit, one per user.

Guarantees:
- **One supervisor per runtime folder.** :meth:`SupervisorServer.start` takes an exclusive
  ``flock`` on ``supervisor.lock`` before anything else and fails with
  :class:`AlreadyRunning` if another process holds it. The lock dies with its holder, so a
  crashed supervisor never blocks the next one; whoever holds it owns the socket path.
- **Atomic bind.** The socket is bound under a temporary name, made 0600, listening, and
  only then renamed over ``supervisor.sock``: a client never meets a half-made socket, and a
  dead supervisor's stale socket is replaced in one step (safe: we hold the lock).
- **Same user only.** Each connection's ``SO_PEERCRED`` uid must be ours; anyone else gets a
  ``refused`` line naming the reason, then the connection closes. (The 0700 folder already
  keeps others out; this is the second wall.)
- **One connection = one session.** The handler hears ``open_session`` after the
  handshake and ``close_session`` as soon as the connection ends for any reason — the
  client closing, crashing or being SIGKILLed (the kernel closes its socket, we read EOF)
  — after that session's in-flight requests were cancelled.
- **Requests never block each other.** Each request runs in its own task; a slow one (a
  wait) does not delay the others on the same connection. A client may cancel one.
- **Sending never blocks the handler.** Answers and events are written to the socket
  buffer at once; a client that stops reading and lets ``max_pending_bytes`` pile up is
  disconnected (and its session closed) rather than stalling anyone else.
- **Idle exit.** With no connection and ``handler.busy()`` false for ``idle_timeout``
  seconds, the server stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from process_mcp import __version__
from process_mcp.supervisor.paths import SupervisorPaths, ensure_private_dir, socket_address
from process_mcp.supervisor.protocol import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Cancel,
    ErrorInfo,
    Event,
    Hello,
    MessageTooLarge,
    Oversize,
    ProtocolError,
    Refused,
    Request,
    RequestError,
    Response,
    Welcome,
    decode,
    encode,
    read_line,
    to_wire,
)

logger = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 600.0
HELLO_TIMEOUT = 10.0
REFUSAL_LINGER = 2.0
MAX_IN_FLIGHT = 256


class AlreadyRunning(Exception):
    """Another supervisor holds the lock of this runtime folder."""

    def __init__(self, paths: SupervisorPaths) -> None:
        pid = paths.holder_pid()
        super().__init__(
            f"another supervisor (pid {pid}) holds {paths.lock}; it serves {paths.socket}"
        )
        self.pid = pid


class PeerCredentials(NamedTuple):
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: Any) -> PeerCredentials | None:
    """The connecting process's pid/uid/gid from ``SO_PEERCRED``; None where the platform
    has no such option (the 0700 folder is then the only wall)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    return PeerCredentials(*struct.unpack("3i", raw))


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
        max_pending_bytes: int,
    ) -> None:
        self.id = id
        self.client = client
        self.peer = peer
        self.state: dict[str, Any] = {}
        self.opened_at = time.monotonic()
        self._writer = writer
        self._max_message_bytes = max_message_bytes
        self._max_pending_bytes = max_pending_bytes
        self._seq = 0
        self._closing = False
        self._tasks: dict[int, asyncio.Task[None]] = {}
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

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def emit(self, event: str, data: dict[str, Any] | None = None) -> bool:
        """Push an event to this client; never blocks. False if the session is closed or
        the event could not be encoded (too large: logged)."""
        if self._closing:
            return False
        self._seq += 1
        try:
            line = encode(to_wire(Event(event, self._seq, data or {})), self._max_message_bytes)
        except ProtocolError as exc:
            logger.error("session %s: event %r dropped: %s", self.id, event, exc.message)
            return False
        self._send(line)
        return True

    def _send(self, line: bytes) -> None:
        if self._closing or self._writer.is_closing():
            return
        self._writer.write(line)
        pending = self._writer.transport.get_write_buffer_size()
        if pending > self._max_pending_bytes:
            logger.warning(
                "session %s (%s pid %s): %d bytes unread by the client; disconnecting it",
                self.id,
                self.client.kind,
                self.client.pid,
                pending,
            )
            self._closing = True
            self._writer.transport.abort()


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


class SupervisorServer:
    """Serve ``handler`` on ``paths.socket`` until :meth:`request_stop` or idle exit.

    Lifecycle: ``await start()`` (lock, bind, listen) → ``await wait_stopped()`` →
    ``await close()``; or ``async with`` for all three around the body.
    """

    def __init__(
        self,
        handler: Handler,
        paths: SupervisorPaths,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_pending_bytes: int | None = None,
        version: str = __version__,
    ) -> None:
        self.handler = handler
        self.paths = paths
        self.idle_timeout = idle_timeout
        self.max_message_bytes = max_message_bytes
        self.max_pending_bytes = max_pending_bytes or 8 * max_message_bytes
        self.version = version
        self.stop_reason: str | None = None
        self._lock_fd: int | None = None
        self._server: asyncio.Server | None = None
        self._socket_inode: int | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._sessions: dict[str, Session] = {}
        self._ids = itertools.count(1)
        self._stop = asyncio.Event()
        self._last_active = time.monotonic()
        self._idle_task: asyncio.Task[None] | None = None

    @property
    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Take the lock (or raise :class:`AlreadyRunning`), then bind and listen."""
        self._take_lock()
        try:
            await self._listen()
        except BaseException:
            self._release_lock()
            raise
        self._last_active = time.monotonic()
        self._idle_task = asyncio.create_task(self._idle_watch(), name="supervisor-idle")
        logger.info(
            "supervisor %s (protocol %d) pid %d serving %s; idle exit after %gs",
            self.version,
            PROTOCOL_VERSION,
            os.getpid(),
            self.paths.socket,
            self.idle_timeout,
        )

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            logger.info("stopping: %s", reason)
            self._stop.set()
        if self._server is not None:
            self._server.close()  # new clients now find no socket and start a fresh supervisor
        self._unlink_socket()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def close(self) -> None:
        """Stop listening, close every session (cancelling its requests, then
        ``close_session``), call ``handler.shutdown()``, remove the socket, drop the lock."""
        self.request_stop(self.stop_reason or "closed")
        if self._idle_task is not None:
            self._idle_task.cancel()
        # End each connection as if its client had hung up (not by cancelling its task, which
        # could interrupt a close_session already running): sessions end the normal way.
        connections = list(self._connections)
        for writer in self._connections.values():
            writer.transport.abort()
        if connections:
            await asyncio.gather(*connections, return_exceptions=True)
        try:
            await self.handler.shutdown()
        finally:
            self._release_lock()

    async def __aenter__(self) -> SupervisorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- lock and socket -----------------------------------------------------------

    def _take_lock(self) -> None:
        ensure_private_dir(self.paths.runtime_dir)
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self.paths) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the only descriptor releases the flock
            self._lock_fd = None

    async def _listen(self) -> None:
        final = self.paths.socket
        temporary = final.with_name(f".{final.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with socket_address(temporary) as address:
                sock.bind(address)
            os.chmod(temporary, 0o600)
            sock.listen(128)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(
                self._on_connection, sock=sock, limit=self.max_message_bytes
            )
            os.rename(temporary, final)
        except BaseException:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        self._socket_inode = os.stat(final).st_ino

    def _socket_is_ours(self) -> bool:
        try:
            return os.stat(self.paths.socket).st_ino == self._socket_inode
        except OSError:
            return False

    def _unlink_socket(self) -> None:
        if self._socket_inode is not None and self._socket_is_ours():
            with contextlib.suppress(FileNotFoundError):
                self.paths.socket.unlink()
        self._socket_inode = None

    # -- idle ------------------------------------------------------------------------

    def _idle(self) -> bool:
        if self._connections:
            return False
        try:
            return not self.handler.busy()
        except Exception:
            logger.exception("handler.busy() failed; counting as busy")
            return False

    async def _idle_watch(self) -> None:
        tick = min(5.0, max(0.02, self.idle_timeout / 10))
        while True:
            await asyncio.sleep(tick)
            if not self._socket_is_ours():
                logger.warning("socket %s was removed or replaced; exiting", self.paths.socket)
                self.request_stop("socket gone")
                return
            now = time.monotonic()
            if not self._idle():
                self._last_active = now
            elif now - self._last_active >= self.idle_timeout:
                self.request_stop(f"idle for {self.idle_timeout:g}s")
                return

    # -- connections -----------------------------------------------------------------

    async def connect_local(self, sock: socket.socket) -> asyncio.Task[None]:
        """Serve one end of a ``socketpair`` as a connection: the in-process (standalone)
        front-end then goes through exactly the same code as a remote one."""
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=self.max_message_bytes)
        return asyncio.create_task(self._on_connection(reader, writer))

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        session: Session | None = None
        try:
            session = await self._handshake(reader, writer)
            if session is not None:
                await self._serve(session, reader)
        except (ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:
            if not self._stop.is_set():
                raise
        finally:
            self._connections.pop(task, None)
            self._last_active = time.monotonic()
            if session is not None:
                await self._end_session(session)
            writer.close()

    async def _refuse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, refusal: Refused
    ) -> None:
        """Send the refusal, then let the client finish: closing with its hello unread
        would reset the connection and could destroy the refusal before it is read."""
        writer.write(encode(to_wire(refusal)))
        with contextlib.suppress(OSError, TimeoutError):
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(REFUSAL_LINGER):
                while await reader.read(65536):
                    pass

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Session | None:
        peer = peer_credentials(writer.get_extra_info("socket"))
        if peer is not None and peer.uid != os.getuid():
            logger.warning(
                "refused pid %d: uid %d is not ours (%d)", peer.pid, peer.uid, os.getuid()
            )
            await self._refuse(
                reader,
                writer,
                Refused(
                    "wrong_user",
                    f"this process-mcp supervisor serves uid {os.getuid()} only, "
                    f"not uid {peer.uid}; run process-mcp as that user, or let your own "
                    "user start its own supervisor",
                ),
            )
            return None
        line = await asyncio.wait_for(read_line(reader, self.max_message_bytes), HELLO_TIMEOUT)
        if line is None:
            return None
        try:
            if isinstance(line, Oversize):
                raise ProtocolError("bad_hello", "hello exceeds the message limit")
            hello = decode(line)
            if not isinstance(hello, Hello):
                raise ProtocolError("bad_hello", f"expected a hello first, got {line[:80]!r}")
        except ProtocolError as exc:
            await self._refuse(
                reader, writer, Refused("bad_hello", exc.message, self.version, os.getpid())
            )
            return None
        if hello.protocol != PROTOCOL_VERSION or hello.version != self.version:
            await self._refuse_version(hello, reader, writer)
            return None
        session = Session(
            id=f"s{next(self._ids)}",
            client=hello,
            peer=peer,
            writer=writer,
            max_message_bytes=self.max_message_bytes,
            max_pending_bytes=self.max_pending_bytes,
        )
        welcome = Welcome(self.version, os.getpid(), session.id, self.max_message_bytes)
        writer.write(encode(to_wire(welcome)))
        self._sessions[session.id] = session
        logger.info(
            "session %s opened: %s pid %d (peer pid %s)",
            session.id,
            hello.kind,
            hello.pid,
            peer.pid if peer else "?",
        )
        await self.handler.open_session(session)
        return session

    async def _refuse_version(
        self, hello: Hello, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        others = len(self._connections) - 1
        busy = self.handler.busy()
        retiring = hello.replace_if_idle and others == 0 and not busy and not self._stop.is_set()
        ours = f"{self.version} (protocol {PROTOCOL_VERSION})"
        theirs = f"{hello.version} (protocol {hello.protocol})"
        where = f"pid {os.getpid()} on {self.paths.socket}"
        if retiring:
            message = f"supervisor {where} runs {ours}, not {theirs}; it is idle and exits now"
        else:
            what = []
            if others:
                what.append(f"{others} other session(s)")
            if busy:
                what.append("running processes")
            message = (
                f"the process-mcp supervisor ({where}) runs version {ours}, but this "
                f"{hello.kind} is version {theirs}. It still has {' and '.join(what) or 'work'}"
                ", so it is not replaced. Close the sessions that use the old version "
                f"(an idle supervisor is replaced automatically), or stop it with "
                f"`kill {os.getpid()}` (this stops the processes it runs), then retry."
            )
        logger.warning("refused %s pid %d: version %s", hello.kind, hello.pid, theirs)
        if retiring:
            self.request_stop(f"replaced by a {hello.kind} of version {hello.version}")
        refusal = Refused(
            "version_mismatch", message, self.version, os.getpid(), PROTOCOL_VERSION, retiring
        )
        await self._refuse(reader, writer, refusal)

    async def _serve(self, session: Session, reader: asyncio.StreamReader) -> None:
        while True:
            line = await read_line(reader, self.max_message_bytes)
            if line is None:
                return
            if isinstance(line, Oversize):
                limit = self.max_message_bytes
                error = MessageTooLarge(line.size, limit, "request" if line.id else "message")
                self._answer(session, line.id, ErrorInfo(error.code, error.message))
                continue
            try:
                message = decode(line)
            except ProtocolError as exc:
                self._answer(session, None, ErrorInfo(exc.code, exc.message))
                continue
            if isinstance(message, Request):
                self._dispatch(session, message)
            elif isinstance(message, Cancel):
                task = session._tasks.get(message.id)
                if task is not None:
                    task.cancel()
            else:
                text = f"a client may send requests and cancels only, not {line[:60]!r}"
                self._answer(session, None, ErrorInfo("bad_message", text))

    def _dispatch(self, session: Session, request: Request) -> None:
        if request.id in session._tasks:
            text = f"request id {request.id} is already in flight; use a new id per request"
            self._answer(session, request.id, ErrorInfo("bad_message", text))
            return
        if len(session._tasks) >= MAX_IN_FLIGHT:
            text = f"more than {MAX_IN_FLIGHT} requests in flight; wait for some answers"
            self._answer(session, request.id, ErrorInfo("too_many_requests", text))
            return
        task = asyncio.create_task(self._run(session, request), name=f"{session.id}:{request.op}")
        session._tasks[request.id] = task

    async def _run(self, session: Session, request: Request) -> None:
        try:
            result = await self.handler.handle(session, request.op, request.args)
        except RequestError as exc:
            self._answer(session, request.id, ErrorInfo(exc.code, exc.message))
        except asyncio.CancelledError:
            if session._closing:
                raise
            self._answer(session, request.id, ErrorInfo("cancelled", "cancelled by the client"))
        except Exception as exc:
            logger.exception("session %s: %s failed", session.id, request.op)
            text = f"{request.op} failed: {type(exc).__name__}: {exc} (see {self.paths.log})"
            self._answer(session, request.id, ErrorInfo("internal", text))
        else:
            self._answer(session, request.id, result)
        finally:
            session._tasks.pop(request.id, None)

    def _answer(self, session: Session, id_: int | None, result: Any) -> None:
        message = (
            Response(id_, error=result) if isinstance(result, ErrorInfo) else Response(id_, result)
        )
        try:
            line = encode(to_wire(message), self.max_message_bytes)
        except MessageTooLarge as exc:
            error = MessageTooLarge(exc.size, exc.limit, "answer")
            line = encode(to_wire(Response(id_, error=ErrorInfo(error.code, error.message))))
        except ProtocolError as exc:
            logger.error("session %s: answer to %s not encodable: %s", session.id, id_, exc)
            line = encode(to_wire(Response(id_, error=ErrorInfo("internal", exc.message))))
        session._send(line)

    async def _end_session(self, session: Session) -> None:
        session._closing = True
        tasks = list(session._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._sessions.pop(session.id, None)
        try:
            await self.handler.close_session(session)
        except Exception:
            logger.exception("session %s: close_session failed", session.id)
        finally:
            session._closed.set()
            logger.info("session %s closed", session.id)


HandlerFactory = Callable[[], Handler]


def load_handler_factory(spec: str) -> HandlerFactory:
    """``"package.module:attribute"`` → the callable that makes the handler."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"handler {spec!r} must look like 'package.module:factory'")
    factory = getattr(importlib.import_module(module_name), attribute)
    if not callable(factory):
        raise ValueError(f"handler {spec!r} is not callable")
    return factory
