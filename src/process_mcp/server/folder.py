"""The default folder of each client: where a ``start`` without ``cwd`` runs.

An agent's ``npm run dev`` must run in the user's project, not wherever the server
happens to be installed. The project is the client's first ``file://`` root, when the
client declares the ``roots`` capability; else the directory the server was launched in
(what ``uv run --project PATH process-mcp`` keeps, and ``--directory`` would change).

Roots are asked once the client has finished the handshake, and again whenever it says
they changed, in the background and with a short timeout: some clients declare roots
and never answer. Only a ``start`` without ``cwd`` waits for an answer in flight, and at
most ``ROOTS_WAIT`` (so the first call after the handshake runs in the client's root,
not in the launch directory); every other call takes the folder known at once. Until an
answer arrives (or if none does, or no root is a local directory), the launch directory
is the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote, urlparse

from process_mcp.core.tasks import BackgroundTasks
from process_mcp.server import sdk

logger = logging.getLogger(__name__)

ROOTS_TIMEOUT = 5.0  # seconds a client gets to answer roots/list
ROOTS_WAIT = 1.0  # seconds a start without cwd waits for an answer in flight

current_folder: ContextVar[str | None] = ContextVar("current_folder", default=None)
"""The default folder of the client whose tool call is being handled (set per call)."""


def root_folder(uris: list[str]) -> str | None:
    """The first ``file://`` URI that names an existing local directory, as a path."""
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            continue
        path = unquote(parsed.path)
        if os.path.isdir(path):
            return os.path.realpath(path)
    return None


class DefaultFolders:
    """Each client's default folder (by ``sdk.client_key``), learnt from its roots."""

    def __init__(self, launch_dir: str | None = None, timeout: float = ROOTS_TIMEOUT) -> None:
        self.launch_dir = launch_dir or os.getcwd()
        self.timeout = timeout
        self._folders: dict[str, str] = {}
        self._asked: dict[str, int] = {}  # client → number of its latest question
        self._settled: dict[str, asyncio.Event] = {}  # set once its latest question is done
        self._tasks = BackgroundTasks()

    def folder(self, client: str) -> str:
        """The client's first local root, else the launch directory. Never waits."""
        return self._folders.get(client, self.launch_dir)

    async def folder_for(self, ctx: Any, tool: str, arguments: dict[str, Any] | None) -> str:
        """The client's folder for this tool call. A ``start`` without ``cwd`` first waits
        (at most ``ROOTS_WAIT``) for a roots answer in flight, asking now if the client
        declared roots and was never asked; every other call never waits."""
        client = sdk.client_key(ctx)
        if tool != "start" or (arguments or {}).get("cwd"):
            return self.folder(client)
        if client not in self._asked:
            self.ask(ctx)  # a call that came before the handshake's end was handled
        settled = self._settled.get(client)
        if settled is not None and not settled.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(settled.wait(), ROOTS_WAIT)
        return self.folder(client)

    def forget(self, client: str) -> None:
        """The client is gone: drop what was learnt of it."""
        self._folders.pop(client, None)
        self._asked.pop(client, None)
        self._settled.pop(client, None)

    async def on_initialized(self, ctx: Any, params: Any) -> None:
        self.ask(ctx)

    async def on_roots_changed(self, ctx: Any, params: Any) -> None:
        self.ask(ctx)

    def ask(self, ctx: Any) -> None:
        """Ask the client for its roots in the background (if it declared them)."""
        session = getattr(ctx, "session", None)
        if session is None or not sdk.can_ask_roots(session):
            return
        client = sdk.client_key(ctx)
        question = self._asked.get(client, 0) + 1
        self._asked[client] = question
        self._settled.setdefault(client, asyncio.Event()).clear()
        self._tasks.spawn(self._ask(session, client, question))

    async def _ask(self, session: Any, client: str, question: int) -> None:
        try:
            uris = await sdk.list_root_uris(session, self.timeout)
        except Exception as exc:  # no answer in time, a refusal, a client gone
            logger.info(
                "roots/list not answered (%r); default folder stays %s", exc, self.folder(client)
            )
            self._settle(client, question)
            return
        if self._asked.get(client) != question:
            return  # a newer question (roots changed again) decides
        folder = root_folder(uris)
        if folder is None:
            self._folders.pop(client, None)
        else:
            self._folders[client] = folder
        self._settle(client, question)

    def _settle(self, client: str, question: int) -> None:
        """The latest question of ``client`` is done: release the starts waiting on it."""
        settled = self._settled.get(client)
        if settled is not None and self._asked.get(client) == question:
            settled.set()
