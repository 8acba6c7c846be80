"""``process-mcp supervisor``: run the per-user supervisor (normally started on demand).

With ``--detach`` (what front-ends use) this process is only a launcher: it forks the
supervisor, waits until it listens (or lost the lock race, or died) and exits with 0,
3 (another supervisor holds the lock) or 1. The supervisor itself writes to the inherited
stdout/stderr — the log file the front-end opened — and rotates that file (one ``.1``
generation) when it grew past 1 MiB.

It serves :mod:`process_mcp.supervisor.service` (the process manager). Imports are kept
to the stdlib, this package and the core: start-up is paid by the first agent call of the
day, and no MCP code is needed here. The manager's settings (stop grace, log caps) come
from the environment of the front-end that started it; each child gets the environment
of the front-end that asked for it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_LOST_LOCK = 3
LOG_ROTATE_BYTES = 1024 * 1024
DEFAULT_HANDLER = "process_mcp.supervisor.service:make_service"


def _parse(argv: list[str]) -> argparse.Namespace:
    """The flags, over the defaults of the ``PROCESS_MCP_*`` variables (a bad one: one line
    and exit 2, before anything starts)."""
    from process_mcp.core import settings

    with settings.exit_on_error("process-mcp supervisor"):
        env, _ = settings.check_environment()
    parser = argparse.ArgumentParser(
        prog="process-mcp supervisor",
        description="The per-user process supervisor that every process-mcp front-end shares.",
    )
    parser.add_argument("--detach", action="store_true", help="fork, report readiness, exit")
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="holds supervisor.log (default as the server)"
    )
    parser.add_argument(
        "--runtime-dir",
        type=Path,
        default=None,
        help="0700 folder for the socket and lock (default $PROCESS_MCP_RUNTIME_DIR, else "
        "$XDG_RUNTIME_DIR/process-mcp, else <state dir>/run on linux and "
        "$TMPDIR/process-mcp-<uid> on posix)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=env.supervisor_idle,
        help="exit after this many seconds without clients or work (default 600)",
    )
    # Tests of the transport alone run the echo handler (PROCESS_MCP_SUPERVISOR_HANDLER).
    parser.add_argument("--handler", default=env.handler or DEFAULT_HANDLER, help=argparse.SUPPRESS)
    parser.add_argument("--max-message-bytes", type=int, default=None, help=argparse.SUPPRESS)
    # Tests of upgrades: pretend to be another version.
    parser.add_argument("--report-version", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default=env.log_level or "INFO")
    options = parser.parse_args(argv)
    options.state_dir = (options.state_dir or env.state_dir).absolute()
    runtime = options.runtime_dir or settings.runtime_dir(options.state_dir)
    options.runtime_dir = runtime.absolute()
    return options


def _launcher(notify_read: int, child: int) -> int:
    """Wait for the forked supervisor's one-byte report: R(eady), L(ost the lock)."""
    report = b""
    while True:
        try:
            report = os.read(notify_read, 1)
            break
        except InterruptedError:
            continue
    if report == b"R":
        return 0
    os.waitpid(child, 0)  # it exits right after a non-ready report; reap it
    return EXIT_LOST_LOCK if report == b"L" else 1


def _rotate_log(log: Path) -> None:
    """Start a fresh log when the inherited one is large, keeping one old generation."""
    try:
        if os.fstat(2).st_size <= LOG_ROTATE_BYTES or os.stat(log).st_ino != os.fstat(2).st_ino:
            return
        os.replace(log, log.with_name(log.name + ".1"))
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _serve(options: argparse.Namespace, notify: int | None) -> int:
    import asyncio
    import logging
    import signal

    from process_mcp import __version__
    from process_mcp.core import settings, signals
    from process_mcp.supervisor.paths import SupervisorPaths
    from process_mcp.supervisor.protocol import MAX_MESSAGE_BYTES
    from process_mcp.supervisor.transport import (
        AlreadyRunning,
        SupervisorServer,
        load_handler_factory,
    )

    logging.basicConfig(
        stream=sys.stderr,
        level=options.log_level.upper(),
        format="%(asctime)s supervisor[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    logger = logging.getLogger("process_mcp.supervisor")
    paths = SupervisorPaths(runtime_dir=options.runtime_dir, state_dir=options.state_dir)
    # The handler's settings read the state dir from the environment; no child sees ours
    # (each start brings its front-end's environment).
    os.environ[settings.STATE_DIR] = str(options.state_dir)

    def report(byte: bytes) -> None:
        nonlocal notify
        if notify is not None:
            os.write(notify, byte)
            os.close(notify)
            notify = None

    async def run() -> int:
        server = SupervisorServer(
            load_handler_factory(options.handler)(),
            paths,
            idle_timeout=options.idle_timeout,
            max_message_bytes=options.max_message_bytes or MAX_MESSAGE_BYTES,
            version=options.report_version or __version__,
        )
        try:
            await server.start()
        except AlreadyRunning as exc:
            logger.info("not starting: %s", exc)
            report(b"L")
            return EXIT_LOST_LOCK
        if options.detach:
            _rotate_log(paths.log)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.request_stop, signal.Signals(signum).name)
        report(b"R")
        try:
            await server.wait_stopped()
        finally:
            await server.close()
        logger.info("exited (%s)", server.stop_reason)
        return 0

    # The person's terminal closing must not end us; nor may children inherit an ignore.
    signals.pass_no_ignored_signal_on()
    signals.ignore_for_this_process_only(signal.SIGHUP)
    try:
        return asyncio.run(run())
    except Exception:
        logger.exception("supervisor failed")
        return 1


def main(argv: list[str] | None = None) -> int:
    options = _parse(sys.argv[1:] if argv is None else argv)
    if not options.detach:
        return _serve(options, None)
    notify_read, notify_write = os.pipe()
    child = os.fork()
    if child:
        os.close(notify_write)
        return _launcher(notify_read, child)
    os.close(notify_read)
    os.chdir("/")  # hold no front-end folder busy (e.g. an unmountable project)
    code = _serve(options, notify_write)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
