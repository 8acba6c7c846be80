"""``process-mcp doctor [--json]``: is everything as it should be, and if not, what to do.

Shows the version, platform, containment, the supervisor (pid, uptime, version, socket),
the state dir, the history's size, the supervisor's settings and each difference from
this environment's; every check has a verdict (``ok``, ``note`` or ``problem``) and, when
not ok, the fix. Exit status 0 when no check is a problem, 1 otherwise. It never starts a
supervisor (none running is fine: the first call starts one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import stat
import sys
from dataclasses import asdict, dataclass
from typing import Any

from process_mcp import __version__
from process_mcp.cli.link import Link, LinkError, RequestFailed
from process_mcp.core.settings import SettingsError, check_environment, state_dir
from process_mcp.supervisor import drift
from process_mcp.supervisor.paths import SupervisorPaths
from process_mcp.supervisor.protocol import ops

OK, NOTE, PROBLEM = "ok", "note", "problem"


@dataclass
class Check:
    name: str
    verdict: str
    detail: str
    fix: str = ""


def check_settings(checks: list[Check]) -> bool:
    try:
        check_environment()
    except SettingsError as exc:
        checks.append(Check("settings", PROBLEM, str(exc), "fix or unset that variable"))
        return False
    checks.append(Check("settings", OK, "every PROCESS_MCP_* variable is valid"))
    return True


def check_state_dir(checks: list[Check], folder: str) -> None:
    if not os.path.isdir(folder):
        checks.append(Check("state dir", NOTE, f"{folder} does not exist yet (made on first use)"))
        return
    mode = stat.S_IMODE(os.stat(folder).st_mode)
    if not os.access(folder, os.W_OK | os.X_OK):
        fix = f"make it writable (chown/chmod u+rwx {folder}) or set PROCESS_MCP_STATE_DIR"
        checks.append(Check("state dir", PROBLEM, f"{folder} is not writable", fix))
    elif mode & 0o077:
        fix = f"chmod 700 {folder}"
        checks.append(Check("state dir", PROBLEM, f"{folder} is mode {mode:o}, not 700", fix))
    else:
        checks.append(Check("state dir", OK, f"{folder} (mode 700)"))


def check_supervisor(checks: list[Check], report: dict[str, Any], paths: SupervisorPaths) -> None:
    report["socket"] = str(paths.socket)
    try:
        link = Link.open(paths, start=False)
    except LinkError as exc:
        text = str(exc)
        if "no supervisor is running" in text:
            checks.append(Check("supervisor", OK, "not running (the first call starts one)"))
        else:
            checks.append(Check("supervisor", PROBLEM, text, "see the message; then retry"))
        report["supervisor"] = None
        return
    with link:
        try:
            reply = link.call(ops.Info())
        except RequestFailed as exc:
            fix = "process-mcp supervisor restart (it runs another version)"
            checks.append(Check("supervisor", PROBLEM, f"cannot describe itself: {exc}", fix))
            report["supervisor"] = {"pid": link.welcome.pid, "version": link.welcome.version}
            return
    info = {k: v for k, v in dataclasses.asdict(reply).items() if k != "exits"}
    report["supervisor"] = info
    uptime = float(info.get("uptime") or 0)
    detail = f"pid {info['pid']}, up {uptime:.0f} s, version {info['version']}"
    if info["version"] != __version__:
        fix = f"{drift.REMEDY} (this command is version {__version__})"
        checks.append(Check("supervisor", PROBLEM, detail, fix))
    else:
        checks.append(Check("supervisor", OK, f"{detail}, {info['running']} running"))
    check_containment(checks, str(info.get("containment")))
    check_history(checks, info.get("history") or {})
    found = drift.differences(drift.caller_view(), info.get("settings") or {})
    report["differences"] = [
        {"variable": name, "here": mine, "supervisor": theirs} for name, mine, theirs in found
    ]
    for name, mine, theirs in found:
        detail = f"{name} is {mine!r} here but {theirs!r} in the supervisor"
        checks.append(Check(f"setting {name}", PROBLEM, detail, drift.REMEDY))
    if not found:
        checks.append(Check("settings in force", OK, "the supervisor's match this environment's"))


def check_containment(checks: list[Check], containment: str) -> None:
    if containment == "cgroup":
        checks.append(Check("containment", OK, "cgroup v2: every process of a tree is held"))
        return
    checks.append(
        Check(
            "containment",
            NOTE,
            f"{containment}: process groups (a process that leaves its group is tracked by "
            "marks, not held by the kernel)",
            "for cgroups: a writable cgroup v2 subtree (systemd: Delegate=yes), and "
            "PROCESS_MCP_CGROUPS unset",
        )
    )


def check_history(checks: list[Check], history: dict[str, Any]) -> None:
    size = int(history.get("bytes") or 0)
    if history.get("enabled"):
        checks.append(Check("history", OK, f"{history.get('path')} ({size} bytes with logs)"))
        return
    problem = history.get("problem") or "disabled"
    fix = "check the state dir's permissions and free space, then process-mcp supervisor restart"
    checks.append(Check("history", PROBLEM, f"off: {problem}", fix))


def gather() -> tuple[dict[str, Any], list[Check]]:
    checks: list[Check] = []
    report: dict[str, Any] = {
        "version": __version__,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}, "
        f"Python {platform.python_version()}",
    }
    if not check_settings(checks):
        return report, checks
    folder = str(state_dir())
    report["stateDir"] = folder
    check_state_dir(checks, folder)
    paths = SupervisorPaths.from_env()
    check_supervisor(checks, report, paths)
    supervisor = report.get("supervisor") or {}
    report["containment"] = supervisor.get("containment")
    report["settings"] = {
        "here": drift.caller_view(),
        "supervisor": supervisor.get("settings"),
        "supervisorRun": supervisor.get("run_settings"),
    }
    return report, checks


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="process-mcp doctor", description="Check the setup; each problem with its fix."
    )
    parser.add_argument("--json", action="store_true", help="JSON for scripts")
    options = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `doctor --json | head` ends quietly
    report, checks = gather()
    failed = any(check.verdict == PROBLEM for check in checks)
    if options.json:
        report["checks"] = [asdict(check) for check in checks]
        report["ok"] = not failed
        print(json.dumps(report, indent=2))
        return 1 if failed else 0
    print(f"process-mcp {report['version']} on {report['platform']}")
    supervisor = report.get("supervisor") or {}
    print(f"socket {report.get('socket', '?')}; state dir {report.get('stateDir', '?')}")
    if supervisor.get("settings"):
        shown = ", ".join(f"{k}={v}" for k, v in supervisor["settings"].items())
        print(f"supervisor settings: {shown}")
    for check in checks:
        line = f"[{check.verdict:>7}] {check.name}: {check.detail}"
        print(line if not check.fix else f"{line}\n          fix: {check.fix}")
    print("all good" if not failed else "problems found (see fix)", file=sys.stderr)
    return 1 if failed else 0
