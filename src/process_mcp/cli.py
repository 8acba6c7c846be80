"""``process-mcp``: serve MCP over stdio until the client goes away or a signal arrives.

Whatever ends the serving (stdin EOF, SIGTERM, SIGINT, SIGHUP) the managed process trees
are stopped, in parallel under one deadline, before the server exits with status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

import anyio

from process_mcp import __version__

if TYPE_CHECKING:
    from process_mcp.core import ProcessManager


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="process-mcp",
        description="MCP server that runs and supervises background processes (stdio transport).",
    )
    parser.add_argument("--version", action="version", version=f"process-mcp {__version__}")
    parser.add_argument(
        "--transport", choices=["stdio"], default="stdio", help="only stdio is served for now"
    )
    parser.add_argument("--log-level", default=os.environ.get("PROCESS_MCP_LOG_LEVEL", "WARNING"))
    return parser.parse_args(argv)


async def _serve() -> None:
    from process_mcp.core import ProcessManager, Settings
    from process_mcp.server.app import ProcessMcpServer

    manager = ProcessManager(Settings.from_env())
    app = ProcessMcpServer(manager)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_exit_on_signal, manager)
            await app.run_stdio()  # returns when stdin closes
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await manager.shutdown()


async def _exit_on_signal(manager: ProcessManager) -> None:
    """On SIGTERM/SIGINT/SIGHUP stop everything and exit.

    Cancelling the serving task is not enough: the SDK reads stdin in a worker thread
    that cannot be interrupted, so cancellation would wait for the next input line.
    """
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            logging.getLogger(__name__).info("received %s", signal.Signals(signum).name)
            with anyio.CancelScope(shield=True):
                await manager.shutdown()
            sys.stderr.flush()
            os._exit(0)


def main(argv: list[str] | None = None) -> None:
    options = _parse(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=options.log_level.upper(),
        format="process-mcp %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_serve)
    sys.stderr.flush()
    # The SDK reads stdin in a worker thread that may still be blocked in read(); every
    # managed process is already gone, so do not wait for that thread.
    os._exit(0)
