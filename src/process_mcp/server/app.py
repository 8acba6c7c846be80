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

from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)
from pydantic import BaseModel, ValidationError

from process_mcp import __version__
from process_mcp.core import ProcessError, ProcessRecord
from process_mcp.core.tasks import BackgroundTasks
from process_mcp.server import sdk
from process_mcp.server.backend import Backend
from process_mcp.server.events import ExitEvents, declare_events
from process_mcp.server.messages import ExitMessages, announce_in_answer
from process_mcp.server.progress import current_progress
from process_mcp.server.resources import ProcessResources
from process_mcp.server.tools import tool_specs
from process_mcp.supervisor.client import SupervisorError

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Runs long-lived commands (dev servers, builds, watchers) in the background. "
    "'start' returns an id at once; read output with 'get-log', check with 'get-status', "
    "end with 'stop' (kills the whole process tree). 'wait' blocks until a process is ready "
    "(log pattern, port or URL) or has ended. Every answer's 'events' lists processes that "
    "ended since your previous call. Processes end when this session ends, unless started "
    "with keep: true. 'list' also shows other sessions' processes in this folder."
)


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def success_result(data: dict[str, Any]) -> CallToolResult:
    """``structuredContent`` plus the same data as compact JSON text (fewer tokens)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


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


class ProcessMcpServer:
    """Binds the supervisor (through a :class:`Backend`: one supervisor session per MCP
    session) to one low-level MCP server."""

    def __init__(self, manager: Backend) -> None:
        self.manager = manager
        self.tools = tool_specs(manager.stop_grace)
        self.sessions = sdk.SessionHolder()
        self._background = BackgroundTasks()
        self.events = ExitEvents()
        self.messages = ExitMessages()
        self.bus = sdk.ListenBus()
        self.resources = ProcessResources(manager, self.bus)
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
        sdk.enable_subscriptions(self.server, self.bus)
        sdk.enable_logging(self.server, self.messages.set_level)
        manager.add_exit_listener(self._on_exit)
        manager.add_digest_listener(self.events.record)
        manager.add_ended_listener(self.resources.on_exit)

    async def run_stdio(self) -> None:
        await sdk.run_stdio(self.server)

    def http_app(self, host: str) -> Any:
        app = sdk.http_app(self.server, host)
        sdk.on_http_session_end(self.server, self._http_session_ended)
        return app

    def _http_session_ended(self, client: str) -> None:
        """An MCP session over HTTP ended: so does its supervisor session."""
        self._background.spawn(self.manager.end_client(client))

    def _meet(self, ctx: Any) -> None:
        """Every request: remember who is asking, for notifications and ``events``."""
        self.sessions.capture(ctx)
        self.events.meet(sdk.client_key(ctx))
        self.messages.meet(ctx)
        self.resources.meet(ctx)

    async def _list_tools(self, ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
        self._meet(ctx)
        return ListToolsResult(
            tools=[declare_events(spec.as_tool()) for spec in self.tools.values()]
        )

    async def _call_tool(self, ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        self._meet(ctx)
        outcome = await self._dispatch(ctx, params)
        if isinstance(outcome, CallToolResult):
            return outcome  # an error: exits stay queued for the next successful answer
        events = self.events.take(sdk.client_key(ctx))
        ended = [r for e in events if (r := self.manager.find(e["id"])) is not None]
        await announce_in_answer(ctx, ended)
        data = outcome.model_dump(mode="json", by_alias=True)
        data["events"] = events
        return success_result(data)

    async def _dispatch(
        self, ctx: Any, params: CallToolRequestParams
    ) -> BaseModel | CallToolResult:
        """The handler's answer, or an error result."""
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
        token = current_progress.set(sdk.progress_reporter(ctx))
        try:
            manager = await self.manager.session_for(sdk.client_key(ctx))
            return await spec.handler(manager, arguments)
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

    def _on_exit(self, record: ProcessRecord, client: str) -> None:
        """A process ``client`` started or touched has ended (SPEC §10); its ``events``
        entry comes with the answer that reports it (digest listener)."""
        self.messages.on_exit(record, client)
        if not record.notify_on_exit:
            return
        facts = record.exit_facts()
        params = {**facts, "timestamp": facts.pop("endedAt")}  # SPEC §4 names it timestamp
        self._background.spawn(self.sessions.send_process_exit(params))
