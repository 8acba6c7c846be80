"""The person's safety-rail commands: ``policy check``, ``approve``, ``pending``, ``audit``.

``policy check`` reads the policy files itself (the same loader and evaluator the
supervisor uses), so it answers with no supervisor running. Exit statuses: 0 allow,
1 deny (a broken policy file too: every start would be refused), 3 ask.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

ALLOW, DENY, ASK = 0, 1, 3
_EXIT = {"allow": ALLOW, "deny": DENY, "ask": ASK}


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    policy = commands.add_parser("policy", help="check a command against the policy")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_commands.add_parser(
        "check", help="the decision for a command (0 allow, 1 deny, 3 ask)"
    )
    check.add_argument("--json", action="store_true")
    check.add_argument("--cwd", help="the folder it would run in (default: this one)")
    check.add_argument("--shell", action="store_true", help="CMD is one shell line")
    check.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    approve = commands.add_parser("approve", help="let an agent's asked-for command run once")
    approve.add_argument("request", metavar="REQ")
    approve.add_argument("--decline", action="store_true", help="refuse it instead")
    pending = commands.add_parser("pending", help="requests waiting for your approval")
    pending.add_argument("--json", action="store_true")
    audit = commands.add_parser("audit", help="who started, stopped, sent what (newest last)")
    audit.add_argument("--since", default="1h", help="how far back: 30m, 1h, 2d... (default 1h)")
    audit.add_argument("--json", action="store_true")


AGENT_MARKERS = ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID", "CODEX_THREAD_ID")


def approve(link: Any, options: argparse.Namespace) -> int:
    """Approve (or ``--decline``) a request. Run from an agent's own shell (one of
    ``AGENT_MARKERS`` in the environment) it refuses and the attempt is recorded: a
    tripwire against an agent approving its own request by accident, not a lock."""
    from process_mcp.supervisor.protocol import ops

    marker = next((name for name in AGENT_MARKERS if os.environ.get(name)), None)
    if marker is not None:
        link.call(ops.Approve(options.request, tripwire=f"{marker} set"))
        print(
            f"process-mcp: refused: approve runs in the person's own terminal, not an "
            f"agent's shell ({marker} is set); the attempt is recorded",
            file=sys.stderr,
        )
        return DENY
    answer = link.call(ops.Approve(options.request, decline=options.decline))
    done = answer.approved or answer.declined
    verb = "declined" if options.decline else "approved (runs once, within 10 minutes)"
    print(f"{options.request} {verb}: {done.action} {done.command}" if done else verb)
    return ALLOW


def pending(link: Any, options: argparse.Namespace) -> int:
    from process_mcp.supervisor.protocol import ops

    requests = [vars(doc) for doc in link.call(ops.PendingList()).pending]
    if options.json:
        print(json.dumps(requests))
        return ALLOW
    if not requests:
        print("no pending requests")
        return ALLOW
    for request in requests:
        rule = f' rule "{request["rule"]}" ({request["source"]})' if request.get("rule") else ""
        state = "approved" if request["approved"] else f"expires in {request['expires_in']} s"
        print(
            f"{request['id']}  {request['action']} {request['command']}  "
            f"by {request['actor']};{rule}; {state}"
        )
    return ALLOW


def audit(options: argparse.Namespace) -> int:
    """Reads the history database directly (no supervisor needed)."""
    from process_mcp.core.history.audit import AuditLog, parse_since
    from process_mcp.core.settings import state_dir

    try:
        since = parse_since(options.since)
    except ValueError as exc:
        print(f"process-mcp: {exc}", file=sys.stderr)
        return 2
    log = AuditLog(state_dir(), create=False)
    try:
        entries = log.entries(since)
    finally:
        log.close()
    if options.json:
        print(json.dumps([entry.public() for entry in entries]))
        return ALLOW
    if not entries:
        print(f"no audit entries in the last {options.since}")
        return ALLOW
    for entry in entries:
        what = " ".join(x for x in (entry.process_id, entry.command) if x)
        rule = f" [{entry.rule} {entry.source}]" if entry.rule else ""
        detail = f" ({entry.detail})" if entry.detail else ""
        session = f" {entry.session}" if entry.session else ""
        print(
            f"{entry.at[:19].replace('T', ' ')}  {entry.action} {entry.outcome}: "
            f"{what}{rule}{detail}  by {entry.actor}{session}"
        )
    return ALLOW


def policy_check(options: argparse.Namespace) -> int:
    from process_mcp.core.policy import PolicyError, PolicySource, evaluate_command

    argv = options.argv[1:] if options.argv[:1] == ["--"] else options.argv
    if not argv:
        print(
            "process-mcp: nothing to check: process-mcp policy check -- CMD [ARGS...]",
            file=sys.stderr,
        )
        return 2
    cwd = os.path.realpath(options.cwd or os.getcwd())
    try:
        policy = PolicySource().current(cwd)
    except PolicyError as exc:
        fault = str(exc)
        source, _, reason = fault.partition(": ")
        public = {
            "decision": "deny",
            "rule": "policy-file",
            "source": source,
            "reason": reason,
            "argv": argv,
        }
        print(json.dumps(public) if options.json else f"deny: broken policy file: {fault}")
        return DENY
    for warning in policy.warnings:
        print(f"process-mcp: warning: {warning}", file=sys.stderr)
    command = [" ".join(argv)] if options.shell else argv
    finding = evaluate_command(policy, command, shell=options.shell, cwd=cwd)
    if options.json:
        print(json.dumps(finding.public()))
    elif finding.decision == "allow":
        rule = finding.rule
        by = "" if rule is None else f' by rule "{rule.id}" ({rule.source})'
        print(f"allow{by}: {' '.join(finding.argv)}")
    else:
        print(f"{finding.decision}: {finding.refusal().removeprefix('refused by policy ')}")
    return _EXIT[finding.decision]
