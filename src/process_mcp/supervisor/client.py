"""A front-end's connection to the supervisor, and starting the supervisor on demand.

Guarantees:
- :meth:`SupervisorClient.connect` returns only after a successful handshake with a
  supervisor of the same user, protocol and package version; a version difference raises
  :class:`VersionMismatch` whose message names both versions and the fix — never a silent
  mismatch.
- Requests are multiplexed: any number may be in flight; each ``request`` awaits its own
  answer. Cancelling the awaiting task sends ``cancel`` so the supervisor stops the work.
- When the connection ends, every pending request fails with :class:`SupervisorGone` and
  the event stream ends.
- :func:`ensure_supervisor` connects, or starts a supervisor (detached, own session, output
  to ``supervisor.log``) and connects, within a deadline; if none comes up the error quotes
  the end of the log. Several front-ends calling it at once end up on one supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from process_mcp import __version__
from process_mcp.core.platform.unixsock import stranger
from process_mcp.supervisor.paths import SupervisorPaths, socket_address
from process_mcp.supervisor.protocol import (
    MAX_MESSAGE_BYTES,
    Cancel,
    Event,
    Hello,
    Oversize,
    ProtocolError,
    Refused,
    Request,
    Response,
    Welcome,
    decode,
    read_line,
    wire_line,
)

logger = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
CONNECT_RETRY = 5.0  # seconds a connect turned away by a full listen queue is retried
START_TIMEOUT = 10.0
EXIT_LOST_LOCK = 3  # ``supervisor --detach``: another supervisor holds the lock


class SupervisorError(Exception):
    """Base of every error this module raises."""


class SupervisorUnavailable(SupervisorError):
    """Nobody answers on the socket (no supervisor, or it is stopping)."""


class SupervisorGone(SupervisorError):
    """The connection ended while a request was pending or being sent."""


class SupervisorRefused(SupervisorError):
    def __init__(self, refusal: Refused) -> None:
        super().__init__(f"supervisor refused the connection ({refusal.code}): {refusal.message}")
        self.refusal = refusal


class VersionMismatch(SupervisorRefused):
    """The supervisor runs another version; ``retiring`` when it was idle and now exits."""

    @property
    def retiring(self) -> bool:
        return self.refusal.retiring


class SupervisorStartError(SupervisorError):
    pass


class RequestFailed(SupervisorError):
    """The supervisor answered a request with an error."""

    def __init__(self, op: str, code: str, message: str) -> None:
        super().__init__(message)
        self.op = op
        self.code = code
        self.message = message


class SupervisorClient:
    """One session with the supervisor. Use :meth:`connect`; close with :meth:`close` (or
    ``async with``). Events go to ``on_event`` if given, else to :meth:`events`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        welcome: Welcome,
        on_event: Callable[[Event], object] | None,
    ) -> None:
        self.welcome = welcome
        self._reader = reader
        self._writer = writer
        self._on_event = on_event
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._closed = asyncio.Event()
        self._reading = asyncio.create_task(self._read_loop(), name="supervisor-client")

    @property
    def session(self) -> str:
        return self.welcome.session

    @property
    def supervisor_pid(self) -> int:
        return self.welcome.pid

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @classmethod
    async def connect(
        cls,
        target: Path | socket.socket,
        *,
        kind: str,
        version: str = __version__,
        replace_if_idle: bool = False,
        on_event: Callable[[Event], object] | None = None,
        timeout: float = HANDSHAKE_TIMEOUT,
    ) -> SupervisorClient:
        """Handshake on the socket at ``target`` (or an already connected socket).

        Raises :class:`SupervisorUnavailable` if nobody listens there,
        :class:`VersionMismatch` / :class:`SupervisorRefused` if refused.
        """
        limit = MAX_MESSAGE_BYTES
        reader, writer = await _open(target, limit)
        try:
            _check_peer(writer, target)
            hello = Hello(version, kind, os.getpid(), replace_if_idle=replace_if_idle)
            writer.write(wire_line(hello))
            line = await asyncio.wait_for(read_line(reader, limit), timeout)
            if line is None:
                raise SupervisorUnavailable(f"the supervisor on {target} hung up during hello")
            if isinstance(line, Oversize):
                raise SupervisorError(f"the supervisor on {target} sent an oversize greeting")
            reply = decode(line)
        except (ConnectionError, ProtocolError) as exc:
            writer.close()
            if isinstance(exc, ProtocolError):
                raise SupervisorError(f"bad greeting from {target}: {exc.message}") from None
            raise SupervisorUnavailable(f"the supervisor on {target} hung up: {exc}") from None
        except BaseException:
            writer.close()
            raise
        if isinstance(reply, Welcome):
            return cls(reader, writer, reply, on_event)
        writer.close()
        if isinstance(reply, Refused):
            if reply.code == "version_mismatch":
                raise VersionMismatch(reply)
            raise SupervisorRefused(reply)
        raise SupervisorError(f"the supervisor on {target} answered hello with {line[:80]!r}")

    async def request(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """Send one request and return its answer's ``ok`` value; raises
        :class:`RequestFailed` for an error answer, :class:`SupervisorGone` if the
        connection ends first, :class:`~process_mcp.supervisor.protocol.MessageTooLarge`
        (nothing sent) if the request exceeds the message limit."""
        if self.closed:
            raise SupervisorGone(
                f"the connection to supervisor pid {self.supervisor_pid} is closed"
            )
        id_ = next(self._ids)
        line = wire_line(Request(id_, op, args or {}), self.welcome.max_message_bytes)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[id_] = (op, future)
        try:
            self._writer.write(line)
            await self._writer.drain()
            return await future
        except asyncio.CancelledError:
            # Awaiting a future cancels it with the task: cancelled means "no answer yet".
            if not self.closed and (future.cancelled() or not future.done()):
                with contextlib.suppress(ConnectionError):
                    self._writer.write(wire_line(Cancel(id_)))
            raise
        except ConnectionError as exc:
            # Closed now, not once the read loop sees the end: a caller that asks
            # ``closed`` next (the front-end's retry of a read-only tool) must see it.
            self._closed.set()
            raise SupervisorGone(f"lost the supervisor while sending {op}: {exc}") from None
        finally:
            self._pending.pop(id_, None)

    async def events(self) -> AsyncIterator[Event]:
        """Events in arrival order until the connection ends (one consumer at a time)."""
        while True:
            event = await self._events.get()
            if event is None:
                self._events.put_nowait(None)  # later iterators end too
                return
            yield event

    async def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        await self._closed.wait()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def __aenter__(self) -> SupervisorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _read_loop(self) -> None:
        reason = "the supervisor closed the connection"
        try:
            while True:
                line = await read_line(self._reader, self.welcome.max_message_bytes)
                if line is None:
                    return
                if isinstance(line, Oversize):
                    logger.error("supervisor sent a %d-byte message; dropped", line.size)
                    continue
                try:
                    message = decode(line)
                except ProtocolError as exc:
                    logger.error("bad message from the supervisor: %s", exc.message)
                    continue
                self._deliver(message)
        except (ConnectionError, OSError) as exc:
            reason = f"connection to the supervisor lost: {exc}"
        finally:
            self._closed.set()
            self._writer.close()
            for op, future in list(self._pending.values()):
                if not future.done():
                    future.set_exception(
                        SupervisorGone(f"{reason} (pid {self.supervisor_pid}) during {op}")
                    )
            self._events.put_nowait(None)

    def _deliver(self, message: Any) -> None:
        if isinstance(message, Event):
            if self._on_event is None:
                self._events.put_nowait(message)
                return
            try:
                self._on_event(message)
            except Exception:
                logger.exception("event callback failed on %s", message.event)
            return
        if isinstance(message, Response):
            entry = self._pending.get(message.id) if message.id is not None else None
            if entry is None:
                if message.error is not None:
                    logger.error("supervisor error: %s", message.error.message)
                return
            op, future = entry
            if future.done():
                return
            if message.error is not None:
                future.set_exception(RequestFailed(op, message.error.code, message.error.message))
            else:
                future.set_result(message.ok)
            return
        logger.error("unexpected message from the supervisor: %r", message)


async def _open(
    target: Path | socket.socket, limit: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connected stream to ``target``. A connect the supervisor's full listen queue
    turned away (a crowd of front-ends at once: the socket comes back unconnected, and
    its peer reads as pid 0) is retried with backoff for ``CONNECT_RETRY`` seconds."""
    if isinstance(target, socket.socket):
        return await asyncio.open_unix_connection(sock=target, limit=limit)
    deadline = time.monotonic() + CONNECT_RETRY
    delay = 0.005
    while True:
        try:
            with socket_address(target) as address:
                reader, writer = await asyncio.open_unix_connection(address, limit=limit)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SupervisorUnavailable(f"no supervisor listens on {target}: {exc}") from None
        except BlockingIOError:  # EAGAIN: the listen queue is full
            pass
        else:
            if _connected(writer.get_extra_info("socket")):
                return reader, writer
            writer.close()
        if time.monotonic() >= deadline:
            raise SupervisorUnavailable(
                f"the supervisor on {target} did not accept this connection within "
                f"{CONNECT_RETRY:g}s: its listen queue stayed full (many clients connecting "
                "at once); retry in a moment"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


def _connected(sock: Any) -> bool:
    """Whether ``sock`` has a peer (an unconnected one has none: ``ENOTCONN``)."""
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def _check_peer(writer: asyncio.StreamWriter, target: object) -> None:
    """The listening process must be our own user (a planted socket would otherwise see our
    requests, environment included)."""
    peer = stranger(writer.get_extra_info("socket"))
    if peer is not None:
        raise SupervisorError(
            f"the socket {target} is served by pid {peer.pid} of uid {peer.uid}, not by our "
            f"uid {os.getuid()}; remove it or set PROCESS_MCP_RUNTIME_DIR to a private folder"
        )


def supervisor_command(paths: SupervisorPaths, extra: Sequence[str] = ()) -> list[str]:
    """How :func:`ensure_supervisor` starts one: this interpreter, this package."""
    return [
        sys.executable,
        "-m",
        "process_mcp",
        "supervisor",
        "--detach",
        "--runtime-dir",
        str(paths.runtime_dir),
        "--state-dir",
        str(paths.state_dir),
        *extra,
    ]


async def launch_supervisor(paths: SupervisorPaths, command: Sequence[str], timeout: float) -> int:
    """Run ``command`` (a ``supervisor --detach``) and return its exit status: 0 once the
    supervisor listens, ``EXIT_LOST_LOCK`` if another holds the lock, else a failure.

    The launched process is only the launcher: it forks the supervisor (which is then not a
    session leader, so it can never acquire a controlling terminal), waits for it to report
    ready, and exits; we reap it here, so no zombie is left with the front-end.
    """
    paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # private, as promised
    log = os.open(paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    finally:
        os.close(log)
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return -1


async def ensure_supervisor(
    kind: str,
    *,
    paths: SupervisorPaths | None = None,
    command: Sequence[str] | None = None,
    version: str = __version__,
    on_event: Callable[[Event], object] | None = None,
    start_timeout: float = START_TIMEOUT,
) -> SupervisorClient:
    """A session with the user's supervisor, starting one if none answers.

    An idle supervisor of another version steps down when asked and a fresh one is started;
    a busy one raises :class:`VersionMismatch` with the fix. Raises
    :class:`SupervisorStartError` (with the log's last lines) if none answers in
    ``start_timeout`` seconds.
    """
    paths = paths or SupervisorPaths.from_env()
    command = list(command) if command is not None else supervisor_command(paths)
    deadline = time.monotonic() + start_timeout
    next_launch = 0.0
    last: str = "not tried"
    while True:
        try:
            return await SupervisorClient.connect(
                paths.socket, kind=kind, version=version, replace_if_idle=True, on_event=on_event
            )
        except VersionMismatch as exc:
            if not exc.retiring:
                raise
            last = f"supervisor pid {exc.refusal.pid} of version {exc.refusal.version} retiring"
            next_launch = 0.0
        except SupervisorUnavailable as exc:
            last = str(exc)
            now = time.monotonic()
            if now >= next_launch:
                status = await launch_supervisor(paths, command, max(0.1, deadline - now))
                if status == 0:
                    continue
                if status == EXIT_LOST_LOCK:
                    holder = paths.holder_pid()
                    last = f"supervisor pid {holder} holds {paths.lock} but does not answer yet"
                    next_launch = time.monotonic() + 0.5
                else:
                    raise SupervisorStartError(
                        f"the supervisor did not start (`{' '.join(command)}` exited with "
                        f"{status}); last lines of {paths.log}:\n{paths.log_tail()}"
                    ) from None
        if time.monotonic() >= deadline:
            raise SupervisorStartError(
                f"no supervisor answered on {paths.socket} within {start_timeout:g}s ({last}); "
                f"last lines of {paths.log}:\n{paths.log_tail()}"
            )
        await asyncio.sleep(0.02)
