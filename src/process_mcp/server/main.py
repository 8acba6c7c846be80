"""``process-mcp``: serve MCP over stdio (or streamable HTTP) until told to stop.

The server is a front-end of the per-user supervisor, started on demand; with
``--standalone`` (or ``PROCESS_MCP_STANDALONE=1``) the supervisor runs inside this process
instead, over the same interface. Whatever ends the serving (stdin EOF, SIGTERM, SIGINT,
SIGHUP) the processes this server's sessions own are stopped, in parallel under one
deadline, before the server exits with status 0; kept ones (``keep: true``) run on. Even a
SIGKILL of this server stops them: the supervisor sees the connection close.

A fault found before serving (a bad flag or ``PROCESS_MCP_*`` variable, an unusable state
directory, an address in use, no supervisor) is one line on stderr and a non-zero exit
status, never a traceback: everything is checked and the socket bound before the first
byte is served.

The HTTP bearer token never sits on a command line, which every local user can read
(``/proc/PID/cmdline``): it comes from ``--token-file`` or ``PROCESS_MCP_TOKEN``, the
variable is removed from this process's environment as soon as it is read (so no child,
supervisor or sentinel inherits it), and only a generated token is printed, once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import anyio

from process_mcp import __version__
from process_mcp.core import signals
from process_mcp.core.settings import (
    LOG_LEVELS,
    TOKEN,
    Settings,
    SettingsError,
    check_environment,
    take_token,
)

if TYPE_CHECKING:
    from process_mcp.server.app import ProcessMcpServer
    from process_mcp.server.backend import Backend

EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
logger = logging.getLogger("process_mcp")


class StartupError(Exception):
    """A fault that stops the server before it serves; ``status`` is the exit status
    (2: a bad flag or variable, 1: the environment refused: state dir, address)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (no usage block) and a pointer to --help."""

    def error(self, message: str) -> NoReturn:
        raise StartupError(f"{message} (see process-mcp --help)")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range: use 0-65535")
    return value


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog="process-mcp",
        description="MCP server that runs and supervises background processes.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"process-mcp {__version__}")
    parser.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (default: one client, the one that started us) or streamable http",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="http: address to bind (default 127.0.0.1; beyond loopback needs --allow-remote)",
    )
    parser.add_argument("--port", type=_port, default=8765, help="http: port (0 picks a free one)")
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"http: file holding the bearer token clients must send, readable by you only "
        f"(default: ${TOKEN}, else a random token printed once)",
    )
    parser.add_argument("--token", help=argparse.SUPPRESS)  # refused: see _token
    parser.add_argument(
        "--allow-remote",
        metavar="NAME[,NAME...]",
        help="http: allow binding --host beyond loopback; the host names or addresses "
        "clients use to reach this server (Host/Origin headers are checked against them)",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help=f"diagnostics on stderr: {', '.join(LOG_LEVELS)} "
        "(default: $PROCESS_MCP_LOG_LEVEL, else WARNING)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="run the process supervisor inside this server (no shared supervisor; for "
        "sandboxes). Also PROCESS_MCP_STANDALONE=1",
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Config:
    """Everything serving needs, checked."""

    transport: str
    host: str
    port: int
    token: str | None  # http only
    token_source: str | None  # where it came from; None when generated
    remote_names: list[str]
    session_idle: float
    log_level: str
    settings: Settings
    standalone: bool


def _configure(options: argparse.Namespace, env_token: str | None) -> Config:
    """Check every flag and variable; raises StartupError naming the one at fault."""
    try:
        wide, run = check_environment()
    except SettingsError as exc:
        raise StartupError(str(exc)) from None
    level = str(options.log_level or wide.log_level or "WARNING").upper()
    if level not in LOG_LEVELS:
        raise StartupError(
            f"--log-level {options.log_level!r} is not a level: use one of {', '.join(LOG_LEVELS)}"
        )
    token, source = _token(options, env_token)
    remote = [name.strip() for name in (options.allow_remote or "").split(",") if name.strip()]
    if options.transport == "http":
        from process_mcp.server.http import is_loopback

        if not is_loopback(options.host) and options.allow_remote is None:
            raise StartupError(
                f"--host {options.host} is reachable from other machines: anyone who gets the "
                "token can run commands as you. Add --allow-remote NAME[,NAME...] (the names "
                "clients use to reach this server) to confirm, or bind 127.0.0.1"
            )
        if options.allow_remote is not None and not remote:
            raise StartupError(
                "--allow-remote needs the host names or addresses clients use, e.g. "
                "--allow-remote myhost.lan,192.168.1.5"
            )
    return Config(
        transport=options.transport,
        host=options.host,
        port=options.port,
        token=token,
        token_source=source,
        remote_names=remote,
        session_idle=wide.http_session_idle,
        log_level=level,
        settings=Settings.of(wide, run),
        standalone=options.standalone or wide.standalone,
    )


def _token(options: argparse.Namespace, env_token: str | None) -> tuple[str | None, str | None]:
    """The bearer token and where it came from (None, None: generate one)."""
    if options.token is not None:
        raise StartupError(
            "--token is refused: every local user can read a command line "
            "(/proc/PID/cmdline). Put the token in a file only you can read and pass "
            f"--token-file PATH, or set {TOKEN}"
        )
    if options.token_file is not None:
        return _read_token_file(Path(options.token_file)), "--token-file"
    if env_token:
        return env_token, TOKEN
    return None, None


def _read_token_file(path: Path) -> str:
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise StartupError(f"--token-file {path}: cannot read it: {reason}") from None
    if stat.S_IMODE(info.st_mode) & 0o077 or info.st_uid != os.getuid():
        raise StartupError(
            f"--token-file {path} can be read or changed by other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid}): run chmod 600 {path} "
            "as its owner"
        )
    token = text.strip()
    if not token or any(c.isspace() for c in token):
        raise StartupError(
            f"--token-file {path} must hold one token: non-empty, no spaces or line breaks"
        )
    return token


def _die(message: str, status: int) -> NoReturn:
    print(f"process-mcp: {message}", file=sys.stderr, flush=True)
    os._exit(status)


def _state_dir_error(settings: Settings, exc: BaseException) -> StartupError:
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if Path(settings.state_dir).exists() and not Path(settings.state_dir).is_dir():
        detail = "Not a directory"  # mkdir's own word would be "File exists"
    where = getattr(exc, "filename", None) or settings.state_dir
    return StartupError(
        f"cannot use the state directory {settings.state_dir} ({where}: {detail}); set "
        "PROCESS_MCP_STATE_DIR to a writable directory of yours",
        status=1,
    )


async def _open_backend(config: Config) -> Backend:
    """The link to the supervisor (started if none answers), or the in-process one.

    The state directory is checked here first, so an unusable one is this one line in
    both modes rather than a supervisor that fails to start."""
    from process_mcp.core import ProcessError
    from process_mcp.server.backend import Backend
    from process_mcp.supervisor.client import SupervisorError
    from process_mcp.supervisor.paths import ensure_private_dir

    settings = config.settings
    try:
        ensure_private_dir(Path(settings.state_dir))
    except OSError as exc:
        raise _state_dir_error(settings, exc) from None
    try:
        return await Backend.open(
            "mcp-http" if config.transport == "http" else "mcp-stdio",
            standalone=config.standalone,
            per_client=config.transport == "http",
            settings=settings,
        )
    except (OSError, ProcessError) as exc:  # standalone: the manager refused the state dir
        raise _state_dir_error(settings, exc) from None
    except SupervisorError as exc:
        raise StartupError(str(exc), status=1) from None


async def _serve(config: Config) -> None:
    from process_mcp.server.app import ProcessMcpServer

    sock = None
    if config.transport == "http":
        from process_mcp.server.http import bind

        try:
            sock = bind(config.host, config.port)
        except OSError as exc:
            raise StartupError(str(exc), status=1) from None
    try:
        backend = await _open_backend(config)
    except StartupError:
        if sock is not None:
            sock.close()
        raise
    try:
        app = ProcessMcpServer(backend)
        if sock is not None:
            await _serve_http(app, config, sock)
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


async def _serve_http(app: ProcessMcpServer, config: Config, sock: socket.socket) -> None:
    from process_mcp.server.http import make_http_server, security_settings

    token = config.token or secrets.token_urlsafe(24)
    security = security_settings(config.host, config.remote_names)
    server = make_http_server(app.http_app(security, config.session_idle), token)
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    shown = f"from {config.token_source}" if config.token_source else token
    print(
        f"process-mcp: serving MCP at http://{shown_host}:{port}/mcp (bearer token: {shown})",
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
        group.start_soon(stop_on_signal)
        await server.serve(sockets=[sock])
        group.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args and sys.stdin.isatty():  # run by hand instead of by an MCP client
        print(
            "process-mcp: serving MCP on stdin/stdout for an MCP client (Ctrl-C to quit); "
            "for your processes try `process-mcp ps`, or `process-mcp --help`",
            file=sys.stderr,
        )
    env_token = take_token()  # read once; no child may inherit it
    signals.pass_no_ignored_signal_on()  # nor an ignored signal (a launch in the background)
    try:
        config = _configure(_parse(argv), env_token)
    except StartupError as exc:
        _die(str(exc), exc.status)
    logging.basicConfig(
        stream=sys.stderr,
        level=config.log_level,
        format="process-mcp %(levelname)s %(name)s: %(message)s",
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(_serve, config)
    except StartupError as exc:
        _die(str(exc), exc.status)
    sys.stderr.flush()
    # The SDK reads stdin in a worker thread that may still be blocked in read(); every
    # managed process is already gone, so do not wait for that thread.
    os._exit(0)
