"""The MCP front-end's link to the supervisor: one supervisor session per MCP session.

A stdio server has one client, so one session: it is opened at start-up (a supervisor is
started if none answers, one of another version is never used silently) and closed at exit,
after ``end_session`` has stopped the processes it owns; if the front-end dies instead
(even SIGKILL) the supervisor sees the connection close and stops them itself. An HTTP
server opens a *primary* session at start-up (version check, the mirror's snapshot, output
ticks for resource subscriptions) and one more per MCP session, on its first tool call,
ended when the HTTP session ends (closed, expired) or the server exits.

``--standalone`` runs the supervisor service inside this process: the same
:class:`~process_mcp.supervisor.transport.SupervisorServer`, never started (no lock, no
socket), each session an in-memory socket pair served by ``connect_local``; so a sandbox
that forbids a detached process gets the same code path.

The synchronous lookups the MCP layer needs (``find``, ``get``, ``records``) read one
:class:`~process_mcp.supervisor.mirror.RecordMirror` fed by every session's events and
answers; everything else is a request. If the supervisor goes away (killed: its sentinel
ended every managed tree), the next call reconnects, starting a fresh supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable

from process_mcp.core import ProcessRecord, Settings
from process_mcp.core.logs.query import LogAnswer, LogQuery
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.supervisor.client import SupervisorClient, ensure_supervisor
from process_mcp.supervisor.drift import drift_warning
from process_mcp.supervisor.mirror import RecordMirror
from process_mcp.supervisor.paths import SupervisorPaths
from process_mcp.supervisor.protocol import Event
from process_mcp.supervisor.remote import RemoteManager, SupervisorLost, captured_environment
from process_mcp.supervisor.transport import SupervisorServer

logger = logging.getLogger(__name__)

Connect = Callable[[Callable[[Event], object]], Awaitable[SupervisorClient]]
ExitListener = Callable[[ProcessRecord, str], None]


class Backend:
    """See the module docstring. Build with :meth:`open`; end with :meth:`close`."""

    def __init__(self, connect: Connect, *, per_client: bool, local: SupervisorServer | None):
        self._connect = connect
        self._per_client = per_client
        self._local = local
        self.mirror = RecordMirror()
        # The synchronous lookups of the MCP layer (find, get, records) are the mirror's.
        self.find = self.mirror.find
        self.get = self.mirror.get
        self.records = self.mirror.records
        self.env = captured_environment()
        self.default_folder = os.getcwd()  # MCP roots may replace it
        self.stop_grace = 5.0
        self._primary: RemoteManager | None = None
        self._clients: dict[str, RemoteManager] = {}
        self._lock = asyncio.Lock()
        self._client_lock = asyncio.Lock()
        self._exit_listeners: list[ExitListener] = []
        self._digest_listeners: list[ExitListener] = []
        self._output_listeners: list[Callable[[str], None]] = []
        self.history_problem: str | None = None  # why the supervisor's history is off
        self._history_listeners: list[Callable[[str | None], None]] = []
        self._want_output = False
        self._closed = False
        self._tasks = BackgroundTasks()
        self.drift_warning: str | None = None  # ours vs the supervisor's wide settings

    @classmethod
    async def open(
        cls,
        kind: str,
        *,
        standalone: bool,
        per_client: bool = False,
        settings: Settings | None = None,
    ) -> Backend:
        """Connect (starting the supervisor if need be, or the in-process one with
        ``settings``, default from the environment) and load the mirror. Raises the
        client's errors: SupervisorStartError, VersionMismatch, ...; standalone, what the
        core's manager raises for an unusable state directory."""
        local: SupervisorServer | None = None
        if standalone:
            from process_mcp.supervisor.service import ProcessService

            local = SupervisorServer(ProcessService(settings), SupervisorPaths.from_env())
            server = local

            async def connect(on_event: Callable[[Event], object]) -> SupervisorClient:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                await server.connect_local(theirs)
                return await SupervisorClient.connect(ours, kind="standalone", on_event=on_event)

        else:

            async def connect(on_event: Callable[[Event], object]) -> SupervisorClient:
                return await ensure_supervisor(kind, on_event=on_event)

        backend = cls(connect, per_client=per_client, local=local)
        try:
            await backend._ensure_primary()
        except BaseException:
            if local is not None:
                await local.close()
            raise
        return backend

    # ------------------------------------------------------------------ sessions
    def _folder(self) -> str:
        return self.default_folder

    async def _new_session(self, client_key: str) -> RemoteManager:
        remote = RemoteManager(
            self.mirror, env=self.env, folder_fallback=self._folder, client_key=client_key
        )
        remote.exit_listeners.append(self._on_exit)
        remote.digest_listeners.append(self._on_digest)
        remote.client = await self._connect(remote.on_event)
        return remote

    async def _ensure_primary(self) -> RemoteManager:
        if self._primary is not None and not self._primary.closed:
            return self._primary
        async with self._lock:
            if self._primary is not None and not self._primary.closed:
                return self._primary
            if self._closed:
                raise SupervisorLost("this process-mcp server is shutting down")
            if self._primary is not None:
                logger.warning("the supervisor connection was lost; reconnecting")
            primary = await self._new_session("default")
            primary.output_listeners.append(self._on_output)
            primary.history_listeners.append(self._on_history)
            snapshot = await primary.snapshot()
            self.stop_grace = snapshot.stop_grace
            self._on_history(snapshot.history_problem)
            self._tell_drift(snapshot.settings)
            if self._want_output:
                await primary.follow_output(True)
            self._primary = primary
            return primary

    def _tell_drift(self, theirs: dict[str, str]) -> None:
        """Once per supervisor: a supervisor-wide setting of ours that differs from the
        supervisor's is one stderr line, and (``drift_warning``) a warning each MCP client
        is sent once (``server/messages.py``). Standalone, the supervisor is this process
        (no other one's settings to differ from): nothing to tell."""
        text = None if self._local is not None else drift_warning(theirs)
        if text is not None and text != self.drift_warning:
            print(text, file=sys.stderr, flush=True)
        self.drift_warning = text

    async def session_for(self, client_key: str) -> RemoteManager:
        """The supervisor session serving MCP client ``client_key`` (stdio: the primary)."""
        primary = await self._ensure_primary()
        if not self._per_client:
            return primary
        remote = self._clients.get(client_key)
        if remote is not None and not remote.closed:
            return remote
        async with self._client_lock:  # one session per client, even for concurrent calls
            remote = self._clients.get(client_key)
            if remote is None or remote.closed:
                remote = await self._new_session(client_key)
                if self._closed:
                    await remote.end_session()
                    raise SupervisorLost("this process-mcp server is shutting down")
                self._clients[client_key] = remote
        return remote

    def clients(self) -> set[str]:
        """The MCP clients that hold a supervisor session of their own (HTTP)."""
        return set(self._clients)

    async def end_client(self, client_key: str) -> None:
        """MCP client ``client_key`` is gone: end its session (stopping what it owns)."""
        remote = self._clients.pop(client_key, None)
        if remote is not None:
            await remote.end_session()

    async def close(self) -> None:
        """End every session (their processes stop), then the in-process supervisor."""
        self._closed = True
        sessions = [*self._clients.values(), *([self._primary] if self._primary else [])]
        self._clients.clear()
        await asyncio.gather(*(s.end_session() for s in sessions), return_exceptions=True)
        if self._local is not None:
            await self._local.close()

    # ------------------------------------------- what the MCP layer reads and hears
    async def read_log(self, process_id: str, query: LogQuery) -> LogAnswer:
        return await (await self._ensure_primary()).read_log(process_id, query)

    def add_exit_listener(self, listener: ExitListener) -> None:
        """``listener(record, client_key)`` when a process that client started or touched
        ends (each end once per client)."""
        self._exit_listeners.append(listener)

    def add_digest_listener(self, listener: ExitListener) -> None:
        """``listener(record, client_key)`` for each end an answer to that client reports,
        in the order the supervisor saw them, before the tool call that asked returns."""
        self._digest_listeners.append(listener)

    def add_ended_listener(self, listener: Callable[[ProcessRecord], None]) -> None:
        """``listener(record)`` once per end of any process's run."""
        self.mirror.ended_listeners.append(listener)

    def add_records_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` when a process appears or is removed."""
        self.mirror.list_listeners.append(listener)

    def add_output_listener(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """``listener(process_id)`` at most about once a second per process while output is
        followed (:meth:`want_output`). Returns a callable that removes it."""
        self._output_listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._output_listeners.remove(listener)

        return remove

    def want_output(self, on: bool) -> None:
        """Ask the supervisor for output ticks (some client subscribed) or stop them."""
        if on == self._want_output:
            return
        self._want_output = on
        primary = self._primary
        if primary is not None and not primary.closed:
            self._tasks.spawn(self._follow(primary, on))

    async def _follow(self, primary: RemoteManager, on: bool) -> None:
        with contextlib.suppress(SupervisorLost):
            await primary.follow_output(on)

    def _on_exit(self, record: ProcessRecord, remote: RemoteManager) -> None:
        for listener in list(self._exit_listeners):
            listener(record, remote.client_key)

    def _on_digest(self, records: list[ProcessRecord], remote: RemoteManager) -> None:
        for record in records:
            for listener in list(self._digest_listeners):
                listener(record, remote.client_key)

    def add_history_listener(self, listener: Callable[[str | None], None]) -> None:
        """``listener(problem)`` when the supervisor's history goes off (``problem`` says
        why) or works again (None); :attr:`history_problem` holds the latest."""
        self._history_listeners.append(listener)

    def _on_history(self, problem: str | None) -> None:
        if problem == self.history_problem:
            return
        self.history_problem = problem
        for listener in list(self._history_listeners):
            listener(problem)

    def _on_output(self, process_id: str) -> None:
        for listener in list(self._output_listeners):
            listener(process_id)
