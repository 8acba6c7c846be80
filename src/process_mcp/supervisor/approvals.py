"""Requests for the person's approval: made when the policy asks, approved by the person
(``process-mcp approve REQ``, or in the client), used once by the same call with
``approval: "REQ"``.

Guarantees: a request id is random (``r-`` and 6 hex digits); it is tied to the exact call
that made it (its fingerprint: action, argv, shell, cwd, process id and a digest of the
run's environment, which can change what the same words run), so an approval for one
command never runs another; it runs once; it expires ``APPROVAL_TTL`` seconds after
it was made; at most ``MAX_PENDING`` wait (the oldest gives way). Requests live in the
supervisor's memory only: a new supervisor has none.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from process_mcp.core.errors import ApprovalRequired, InvalidRequest
from process_mcp.core.history.audit import Actor
from process_mcp.core.policy import Finding
from process_mcp.core.policy.shell import join
from process_mcp.supervisor.protocol.documents import PendingDoc

APPROVAL_TTL = 600.0  # seconds a request may wait for the person
MAX_PENDING = 100


@dataclass
class Pending:
    id: str
    action: str
    command: str
    fingerprint: str
    rule: str | None
    source: str | None
    reason: str
    actor: Actor
    audited: str | None = None  # the command as the audit keeps it (secrets masked)
    created: float = field(default_factory=time.monotonic)
    created_at: float = field(default_factory=time.time)
    approved: bool = False

    def document(self) -> PendingDoc:
        left = max(0, round(APPROVAL_TTL - (time.monotonic() - self.created)))
        return PendingDoc(
            self.id,
            self.action,
            self.command,
            self.rule,
            self.source,
            self.reason,
            self.actor.name,
            self.approved,
            left,
        )


@dataclass(frozen=True)
class Check:
    """What is checked: ``argv`` (or ``[line]`` with ``shell``), where, with which env."""

    action: str
    argv: list[str]
    shell: bool
    cwd: str | None
    env: Mapping[str, str] | None
    folder: str | None
    process_id: str | None = None

    def fingerprint(self) -> str:
        env = hashlib.sha256(json.dumps(sorted((self.env or {}).items())).encode()).hexdigest()
        return json.dumps([self.action, self.argv, self.shell, self.cwd, self.process_id, env])


class Approvals:
    """The pending requests of one supervisor (see the module docstring)."""

    def __init__(self) -> None:
        self.pending: dict[str, Pending] = {}

    def ask(
        self, check: Check, finding: Finding, actor: Actor, audited: str | None = None
    ) -> Pending:
        self.expire()
        if len(self.pending) >= MAX_PENDING:
            oldest = min(self.pending.values(), key=lambda p: p.created)
            del self.pending[oldest.id]
        rule = finding.rule
        pending = Pending(
            id=f"r-{secrets.token_hex(3)}",
            action=check.action,
            command=join(finding.argv) if not check.shell else check.argv[0],
            fingerprint=check.fingerprint(),
            rule=None if rule is None else rule.id,
            source=None if rule is None else rule.source,
            reason="" if rule is None else rule.reason,
            actor=actor,
            audited=audited,
        )
        self.pending[pending.id] = pending
        return pending

    def take(self, request_id: str, check: Check) -> None:
        self.expire()
        pending = self.pending.get(request_id)
        if pending is None:
            raise InvalidRequest(
                f"approval {request_id!r} is unknown or expired (requests last 10 minutes "
                "and run once); call again without 'approval' for a new request"
            )
        if pending.fingerprint != check.fingerprint():
            raise InvalidRequest(
                f"approval {request_id!r} was given for another call ({pending.action} "
                f"{pending.command}); repeat exactly that call, or ask anew"
            )
        if not pending.approved:
            raise ApprovalRequired(
                f"request {request_id} is not approved yet: ask the person to run "
                f"`process-mcp approve {request_id}` in a terminal, then call again with "
                f'approval: "{request_id}"',
                request_id,
            )
        del self.pending[request_id]

    def expire(self) -> None:
        now = time.monotonic()
        for request_id in [i for i, p in self.pending.items() if now - p.created > APPROVAL_TTL]:
            del self.pending[request_id]

    def find(self, request_id: str) -> Pending | None:
        self.expire()
        return self.pending.get(request_id)

    def drop(self, request_id: str) -> None:
        self.pending.pop(request_id, None)

    def documents(self) -> list[PendingDoc]:
        self.expire()
        return [pending.document() for pending in self.pending.values()]


def ask_text(finding: Finding, pending: Pending, action: str) -> str:
    rule = finding.rule
    named = "" if rule is None else f' (rule "{rule.id}", {rule.source})'
    reason = "" if rule is None or not rule.reason else f" {rule.reason}"
    return (
        f"needs the person's approval{named}:{reason} Evaluated: {join(finding.argv)}. "
        f"Ask the person to run `process-mcp approve {pending.id}` in a terminal, then call "
        f'{action} again with approval: "{pending.id}" (once; expires in 10 minutes).'
    )
