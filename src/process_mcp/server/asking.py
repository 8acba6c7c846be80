"""Asking the person before a command the policy marks ``ask`` runs.

Where the client declared elicitation, the person is asked in the client; accepted, the
request is approved in the supervisor (``approve {via: "elicitation"}``) and the same call
runs once more with it; declined, the call is refused. Elsewhere (or when the client cannot
answer) the agent gets the supervisor's text: a request id and the line for the person to
type in a terminal, ``process-mcp approve REQ``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from process_mcp.core import ApprovalRequired
from process_mcp.server import sdk
from process_mcp.supervisor.protocol import ops as op
from process_mcp.supervisor.remote import RemoteManager, current_approval

logger = logging.getLogger(__name__)
ASK_TIMEOUT = 300.0  # seconds the client may take to answer (the request lasts 10 minutes)


async def ask_then_run(
    ctx: Any,
    manager: RemoteManager,
    refusal: ApprovalRequired,
    run: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any] | str:
    """The call's answer after the person accepted, or the error text to return."""
    request_id = refusal.request_id
    if not request_id or not can_elicit(getattr(ctx, "session", None)):
        return str(refusal)
    question = str(refusal).split(". Ask the person", 1)[0]
    accepted = await ask_person(
        ctx, f"An agent wants to run a command that {question}.", ASK_TIMEOUT
    )
    if accepted is None:
        return str(refusal)
    if not accepted:
        await manager.call(op.Approve(request_id, via="elicitation", decline=True))
        return f"refused: the person declined in the client ({question})."
    await manager.call(op.Approve(request_id, via="elicitation"))
    token = current_approval.set(request_id)
    try:
        return await run()
    finally:
        current_approval.reset(token)


# ----------------------------------------------------------------- the person's say
def client_identity(ctx: Any) -> tuple[str, str, str | None]:
    """``(name, version, session)`` for the audit: the client's ``clientInfo`` (empty when
    it gave none) and its session: ``CLAUDE_CODE_SESSION_ID`` from this front-end's
    environment where set (Claude Code passes it to stdio servers), else the MCP session
    id (HTTP), else None (the supervisor's session id stands in)."""
    session = getattr(ctx, "session", None)
    params = getattr(session, "client_params", None)
    info = getattr(params, "client_info", None)
    name = str(getattr(info, "name", "") or "")
    version = str(getattr(info, "version", "") or "")
    mcp_session = sdk.client_key(ctx)
    agent = os.environ.get("CLAUDE_CODE_SESSION_ID") or (
        None if mcp_session == "default" else mcp_session
    )
    return name, version, agent


def can_elicit(session: Any) -> bool:
    """Whether ``elicitation/create`` may be sent: the client declared elicitation, in
    the handshake era (at 2026-07-28 a server sends no requests of its own)."""
    capabilities = getattr(session, "client_capabilities", None)
    return (
        capabilities is not None
        and getattr(capabilities, "elicitation", None) is not None
        and sdk.is_handshake_era(session)
    )


async def ask_person(ctx: Any, message: str, timeout: float) -> bool | None:
    """Ask the person in the client (a form with one "run it" box); True accepted,
    False declined or cancelled, None when the client could not be asked (error, time)."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"run": {"type": "boolean", "title": "Run it", "default": True}},
        "required": ["run"],
    }
    try:
        with anyio.fail_after(timeout):
            result = await ctx.session.elicit_form(
                message, schema, related_request_id=getattr(ctx, "request_id", None)
            )
    except Exception as exc:  # timeout, a client that refused the request, a gone client
        logger.info("could not ask the person in the client: %r", exc)
        return None
    if result.action != "accept":
        return False
    return bool((result.content or {}).get("run", True))
