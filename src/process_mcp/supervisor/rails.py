"""The supervisor's safety rails: every start, restart and input to a shell is checked here
against the person's policy of now, asked about, recorded in the audit, counted against
the limits — one place every front-end (MCP stdio, HTTP, the person's CLI) passes through.

Who may do what:
- An agent's session (any MCP front-end): deny is refused with the rule's text; ask is
  refused with a request id until the person approves it (``process-mcp approve REQ``, or
  in the client through elicitation), after which the same call with ``approval: REQ``
  runs once (``approvals.py``).
- The person (the CLI's sessions, kind ``cli``): ask runs (they are the person), deny is
  refused unless the request says ``force``.
- A broken policy file refuses every start, restart and shell input, naming file, line and
  fault; limits (``max_running``, ``per_session``) refuse a start naming the limit and
  what runs.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from process_mcp.core.errors import ApprovalRequired, InvalidRequest, PolicyRefused
from process_mcp.core.history.audit import PERSON, Actor, AuditLog
from process_mcp.core.logs.redact import Redactor
from process_mcp.core.manager import ProcessManager
from process_mcp.core.options import StartRequest
from process_mcp.core.policy import Finding, Policy, PolicyError, PolicySource
from process_mcp.core.policy.shell import join
from process_mcp.core.records import ProcessRecord
from process_mcp.core.spawn.launch import join_cwd
from process_mcp.core.waiting import WaitOutcome
from process_mcp.supervisor.approvals import Approvals, Check, ask_text
from process_mcp.supervisor.memory_watch import MemoryWatch
from process_mcp.supervisor.protocol import ops as op
from process_mcp.supervisor.transport import Session

PERSON_KIND = "cli"


class CutMask:
    """``Redactor.line`` as a ``LogQuery.mask`` that counts what it masked (the answers
    built on ``tail_text`` keep only the lines)."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self.count = 0

    def __call__(self, line: str) -> tuple[str, int]:
        masked, found = self._redactor.line(line)
        self.count += found
        return masked, found


def mask_wait(cut: CutMask | None, outcome: WaitOutcome) -> tuple[list[str], str | None, int]:
    """A wait's tail and matched line masked as :func:`masked` does, and the count (with
    what ``cut`` masked in lines cut to fit)."""
    tail, count = masked(cut, outcome.tail)
    count += 0 if cut is None else cut.count
    matched = outcome.matched_line
    if matched is not None:
        (matched,), found = masked(cut, [matched])
        count += found
    return tail, matched, count


def masked(cut: CutMask | None, lines: list[str]) -> tuple[list[str], int]:
    """``lines`` (whole: they fit the answer) masked by the same redactor as the lines
    ``cut`` masked before their cut, and how many secrets; as they are when the session
    reads raw (``cut`` None). One policy look-up serves the whole answer."""
    return (lines, 0) if cut is None else cut._redactor.lines(lines)


