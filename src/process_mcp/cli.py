"""``process-mcp``: serve MCP over stdio (or streamable HTTP) until told to stop.

The server is a front-end of the per-user supervisor (SPEC §10), started on demand; with
``--standalone`` (or ``PROCESS_MCP_STANDALONE=1``) the supervisor runs inside this process
instead, over the same interface. Whatever ends the serving (stdin EOF, SIGTERM, SIGINT,
SIGHUP) the processes this server's sessions own are stopped, in parallel under one
deadline, before the server exits with status 0; kept ones (``keep: true``) run on. Even a
SIGKILL of this server stops them: the supervisor sees the connection close.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import sys
from typing import TYPE_CHECKING

import anyio

from process_mcp import __version__

if TYPE_CHECKING:
    from process_mcp.server.app import ProcessMcpServer
    from process_mcp.server.backend import Backend

EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
logger = logging.getLogger("process_mcp")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="process-mcp",
        description="MCP server that runs and supervises background processes.",
    )
    parser.add_argument("--version", action="version", version=f"process-mcp {__version__}")
    parser.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (default: one client, the one that started us) or streamable http",
    )
    parser.add_argument("--host", default="127.0.0.1", help="http: address to bind (loopback)")
    parser.add_argument("--port", type=int, default=8765, help="http: port (0 picks a free one)")
    parser.add_argument(
        "--token",
        default=os.environ.get("PROCESS_MCP_TOKEN"),
        help="http: bearer token clients must send (default: $PROCESS_MCP_TOKEN, else random)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="run the process supervisor inside this server (no shared supervisor; for "
        "sandboxes). Also PROCESS_MCP_STANDALONE=1",
    )
    parser.add_argument("--log-level", default=os.environ.get("PROCESS_MCP_LOG_LEVEL", "WARNING"))
    return parser.parse_args(argv)


class StartupError(Exception):
    """The server cannot start (no supervisor, another version's busy one); one line."""


async def _open_backend(options: argparse.Namespace) -> Backend:
    from process_mcp.server.backend import Backend, standalone_requested
    from process_mcp.supervisor.client import SupervisorError

    http = options.transport == "http"
    try:
        return await Backend.open(
            "mcp-http" if http else "mcp-stdio",
            standalone=standalone_requested(options.standalone),
            per_client=http,
        )
    except SupervisorError as exc:
        raise StartupError(f"process-mcp: {exc}") from None


async def _serve(options: argparse.Namespace) -> None:
    from process_mcp.server.app import ProcessMcpServer

    backend = await _open_backend(options)
    try:
        app = ProcessMcpServer(backend)
        if options.transport == "http":
            await _serve_http(app, options)
        else:
            await _serve_stdio(app, backend)
    finally:
        with anyio.CancelScope(shield=True):
            await backend.close()


async def _serve_stdio(app: ProcessMcpServer, backend: Backend) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(_exit_on_signal, backend)
        await app.run_stdio()  # returns when stdin closes: the client went away
        group.cancel_scope.cancel()


async def _exit_on_signal(backend: Backend) -> None:
    """On SIGTERM/SIGINT/SIGHUP stop everything and exit.

    Cancelling the serving task is not enough: the SDK reads stdin in a worker thread
    that cannot be interrupted, so cancellation would wait for the next input line.
    """
    with anyio.open_signal_receiver(*EXIT_SIGNALS) as signals:
        async for signum in signals:
            logger.info("received %s", signal.Signals(signum).name)
            with anyio.CancelScope(shield=True):
                await backend.close()
            sys.stderr.flush()
            os._exit(0)


async def _serve_http(app: ProcessMcpServer, options: argparse.Namespace) -> None:
    from process_mcp.server.http import make_http_server

    token = options.token or secrets.token_urlsafe(24)
    server = make_http_server(app.http_app(options.host), options.host, options.port, token)

    async def announce() -> None:
        while not server.started:
            await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        shown = "from --token/PROCESS_MCP_TOKEN" if options.token else token
        print(
            f"process-mcp: serving MCP at http://{options.host}:{port}/mcp (bearer token: {shown})",
            file=sys.stderr,
            flush=True,
        )

    async def stop_on_signal() -> None:
        with anyio.open_signal_receiver(*EXIT_SIGNALS) as signals:
            async for signum in signals:
                logger.info("received %s", signal.Signals(signum).name)
                server.should_exit = True
                return

    async with anyio.create_task_group() as group:
        group.start_soon(announce)
        group.start_soon(stop_on_signal)
        await server.serve()
        group.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["supervisor"]:
        from process_mcp.supervisor.__main__ import main as supervisor_main

        sys.exit(supervisor_main(args[1:]))
    options = _parse(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=options.log_level.upper(),
        format="process-mcp %(levelname)s %(name)s: %(message)s",
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(_serve, options)
    except StartupError as exc:
        print(exc, file=sys.stderr, flush=True)
        os._exit(1)
    sys.stderr.flush()
    # The SDK reads stdin in a worker thread that may still be blocked in read(); every
    # managed process is already gone, so do not wait for that thread.
    os._exit(0)
