"""The process-management core. It knows nothing of MCP: a CLI or another protocol could use it.

Public surface: :class:`ProcessManager` and the types it hands out. They are loaded on
first use (PEP 562), so that importing a light module of the core — the settings, read by
the person's CLI on every command — does not load the manager and its event loop.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from process_mcp.core.errors import (
        ApprovalRequired,
        InvalidRequest,
        PolicyRefused,
        ProcessError,
        ProcessRunning,
        StartFailed,
        UnknownProcess,
    )
    from process_mcp.core.manager import ProcessManager
    from process_mcp.core.records import ProcessRecord, Status, StopResult
    from process_mcp.core.settings import RunSettings, Settings, SupervisorSettings

_HOMES = {
    "ApprovalRequired": "errors",
    "PolicyRefused": "errors",
    "InvalidRequest": "errors",
    "ProcessError": "errors",
    "ProcessRunning": "errors",
    "StartFailed": "errors",
    "UnknownProcess": "errors",
    "ProcessManager": "manager",
    "ProcessRecord": "records",
    "Status": "records",
    "StopResult": "records",
    "RunSettings": "settings",
    "Settings": "settings",
    "SupervisorSettings": "settings",
}

__all__ = [
    "ApprovalRequired",
    "InvalidRequest",
    "PolicyRefused",
    "ProcessError",
    "ProcessManager",
    "ProcessRecord",
    "ProcessRunning",
    "RunSettings",
    "Settings",
    "StartFailed",
    "Status",
    "StopResult",
    "SupervisorSettings",
    "UnknownProcess",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
