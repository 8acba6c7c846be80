"""The logging capability: each exit is also a ``notifications/message`` (level ``info``).

Some clients show server log messages to the user (and a few to the model) where they
drop the custom ``process/exit``. ``logging/setLevel`` is honoured per client: below the
level a client asked for, nothing is sent to it.

Handshake-era (2025) connections get them when the process ends. At 2026-07-28 logging
is deprecated and a server may not send unsolicited messages: a message may only ride a
request that opted in (``_meta`` log level). So a modern client that opts in gets each
exit as a message on the tool answer that reports it in ``events``.

The history going off (its database unwritable, damaged, on a full disk) is told the same
way, once per client, at level ``warning``: the supervisor's own log may sit on the very
disk that is full, so the client is the one place sure to hear it.
"""

from __future__ import annotations

from typing import Any

from mcp_types import EmptyResult, SetLevelRequestParams

from process_mcp.core import ProcessRecord
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.server import sdk
from process_mcp.server.reach import Reach

LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
DEFAULT_LEVEL = "info"
LOGGER_NAME = "process-mcp"


def describe_exit(record: ProcessRecord) -> str:
    command = " ".join([record.command, *record.args])
    if len(command) > 120:
        command = command[:117] + "..."
    if record.signal:
        how = f"by {record.signal}"
    elif record.exit_code is not None:
        how = f"with exit code {record.exit_code}"
    else:
        how = "(exit status unknown)"
    return f"process {record.id} ({command}) {record.status.value} {how}"


def exit_data(record: ProcessRecord) -> dict[str, Any]:
    return {"message": describe_exit(record), **record.exit_facts()}


async def announce_in_answer(ctx: Any, records: list[ProcessRecord]) -> None:
    """On a 2026-07-28 request, log the exits its answer reports (if the request opted in)."""
    session = getattr(ctx, "session", None)
    if session is None or sdk.is_handshake_era(session):
        return
    for record in records:
        await sdk.send_request_log(session, "info", exit_data(record), LOGGER_NAME)


class ExitMessages:
    """Per-client log levels and the exit announcements sent to them."""

    def __init__(self, reach: Reach) -> None:
        self._reach = reach
        self._sessions: dict[str, Any] = {}
        self._levels: dict[str, str] = {}
        self._warned: dict[str, str] = {}  # client -> the settings warning it was sent
        self._tasks = BackgroundTasks()
        self._history: str | None = None  # why the history is off; None: on
        self._told: set[str] = set()  # clients told of the history's current problem

    def meet(self, ctx: Any) -> None:
        session = getattr(ctx, "session", None)
        if session is not None and sdk.is_handshake_era(session):
            key = sdk.client_key(ctx)
            self._sessions[key] = session
            if self._history is not None and key not in self._told:
                self._tell_history()

    def history_state(self, problem: str | None) -> None:
        """The supervisor's history went off (``problem`` says why) or works again (None):
        each client hears a problem once, when it is next reached."""
        if problem == self._history:
            return
        self._history = problem
        self._told.clear()
        self._tell_history()

    def _history_notice(self) -> dict[str, Any]:
        return {
            "message": f"process-mcp history is off: {self._history}. Processes run as "
            "usual; runs are not remembered until it works again"
        }

    def _tell_history(self) -> None:
        if self._history is None:
            return
        for key, session in self._reach.select(self._sessions):
            if key in self._told:
                continue
            self._told.add(key)
            if LEVELS.index("warning") >= LEVELS.index(self._levels.get(key, DEFAULT_LEVEL)):
                notice = self._history_notice()
                self._tasks.spawn(sdk.send_log(session, "warning", notice, LOGGER_NAME))

    async def announce_history(self, ctx: Any) -> None:
        """On a 2026-07-28 request, the history's problem once per client (if it opted in)."""
        session = getattr(ctx, "session", None)
        key = sdk.client_key(ctx)
        if session is None or sdk.is_handshake_era(session) or self._history is None:
            return
        if key not in self._told:
            self._told.add(key)
            await sdk.send_request_log(session, "warning", self._history_notice(), LOGGER_NAME)

    async def set_level(self, ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        self.meet(ctx)
        self._levels[sdk.client_key(ctx)] = params.level
        return EmptyResult()

    def forget(self, client: str) -> None:
        """The client's session ended: drop its session and level."""
        self._sessions.pop(client, None)
        self._levels.pop(client, None)
        self._told.discard(client)
        self._warned.pop(client, None)

    def clients(self) -> set[str]:
        return set(self._sessions) | set(self._levels)

    async def warn_once(self, ctx: Any, text: str | None) -> None:
        """Send ``text`` (a settings warning) to the asking client as a ``warning``
        message, once per client: unsolicited to a handshake-era one, else on this
        request (if it opted in to log messages)."""
        session = getattr(ctx, "session", None)
        key = sdk.client_key(ctx)
        if text is None or session is None or self._warned.get(key) == text:
            return
        if LEVELS.index("warning") < LEVELS.index(self._levels.get(key, DEFAULT_LEVEL)):
            return
        self._warned[key] = text
        data = {"message": text}
        if sdk.is_handshake_era(session):
            await sdk.send_log(session, "warning", data, LOGGER_NAME)
        else:
            await sdk.send_request_log(session, "warning", data, LOGGER_NAME)

    def on_exit(self, record: ProcessRecord, client: str | None = None) -> None:
        """Announce an exit to ``client`` (None: to every client reached)."""
        data: dict[str, Any] | None = None
        for key, session in self._reach.select(self._sessions):
            if client is not None and key != client:
                continue
            wanted = self._levels.get(key, DEFAULT_LEVEL)
            if LEVELS.index("info") < LEVELS.index(wanted):
                continue
            data = data or exit_data(record)
            self._tasks.spawn(sdk.send_log(session, "info", data, LOGGER_NAME))
