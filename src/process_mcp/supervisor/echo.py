"""A trivial handler that exercises the transport alone: what the transport's tests and
benchmark talk to (``PROCESS_MCP_SUPERVISOR_HANDLER=process_mcp.supervisor.echo:EchoHandler``).

Ops: ``ping``; ``echo`` (returns its args); ``sleep {seconds}``; ``emit {event, count}``
(pushes ``count`` events, then answers); ``fail {code, message}``; ``crash``;
``set_busy {busy}``; ``state`` (open and closed session ids, cancelled requests, whether
any ``mcp`` module is imported). When a session closes, every other session gets a
``session_closed`` event naming it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from process_mcp.supervisor.protocol import RequestError
from process_mcp.supervisor.transport import Session


class EchoHandler:
    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.closed: list[str] = []
        self.cancelled = 0
        self._busy = False

    async def open_session(self, session: Session) -> None:
        self.sessions[session.id] = session

    async def close_session(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        self.closed.append(session.id)
        for other in self.sessions.values():
            other.emit("session_closed", {"session": session.id, "kind": session.client.kind})

    def busy(self) -> bool:
        return self._busy

    async def shutdown(self) -> None:
        self.sessions.clear()

    async def handle(self, session: Session, op: str, args: dict[str, Any]) -> Any:
        match op:
            case "ping":
                return {"pong": True, "pid": os.getpid()}
            case "echo":
                return args
            case "sleep":
                try:
                    await asyncio.sleep(float(args.get("seconds", 1)))
                except asyncio.CancelledError:
                    self.cancelled += 1
                    raise
                return {"slept": args.get("seconds", 1)}
            case "emit":
                for number in range(int(args.get("count", 1))):
                    session.emit(str(args.get("event", "tick")), {"n": number})
                return {"emitted": int(args.get("count", 1))}
            case "fail":
                raise RequestError(str(args.get("code", "failed")), str(args.get("message", "")))
            case "crash":
                raise RuntimeError("crash requested")
            case "set_busy":
                self._busy = bool(args.get("busy"))
                return {"busy": self._busy}
            case "state":
                return {
                    "session": session.id,
                    "open": sorted(self.sessions),
                    "closed": self.closed,
                    "cancelled": self.cancelled,
                    "mcp_imported": any(m == "mcp" or m.startswith("mcp.") for m in sys.modules),
                }
        raise RequestError("unknown_op", f"unknown op {op!r}; this handler knows ping, echo, ...")
