"""The MCP face of the core: dispatches tool calls and turns exits into notifications.

Every answer is a ``CallToolResult`` built here, so no failure can reach a client as the
SDK's opaque "Error executing tool" or a traceback: validation errors name the field,
core errors carry their own actionable text, and a bug is reported as such while the
server keeps serving.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)
from pydantic import ValidationError

from process_mcp import __version__
from process_mcp.core import ApprovalRequired, ProcessError, ProcessRecord
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.server import sdk
from process_mcp.server.answers import reported_exits
from process_mcp.server.asking import ask_then_run, client_identity
from process_mcp.server.backend import Backend
from process_mcp.server.events import ExitEvents, declare_events
from process_mcp.server.folder import DefaultFolders, current_folder
from process_mcp.server.messages import ExitMessages, announce_in_answer
from process_mcp.server.progress import current_progress
from process_mcp.server.reach import Reach
from process_mcp.server.resources import ProcessResources
from process_mcp.server.tools import ToolSpec, tool_specs
from process_mcp.supervisor.client import SupervisorError
from process_mcp.supervisor.remote import SupervisorLost, current_approval

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Runs long-lived commands (dev servers, builds, watchers) in the background, in the "
    "client's project folder. Loop: start, wait (ready or ended), get-log since nextCursor, "
    "stop. An answer's 'events' lists processes that ended since your previous call. "
    "Processes stop when this session ends unless started with keep: true; 'list' shows "
    "every session's processes in this folder."
)


MAX_ERROR_CHARS = 4000  # errors quote what they refuse in short; this bounds any other


def error_result(message: str) -> CallToolResult:
    if len(message) > MAX_ERROR_CHARS:
        message = f"{message[:MAX_ERROR_CHARS]}... ({len(message)} characters in all)"
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def success_result(data: dict[str, Any]) -> dict[str, Any]:
    """``structuredContent`` plus the same data as compact JSON text (fewer tokens), in
    wire form (``sdk.tool_result``): a big ``list`` answer is not walked by pydantic twice.
    The text is built in pieces (``sdk.dumps_in_pieces``) so a worker thread building a
    large one lets the event loop run."""
    return sdk.tool_result(sdk.dumps_in_pieces(data), data)


def describe_validation_error(tool: str, exc: ValidationError, accepted: list[str]) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown parameter {field!r}")
            continue
        given = json.dumps(error.get("input"), default=str)
        given = given if len(given) <= 80 else given[:77] + "..."
        problems.append(f"{field}: {error['msg'].lower()} (got {given})")
    return (
        f"invalid arguments for '{tool}': {'; '.join(problems)}. "
        f"Accepted parameters: {', '.join(accepted) or 'none'}."
    )


def _text_chars(data: dict[str, Any]) -> int:
    """Characters of the lines in an answer (``get-log``, ``wait``'s tail): a cheap measure
    of how long its JSON takes to build."""
    lines = data.get("lines") or data.get("tail") or ()
    return sum(len(line) for line in lines if isinstance(line, str))


class ProcessMcpServer:
    """Binds the supervisor (through a :class:`Backend`: one supervisor session per MCP
    session) to one low-level MCP server."""

    def __init__(self, manager: Backend, launch_dir: str | None = None) -> None:
        self.manager = manager
        self.folders = DefaultFolders(launch_dir)
        self.tools = tool_specs(manager.stop_grace)
        self.sessions = sdk.SessionHolder()
        self._background = BackgroundTasks()
        self.events = ExitEvents()
        self.reach = Reach()
        self.messages = ExitMessages(self.reach)
        self.bus = sdk.ListenBus()
        self.resources = ProcessResources(manager, self.bus, self.reach)
        self.server = sdk.Server(
            "process-mcp",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self.resources.list_resources,
            on_list_resource_templates=self.resources.list_templates,
            on_read_resource=self.resources.read,
            on_subscribe_resource=self.resources.subscribe,
            on_unsubscribe_resource=self.resources.unsubscribe,
        )
        self.watch = sdk.SessionWatch(self.server)
        self.watch.on_end(self.forget)
        sdk.enable_subscriptions(self.server, self.bus)
        sdk.enable_logging(self.server, self.messages.set_level)
        sdk.enable_roots(self.server, self._on_initialized, self.folders.on_roots_changed)
        manager.add_exit_listener(self._on_exit)
        manager.add_digest_listener(self.events.record)
        manager.add_ended_listener(self.resources.on_exit)
        manager.add_history_listener(self.messages.history_state)
        self.messages.history_state(manager.history_problem)

    async def run_stdio(self, stdin: Any = None, stdout: Any = None) -> None:
        """Serve stdin/stdout (or the async text files given) until the input ends."""
        await sdk.run_stdio(self.server, stdin, stdout)

    def http_app(self, security: sdk.TransportSecuritySettings, session_idle: float) -> Any:
        """The streamable-HTTP ASGI app; from now on only clients holding their stream
        open are sent unsolicited notifications."""
        from process_mcp.server.http import StreamTracker

        self.reach.only_open_streams()
        return StreamTracker(sdk.http_app(self.server, security, session_idle), self.reach)

    def forget(self, client: str) -> None:
        """Client ``client``'s session ended (closed, expired): forget everything kept for
        it, so abandoned sessions cost neither memory nor time, and end its supervisor
        session (the processes it owns stop)."""
        self.sessions.forget(client)
        self.events.forget(client)
        self.messages.forget(client)
        self.resources.forget(client)
        self.folders.forget(client)
        self._background.spawn(self.manager.end_client(client))

    def remembered_clients(self) -> set[str]:
        """Every client key some per-session structure still holds."""
        held = self.events.clients() | self.messages.clients() | self.resources.clients()
        held |= self.manager.clients()
        if self.sessions.session is not None:
            held.add(sdk.session_key(self.sessions.session))
        return held

    def _meet(self, ctx: Any) -> None:
        """Every request: remember who is asking, for notifications and ``events``."""
        self.sessions.capture(ctx)
        self.events.meet(sdk.client_key(ctx))
        self.messages.meet(ctx)
        self.resources.meet(ctx)

    async def _on_initialized(self, ctx: Any, params: Any) -> None:
        self._meet(ctx)
        self.folders.ask(ctx)
        await self.messages.warn_once(ctx, self.manager.drift_warning)

    async def _list_tools(self, ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
        self._meet(ctx)
        return ListToolsResult(
            tools=[declare_events(spec.as_tool()) for spec in self.tools.values()]
        )

    async def _call_tool(
        self, ctx: Any, params: CallToolRequestParams
    ) -> CallToolResult | dict[str, Any]:
        self._meet(ctx)
        data = await self._dispatch(ctx, params)
        await self.messages.warn_once(ctx, self.manager.drift_warning)  # once per client
        if isinstance(data, CallToolResult):
            return data  # an error: exits stay queued for the next successful answer
        events = self.events.take(sdk.client_key(ctx))
        ended = [r for e in events if (r := self.manager.find(e["id"])) is not None]
        await announce_in_answer(ctx, ended)
        await self.messages.announce_history(ctx)
        shown = reported_exits(data)  # an answer never repeats an exit it shows itself
        events = [event for event in events if event["id"] not in shown]
        if events:
            data["events"] = events
        if _text_chars(data) > sdk.LARGE_ANSWER_CHARS:  # e.g. 1 MiB of log: built off the loop
            return await anyio.to_thread.run_sync(success_result, data)
        return success_result(data)

    async def _dispatch(
        self, ctx: Any, params: CallToolRequestParams
    ) -> dict[str, Any] | CallToolResult:
        """The handler's answer (slim JSON, see ``answers.py``), or an error result."""
        spec = self.tools.get(params.name)
        if spec is None:
            return error_result(
                f"unknown tool {params.name!r}; available tools: {', '.join(self.tools)}"
            )
        try:
            arguments = spec.input_model.model_validate(params.arguments or {})
        except ValidationError as exc:
            accepted = [f.alias or name for name, f in spec.input_model.model_fields.items()]
            return error_result(describe_validation_error(spec.name, exc, accepted))
        where = await self.folders.folder_for(ctx, params.name, params.arguments)
        token = current_progress.set(sdk.progress_reporter(ctx))
        folder = current_folder.set(where)
        approval = current_approval.set(getattr(arguments, "approval", None))
        try:
            return await self._handle(spec, ctx, arguments)
        except ApprovalRequired as exc:
            return await self._ask_person(spec, ctx, arguments, exc)
        except (ProcessError, SupervisorError) as exc:
            return error_result(str(exc))
        except Exception as exc:
            logger.exception("tool %s failed", spec.name)
            return error_result(
                f"internal error in '{spec.name}': {type(exc).__name__}: {exc}. "
                "The server is still running; please report this."
            )
        finally:
            current_progress.reset(token)
            current_folder.reset(folder)
            current_approval.reset(approval)

    async def _ask_person(
        self, spec: ToolSpec, ctx: Any, arguments: Any, refusal: ApprovalRequired
    ) -> dict[str, Any] | CallToolResult:
        """The policy asks: the person in the client where it can (``asking.py``)."""
        manager = await self.manager.session_for(sdk.client_key(ctx))
        try:
            outcome = await ask_then_run(
                ctx, manager, refusal, lambda: self._handle(spec, ctx, arguments)
            )
        except (ProcessError, SupervisorError) as exc:
            return error_result(str(exc))
        return error_result(outcome) if isinstance(outcome, str) else outcome

    async def _handle(self, spec: ToolSpec, ctx: Any, arguments: Any) -> dict[str, Any]:
        """Run the handler on the client's supervisor session. A read-only tool whose
        supervisor was found gone during the call (it died; its sentinel ended every
        managed tree) runs once more, on a fresh supervisor: repeating it changes nothing.
        A tool that changes something is not repeated: its error says what happened."""
        key = sdk.client_key(ctx)
        manager = await self.manager.session_for(key)
        if not manager.identified:
            await manager.identify(*client_identity(ctx))
        try:
            return await spec.handler(manager, arguments)
        except SupervisorLost:
            if not spec.annotations.read_only_hint or not manager.closed:
                raise
            logger.warning("the supervisor went away during '%s'; asking a new one", spec.name)
            return await spec.handler(await self.manager.session_for(key), arguments)

    def _on_exit(self, record: ProcessRecord, client: str) -> None:
        """A process ``client`` started or touched has ended; its ``events``
        entry comes with the answer that reports it (digest listener)."""
        self.messages.on_exit(record, client)
        if not record.notify_on_exit:
            return
        facts = record.exit_facts()
        # The seed's process/exit names the end time "timestamp".
        params = {**facts, "timestamp": facts.pop("endedAt")}
        self._background.spawn(self.sessions.send_process_exit(params))
