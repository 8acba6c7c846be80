"""The supervisor's ops about itself: ``info`` (what ``process-mcp doctor`` shows) and
``retire`` (``process-mcp supervisor restart``: hand over to a fresh supervisor)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from process_mcp import __version__
from process_mcp.core.settings import Settings, SupervisorSettings
from process_mcp.supervisor import drift
from process_mcp.supervisor.protocol import ops as op

if TYPE_CHECKING:
    from process_mcp.core import ProcessManager
    from process_mcp.supervisor.transport import Session


class ProcessService(Protocol):
    """What these ops read of the service (``service.py``'s ``ProcessService``), named
    here so that the service imports this module and not the other way round."""

    manager: ProcessManager
    born: float
    sessions: Mapping[str, Any]
    server: Any

    def busy(self) -> bool: ...

    def wide_settings(self) -> dict[str, str]: ...


async def info(service: ProcessService, session: Session) -> op.InfoReply:
    """What ``process-mcp doctor`` shows of this supervisor."""
    manager = service.manager
    history = manager.recorder.history
    return op.InfoReply(
        version=__version__,
        pid=os.getpid(),
        uptime=round(time.monotonic() - service.born, 3),
        containment=manager.containment,
        settings=service.wide_settings(),
        run_settings=dataclasses.asdict(manager.settings.run),
        running=sum(1 for record in manager.records() if record.running),
        held=len(manager.records()),
        sessions=len(service.sessions),
        history={
            "enabled": manager.recorder.enabled,
            "path": str(getattr(history, "path", "") or ""),
            "problem": getattr(history, "problem", None),
            "bytes": await asyncio.to_thread(history_bytes, manager.settings.state_dir),
        },
    )


async def retire(service: ProcessService, session: Session, now: bool) -> op.RetireReply:
    """Hand over: once no process runs (``now``: after stopping every running one as
    ``stop`` does), the supervisor stops serving and exits, so the next caller starts a
    fresh one with its own settings. Answers ``{stopped: [ids]}`` just before."""
    stopped: list[str] = []
    if now:
        running = [record.id for record in service.manager.records() if record.running]
        await asyncio.gather(
            *(service.manager.stop(process_id) for process_id in running),
            return_exceptions=True,
        )
        stopped = running
    while service.busy():
        await asyncio.sleep(0.1)
    if service.server is not None:  # once this answer is on its way
        reason = f"handed over at the request of {session}"
        asyncio.get_running_loop().call_later(0.2, service.server.request_stop, reason)
    return op.RetireReply(stopped, os.getpid())


def supervisor_view(settings: Settings, server: Any) -> dict[str, str]:
    """The supervisor-wide settings in force: the manager's state dir and disk cap, the
    transport's idle timeout, the rest from the environment the supervisor was started in."""
    found = SupervisorSettings.from_env()
    found = dataclasses.replace(
        found,
        state_dir=settings.state_dir,
        disk_cap=settings.disk_cap,
        supervisor_idle=getattr(server, "idle_timeout", found.supervisor_idle),
    )
    return drift.wide_settings(found)


def history_bytes(state_dir: Any) -> int:
    """Bytes the history holds on disk: its database (and journal) and the runs' logs."""
    total = 0
    root = os.fspath(state_dir)
    for name in os.listdir(root) if os.path.isdir(root) else []:
        if name.startswith("history.sqlite3"):
            total += os.path.getsize(os.path.join(root, name))
    for folder, _, files in os.walk(os.path.join(root, "runs")):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                continue
    return total
