"""Settings that travel, and settings that can only be told: a caller against the running
supervisor.

Per-run settings (``PROCESS_MCP_STOP_GRACE``, ``_LOG_MAX_BYTES``, ``_MAX_LINE_BYTES``)
travel with each ``start`` (``StartRequest.run_settings``, checked by
:func:`check_run_settings`) and apply to that run, whichever front-end started the
supervisor. Supervisor-wide ones (state dir, disk cap, cgroups, idle timeout, platform)
are the supervisor's for as long as it lives: a caller whose value differs is told, once,
by :func:`differences` and :func:`warning` (the variable, both values and the remedy:
``process-mcp supervisor restart``, which hands over to a fresh supervisor with the
caller's settings).

Stdlib only: the person's CLI imports it.
"""

from __future__ import annotations

import os
from typing import Any

from process_mcp.core import settings as names
from process_mcp.core.settings import RunSettings, SupervisorSettings
from process_mcp.supervisor.protocol.framing import RequestError

REMEDY = "process-mcp supervisor restart"


def wide_settings(found: SupervisorSettings) -> dict[str, str]:
    """The supervisor-wide settings a caller and a supervisor compare, by variable name,
    as text (paths resolved, numbers in their plain form)."""
    view = {
        names.STATE_DIR: os.path.realpath(found.state_dir),
        names.DISK_CAP: str(found.disk_cap),
        names.CGROUPS: "1" if found.cgroups else "0",
        names.SUPERVISOR_IDLE: f"{found.supervisor_idle:g}",
    }
    platform = getattr(found, "platform", None)  # PROCESS_MCP_PLATFORM, where known
    if platform is not None:
        view["PROCESS_MCP_PLATFORM"] = str(platform)
    return view


def differences(mine: dict[str, str], theirs: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(variable, caller's value, supervisor's value)`` for each setting both know that
    differs, in the caller's order."""
    return [
        (name, value, str(theirs[name]))
        for name, value in mine.items()
        if name in theirs and str(theirs[name]) != value
    ]


def warning(found: list[tuple[str, str, str]], pid: int | None = None) -> str:
    """One line naming each difference, both values and the remedy."""
    who = "the running supervisor" + (f" (pid {pid})" if pid else "")
    parts = [f"{name}={mine!r} here but {theirs!r} in {who}" for name, mine, theirs in found]
    return (
        f"process-mcp: {'; '.join(parts)}: supervisor-wide settings are the supervisor's "
        f"until it restarts, so yours are not in effect. Run `{REMEDY}` (waits until no "
        "process runs, then starts a fresh supervisor with your settings; --now stops them "
        "first)"
    )


def check_run_settings(run: RunSettings | None) -> None:
    """Refuse (``bad_request``, naming the field) per-run settings out of the range their
    variable accepts: the decoder checked their types only."""
    if run is None:
        return
    if not 0 <= run.stop_grace <= 24 * 3600:
        raise RequestError(
            "bad_request", f"run_settings.stop_grace {run.stop_grace!r} is not 0 to 86400 s"
        )
    if run.log_max_bytes < 4096 or run.max_line_bytes < 256:
        raise RequestError(
            "bad_request",
            f"run_settings: log_max_bytes {run.log_max_bytes} (at least 4096) or "
            f"max_line_bytes {run.max_line_bytes} (at least 256) is too small",
        )


def caller_view() -> dict[str, str]:
    """This process's supervisor-wide settings (from its environment), by variable."""
    return wide_settings(SupervisorSettings.from_env())


def drift_warning(theirs: dict[str, Any] | None, pid: int | None = None) -> str | None:
    """The warning for this process against a supervisor's ``settings`` (None: no
    difference, or a supervisor too old to say)."""
    if not theirs:
        return None
    found = differences(caller_view(), theirs)
    return warning(found, pid) if found else None
