"""``process-mcp supervisor restart [--now]``: hand over to a fresh supervisor that has
this environment's settings.

Supervisor-wide settings (state dir, disk cap, cgroups, idle timeout) are read once, by
the supervisor, from the environment of whoever started it; a caller with other values is
warned, and this is the remedy. Without ``--now`` it waits until no process runs (their
owners stop them, or they end); with ``--now`` it first stops every running one as
``stop`` does (SIGTERM, the usual grace, SIGKILL). Then the old supervisor exits and a new
one is started from here. Exit status 0 when handed over, 3 when the supervisor could not
be reached, 1 when the old one did not exit in time.
"""

from __future__ import annotations

import argparse
import sys
import time

from process_mcp.cli.link import Link, LinkError
from process_mcp.core.settings import check_environment, exit_on_error
from process_mcp.supervisor.paths import SupervisorPaths
from process_mcp.supervisor.protocol import ops

EXIT_TIMEOUT = 30.0  # seconds the old supervisor has to exit once idle


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="process-mcp supervisor restart",
        description="Hand over to a fresh supervisor with this environment's settings.",
    )
    parser.add_argument(
        "--now", action="store_true", help="stop the running processes first (usual grace)"
    )
    options = parser.parse_args(argv)
    with exit_on_error("process-mcp supervisor restart"):
        check_environment()
    paths = SupervisorPaths.from_env()
    try:
        link = Link.open(paths, start=False)
    except LinkError:
        print("no supervisor is running: the next call starts one with your settings")
        return 0
    old = link.welcome.pid
    if not options.now:
        print(
            f"waiting until no process runs in supervisor pid {old} (--now stops them)...",
            file=sys.stderr,
            flush=True,
        )
    stopped: list[str] = []
    try:
        stopped = list(link.call(ops.Retire(options.now)).stopped)
    except LinkError:
        pass  # it exited before its answer reached us: the lock tells
    finally:
        link.close()
    deadline = time.monotonic() + EXIT_TIMEOUT
    while paths.lock_holder() == old:
        if time.monotonic() > deadline:
            print(f"process-mcp: supervisor pid {old} did not exit", file=sys.stderr)
            return 1
        time.sleep(0.05)
    try:
        with Link.open(paths) as fresh:
            new = fresh.welcome.pid
    except LinkError as exc:
        print(f"process-mcp: {exc}", file=sys.stderr)
        return 3
    said = f" after stopping {len(stopped)} process(es)" if stopped else ""
    print(f"supervisor pid {old} handed over to pid {new}{said}, with this environment's settings")
    return 0