class Rails:
    """Policy, approvals and audit of one supervisor."""

    def __init__(self, manager: ProcessManager, policies: PolicySource | None = None) -> None:
        self.policies = policies or PolicySource()
        self.audit = AuditLog(manager.settings.state_dir)
        self.memory = MemoryWatch(manager, self.policy_of, self.limit_stopped)
        self.approvals = Approvals()
        self._redactors: dict[str | None, tuple[Any, Redactor]] = {}
        self._folders: dict[str, str | None] = {}  # process id -> its start's default folder

    def remember(self, process_id: str, folder: str | None) -> None:
        """``process_id`` was started from a session whose default folder is ``folder``:
        its input and its memory limit follow that folder's project file."""
        self._folders[process_id] = folder

    def forget(self, process_id: str) -> None:
        self._folders.pop(process_id, None)
        self._redactors.pop(process_id, None)

    def folder_of(self, record: ProcessRecord) -> str | None:
        """The default folder ``record`` was started from (else the folder it runs in)."""
        return self._folders.get(record.id) or record.cwd

    async def close(self) -> None:
        await self.memory.close()
        self.audit.close()

    # ------------------------------------------------------------------ redaction
    def redactor(
        self, session: Session, redact: bool, record: ProcessRecord | None
    ) -> Redactor | None:
        """The masks for what ``session`` reads of ``record`` (None: an earlier run, no
        env known), or None when it reads raw: the person's CLI unless it asked
        ``redact``, or redaction turned off in the person's own policy file. A broken
        policy file never turns redaction off."""
        if self.is_person(session) and not redact:
            return None
        try:
            policy = self.policies.current(None if record is None else record.cwd)
        except PolicyError:
            policy = Policy()
        if not policy.redact.enabled:
            return None
        extra = tuple((p.id, p.regex) for p in policy.redact.patterns)
        process_id = None if record is None else record.id
        envs = (None, None) if record is None else (record.base_env, record.env)
        key = (id(envs[0]), id(envs[1]), extra)  # a restart with a new env: new objects
        cached = self._redactors.get(process_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        env = None if record is None else {**(record.base_env or {}), **(record.env or {})}
        redactor = Redactor.for_run(env, extra)
        if len(self._redactors) > 4096:
            self._redactors.clear()
        self._redactors[process_id] = (key, redactor)
        return redactor

    def mask(
        self,
        session: Session,
        record: ProcessRecord | None,
        lines: list[str],
        redact: bool = False,
    ) -> tuple[list[str], int]:
        """``lines`` as ``session`` may read them (``redact``: the person asked to see
        them masked), and how many secrets were masked."""
        redactor = self.redactor(session, redact, record)
        return (lines, 0) if redactor is None else redactor.lines(lines)

    def cut_mask(
        self, session: Session, record: ProcessRecord | None, redact: bool = False
    ) -> CutMask | None:
        """The mask for lines an answer to ``session`` must cut (``LogQuery.mask``): a
        line is masked whole before it is cut, so no secret shows in part; None when
        ``session`` reads raw."""
        redactor = self.redactor(session, redact, record)
        return None if redactor is None else CutMask(redactor)

    def ops(self) -> dict[str, Callable[[Session, Any], Awaitable[op.Reply]]]:
        """The rails' own ops, for the service's table."""

        async def identify(session: Session, request: op.Identify) -> op.IdentifyReply:
            self.identify(session, request)
            return op.IdentifyReply()

        async def pending(session: Session, request: op.PendingList) -> op.PendingReply:
            return op.PendingReply(self.approvals.documents())

        async def approve(session: Session, request: op.Approve) -> op.ApproveReply:
            return self.approve(session, request)

        return {"identify": identify, "pending": pending, "approve": approve}

    # ------------------------------------------------------------------ who
    @staticmethod
    def is_person(session: Session) -> bool:
        return session.client.kind == PERSON_KIND

    def actor(self, session: Session) -> Actor:
        if self.is_person(session):
            return Actor(PERSON.name, None, session.client.pid)
        known = session.state.get("actor")
        if isinstance(known, Actor):
            return known
        return Actor(f"{session.client.kind} front-end", session.id, session.client.pid)

    def identify(self, session: Session, request: op.Identify) -> None:
        """The front-end says who its client is (MCP ``clientInfo``, the agent's session)."""
        name = (request.name or session.client.kind)[:100]
        version = request.version[:50]
        agent_session = request.session
        session.state["actor"] = Actor(
            f"{name}/{version}" if version else name,
            str(agent_session)[:200] if agent_session else session.id,
            session.client.pid,
        )

    # ------------------------------------------------------------------ policy
    def policy(self, folder: str | None) -> Policy:
        """The policy of now for a session whose default folder is ``folder``; a broken
        file is a refusal naming it."""
        try:
            return self.policies.current(folder)
        except PolicyError as exc:
            raise PolicyRefused(
                f"refused: the policy file is broken: {exc}. Every start is refused until "
                "the person fixes it."
            ) from None

    def check(self, session: Session, check: Check, args: dict[str, Any]) -> None:
        """Allow, or raise PolicyRefused / ApprovalRequired (see the module docstring);
        every outcome is audited."""
        from process_mcp.core.policy import evaluate_command

        actor = self.actor(session)
        try:
            policy = self.policy(check.folder)
        except PolicyRefused as exc:
            self._audit(check, "refused", actor, None, detail="broken policy file")
            raise exc from None
        finding = evaluate_command(
            policy, check.argv, shell=check.shell, cwd=check.cwd, env=check.env
        )
        self.decide(session, check, finding, args)

    def decide(
        self, session: Session, check: Check, finding: Finding, args: dict[str, Any]
    ) -> None:
        actor = self.actor(session)
        size = args.get("_detail")
        if finding.decision == "allow":
            self._audit(check, "allowed", actor, finding, detail=size)
            return
        person = self.is_person(session)
        if finding.decision == "deny":
            if person and args.get("force"):
                self._audit(check, "allowed", actor, finding, detail="forced by the person")
                return
            self._audit(check, "refused", actor, finding, detail=size)
            raise PolicyRefused(finding.refusal())
        if person:
            self._audit(check, "approved", actor, finding, detail="the person's own command")
            return
        approval = args.get("approval")
        if approval:
            self.approvals.take(str(approval), check)
            self._audit(check, "approved", actor, finding, detail=str(approval))
            return
        pending = self.approvals.ask(check, finding, actor, self._audited_command(check))
        self._audit(check, "asked", actor, finding, detail=pending.id)
        raise ApprovalRequired(ask_text(finding, pending, check.action), pending.id)

    def check_start(
        self,
        session: Session,
        request: StartRequest,
        records: list[ProcessRecord],
        owners: Mapping[str, str | None],
    ) -> None:
        """The policy's word and the limits on a start (``request.folder`` resolved)."""
        shell = request.options.shell
        argv = [request.command] if shell else [request.command, *request.args]
        base = os.environ if request.base_env is None else request.base_env
        env = {**base, **(request.env or {})}
        cwd = join_cwd(request.cwd, request.folder)
        self.limit_counts(self.policy(request.folder), session.id, records, owners)
        check = Check("start", argv, shell, cwd, env, request.folder)
        self.check(session, check, {"approval": request.approval, "force": request.force})

    def check_restart(
        self,
        session: Session,
        record: ProcessRecord,
        request: op.Restart,
        folder: str | None,
        records: list[ProcessRecord] | None = None,
        owners: Mapping[str, str | None] | None = None,
    ) -> None:
        """A restart, with what it changes, against the policy of now; a restart of a
        process that has ended is a start for the limits (``records``, ``owners``)."""
        changes = request.changes
        new_args = None if changes is None else changes.args
        argv = record.options.argv(
            record.command, record.args if new_args is None else list(new_args)
        )
        shell = record.options.shell
        checked = [record.command] if shell else argv
        cwd = record.cwd
        if changes is not None and changes.cwd:
            cwd = join_cwd(changes.cwd, folder or record.cwd)
        overlay = (None if changes is None else changes.env) or record.env or {}
        env = {**(record.base_env or os.environ), **overlay}
        if not record.running and records is not None:
            self.limit_counts(self.policy(folder), session.id, records, owners or {})
        check = Check("restart", checked, shell, cwd, env, folder, record.id)
        self.check(session, check, {"approval": request.approval})

    def policy_of(self, record: ProcessRecord) -> Policy | None:
        """The policy for a running record's limits (None while the file is broken)."""
        try:
            return self.policies.current(self.folder_of(record))
        except PolicyError:
            return None

    def limit_stopped(self, record: ProcessRecord) -> None:
        detail = record.reason
        self.audit.record("limit", "done", Actor("supervisor"), process_id=record.id, detail=detail)

    def check_input(
        self, session: Session, record: ProcessRecord, text: str, request: op.SendInput
    ) -> None:
        """Input to a shell (each line a command) or a REPL is checked like a start;
        input to anything else is data. Either way its byte count is audited."""
        from process_mcp.core.policy import evaluate_input

        check = Check("send-input", [text], True, record.cwd, None, None, record.id)
        size = f"{len(text.encode('utf-8', 'surrogatepass'))} bytes"
        program = record.options.argv(record.command, record.args)
        try:
            policy = self.policy(self.folder_of(record))
        except PolicyRefused:
            self.audit.record(
                "send-input",
                "refused",
                self.actor(session),
                process_id=record.id,
                detail=f"{size}; broken policy file",
            )
            raise
        env = {**(record.base_env or {}), **(record.env or {})} if record.base_env else None
        finding = evaluate_input(policy, program, text, env)
        if finding is None:
            self.audit.record(
                "send-input", "done", self.actor(session), process_id=record.id, detail=size
            )
            return
        self.decide(session, check, finding, {"approval": request.approval, "_detail": size})

    def limit_counts(
        self,
        policy: Policy,
        session_id: str,
        records: list[ProcessRecord],
        owners: Mapping[str, str | None],
    ) -> None:
        """Refuse a start beyond ``max_running`` (this supervisor) or ``per_session``
        (this session), naming the limit and what runs."""
        limits = policy.limits
        running = [record for record in records if record.running]
        for limit, source, counted, whose in (
            (limits.max_running, limits.sources.get("max_running"), running, "running"),
            (
                limits.per_session,
                limits.sources.get("per_session"),
                [r for r in running if owners.get(r.id) == session_id],
                "running for this session",
            ),
        ):
            if limit is not None and len(counted) >= limit:
                shown = ", ".join(
                    f"{r.id} ({join([r.command, *r.args])[:60]})" for r in counted[:10]
                )
                more = f" and {len(counted) - 10} more" if len(counted) > 10 else ""
                name = "max_running" if whose == "running" else "per_session"
                raise PolicyRefused(
                    f"refused by policy limit {name} = {limit} ({source}): {len(counted)} "
                    f"processes {whose}: {shown}{more}. Stop one first."
                )

    # ------------------------------------------------------------------ ops
    def approve(self, session: Session, request: op.Approve) -> op.ApproveReply:
        """From the person's CLI, or from a front-end whose client asked the person
        (``via: "elicitation"``); ``tripwire``: the CLI refused (an agent's shell), record it."""
        request_id, via = request.id, request.via or ""
        actor = self.actor(session)
        if request.tripwire:
            self.audit.record(
                "approve", "refused", actor, detail=f"{request_id}: {request.tripwire}"
            )
            return op.ApproveReply(recorded=True)
        if not self.is_person(session) and via != "elicitation":
            raise InvalidRequest("only the person approves requests: `process-mcp approve REQ`")
        pending = self.approvals.find(request_id)
        if pending is None:
            known = ", ".join(doc.id for doc in self.approvals.documents()) or "none"
            raise InvalidRequest(
                f"no pending request {request_id!r} (pending: {known}); it may have expired"
            )
        where = " in the client" if via else ""
        if request.decline:  # a decline names no source: nothing was let through
            self.approvals.drop(request_id)
            outcome, source, detail = "refused", None, f"{request_id} declined{where}"
        else:
            pending.approved = True
            outcome, source, detail = "done", pending.source, request_id + where
        self.audit.record(
            "approve",
            outcome,
            actor,
            command=pending.audited,
            rule=pending.rule,
            source=source,
            detail=detail,
        )
        if request.decline:
            return op.ApproveReply(declined=pending.document())
        return op.ApproveReply(approved=pending.document())

    def _audited_command(self, check: Check) -> str | None:
        """The command as the audit keeps it: never input, and with the values of the
        run's secret env variables, secret-looking tokens and ``SECRET_NAME=value``
        arguments masked (as ``Redactor.command`` does)."""
        if check.action == "send-input":
            return None  # input bytes are never stored
        try:
            patterns = self.policies.current(check.folder).redact.patterns
        except PolicyError:
            patterns = ()
        redactor = Redactor.for_run(check.env, tuple((p.id, p.regex) for p in patterns))
        if check.shell:
            return redactor.command(line=check.argv[0])
        return redactor.command(check.argv)

    def record(
        self, session: Session, action: str, process_id: str, detail: str | None = None
    ) -> None:
        """An operation that is not checked (stop, signal) or was checked and done."""
        self.audit.record(action, "done", self.actor(session), process_id=process_id, detail=detail)

    def _audit(
        self,
        check: Check,
        outcome: str,
        actor: Actor,
        finding: Finding | None,
        detail: str | None = None,
    ) -> None:
        rule = None if finding is None else finding.rule
        command = self._audited_command(check)
        self.audit.record(
            check.action,
            outcome,
            actor,
            process_id=check.process_id,
            command=command,
            rule=None if rule is None else rule.id,
            source=None if rule is None else rule.source,
            detail=detail,
        )
