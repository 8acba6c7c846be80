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
- **Many at once.** The listen queue holds ``LISTEN_BACKLOG`` connects (the kernel may
  cap it lower), so a crowd of front-ends starting together is queued, not refused.
- Requests, pipelining and unread answers of one session: :mod:`.session`.
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
import time
from collections.abc import Callable

from process_mcp import __version__
from process_mcp.core.platform.unixsock import stranger
from process_mcp.supervisor.paths import SupervisorPaths, ensure_private_dir, socket_address
from process_mcp.supervisor.protocol import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Hello,
    Oversize,
    ProtocolError,
    Refused,
    Welcome,
    decode,
    read_line,
    wire_line,
)
from process_mcp.supervisor.session import MAX_IN_FLIGHT, Handler, PendingBudget, Session

logger = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 600.0
HELLO_TIMEOUT = 10.0
REFUSAL_LINGER = 2.0
LISTEN_BACKLOG = 4096  # connects queued before accept (a crowd of front-ends at once)
PENDING_PER_SESSION = 2  # times the message limit: unread bytes one session may hold
PENDING_TOTAL = 8  # times the message limit: unread bytes all sessions together may hold
__all__ = ["MAX_IN_FLIGHT", "Handler", "Session", "SupervisorServer"]


class AlreadyRunning(Exception):
    """Another supervisor holds the lock of this runtime folder."""

    def __init__(self, paths: SupervisorPaths) -> None:
        pid = paths.holder_pid()
        super().__init__(
            f"another supervisor (pid {pid}) holds {paths.lock}; it serves {paths.socket}"
        )
        self.pid = pid


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
        max_pending_total: int | None = None,
        listen_backlog: int = LISTEN_BACKLOG,
        version: str = __version__,
    ) -> None:
        self.handler = handler
        self.paths = paths
        self.idle_timeout = idle_timeout
        self.max_message_bytes = max_message_bytes
        self.max_pending_bytes = max_pending_bytes or PENDING_PER_SESSION * max_message_bytes
        total = max_pending_total or PENDING_TOTAL * max_message_bytes
        self._budget = PendingBudget(self.max_pending_bytes, max(total, self.max_pending_bytes))
        self.listen_backlog = listen_backlog
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
        bind = getattr(handler, "bind", None)  # a handler that may retire its server
        if bind is not None:
            bind(self)

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
            sock.listen(self.listen_backlog)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(
                self._on_connection,
                sock=sock,
                limit=self.max_message_bytes,
                backlog=self.listen_backlog,  # asyncio listens again, with 100 by default
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
                await session.serve(reader, self.handler)
        except (ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:
            if not self._stop.is_set():
                raise
        finally:
            self._connections.pop(task, None)
            self._last_active = time.monotonic()
            if session is not None:
                await session.end(self.handler, self._forget)
            writer.close()

    async def _refuse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, refusal: Refused
    ) -> None:
        """Send the refusal, then let the client finish: closing with its hello unread
        would reset the connection and could destroy the refusal before it is read."""
        writer.write(wire_line(refusal))
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
        peer = stranger(writer.get_extra_info("socket"))
        if peer is not None:
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
            budget=self._budget,
            log_path=self.paths.log,
        )
        welcome = Welcome(self.version, os.getpid(), session.id, self.max_message_bytes)
        writer.write(wire_line(welcome))
        self._sessions[session.id] = session
        self._budget.sessions[session.id] = session
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

    def _forget(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        self._budget.sessions.pop(session.id, None)


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
