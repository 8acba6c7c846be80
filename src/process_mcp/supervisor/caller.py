"""A front-end's side of each call to the supervisor: what it carries (the front-end's
environment without private variables, its per-run settings, the tool call's
``approval``) and what a failure becomes (the core's own exceptions, with the
supervisor's text), for :class:`~process_mcp.supervisor.remote.RemoteManager`."""

from __future__ import annotations

import os
from contextvars import ContextVar

from process_mcp.core import errors
from process_mcp.core.settings import RunSettings, SettingsError

PRIVATE_VARIABLES = ("PROCESS_MCP_TOKEN",)  # never passed on to a child


def captured_environment() -> dict[str, str]:
    """This front-end's environment as its children should see it."""
    return {k: v for k, v in os.environ.items() if k not in PRIVATE_VARIABLES}


def caller_run_settings(env: dict[str, str]) -> RunSettings | None:
    """The per-run settings of ``env``, as each ``start`` carries them (None when a value
    is bad: the front-end refused it at start-up already, so this is a test's own env)."""
    try:
        return RunSettings.from_env(env)
    except SettingsError:
        return None


class SupervisorLost(errors.ProcessError):
    """The supervisor connection ended, or the supervisor failed a request unexpectedly."""


class RemoteUnknownProcess(errors.UnknownProcess):
    """``UnknownProcess`` with the supervisor's text (it knows the ids)."""

    def __init__(self, message: str, process_id: str) -> None:
        errors.ProcessError.__init__(self, message)
        self.process_id = process_id


current_approval: ContextVar[str | None] = ContextVar("current_approval", default=None)
"""The ``approval`` of the tool call being handled: sent with its start, restart or input."""

FAILURES: dict[str, type[errors.ProcessError]] = {  # a supervisor error code -> the core's
    "InvalidRequest": errors.InvalidRequest,
    "PolicyRefused": errors.PolicyRefused,
    "ApprovalRequired": errors.ApprovalRequired,
    "ProcessRunning": errors.ProcessRunning,
    "StartFailed": errors.StartFailed,
}
