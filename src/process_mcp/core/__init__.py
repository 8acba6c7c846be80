"""The process-management core. It knows nothing of MCP: a CLI or another protocol could use it.

Public surface: :class:`ProcessManager` and the types it hands out.
"""

from process_mcp.core.errors import (
    InvalidRequest,
    ProcessError,
    ProcessRunning,
    StartFailed,
    UnknownProcess,
)
from process_mcp.core.manager import ProcessManager
from process_mcp.core.records import ProcessRecord, Status, StopResult
from process_mcp.core.settings import Settings

__all__ = [
    "InvalidRequest",
    "ProcessError",
    "ProcessManager",
    "ProcessRecord",
    "ProcessRunning",
    "Settings",
    "StartFailed",
    "Status",
    "StopResult",
    "UnknownProcess",
]
