"""The rails in the supervisor's service, in process, with real processes: refusals an
agent can act on, ask and approve, restart and input re-checked, limits, the audit."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import service_session, service_supervisor

from process_mcp.core import ApprovalRequired, InvalidRequest, PolicyRefused
from process_mcp.core.history.audit import AuditEntry
from process_mcp.core.logs.query import LogQuery
from process_mcp.core.options import RestartChanges, StartOptions, StartRequest
from process_mcp.supervisor.protocol import ops as op
from process_mcp.supervisor.remote import RemoteManager, current_approval
from process_mcp.supervisor.service import ProcessService
from process_mcp.supervisor.transport import SupervisorServer

pytestmark = pytest.mark.anyio

POLICY = """\
version = 1

[[rule]]
id = "no-deploy"
match = ["npm", "run", ["deploy", "deploy:prod"]]
decision = "deny"
reason = "Production deploys are the person's job."

[[rule]]
id = "slow-sleep"
match = ["sleep", "301"]
decision = "ask"
reason = "Sleeps long."
"""


@pytest.fixture
async def supervisor(tmp_path: Path, isolated_policy: Path) -> AsyncIterator[SupervisorServer]:
    isolated_policy.parent.mkdir(parents=True)
    isolated_policy.write_text(POLICY)
    async with service_supervisor(tmp_path) as server:
        yield server


async def session(server: SupervisorServer, folder: Path, kind: str = "mcp-stdio") -> RemoteManager:
    return await service_session(server, folder, kind)


def audit_entries(server: SupervisorServer) -> list[AuditEntry]:
    """What the service's audit holds once its writer caught up."""
    service = server.handler
    assert isinstance(service, ProcessService) and service.rails.audit.flush()
    return service.rails.audit.entries()


def audit_rows(server: SupervisorServer) -> list[tuple[str, str, str | None, str]]:
    return [(e.action, e.outcome, e.rule, e.actor) for e in audit_entries(server)]


async def test_a_denied_start_names_rule_file_line_reason_and_command(
    supervisor: SupervisorServer, tmp_path: Path, isolated_policy: Path
) -> None:
    agent = await session(supervisor, tmp_path)
    await agent.identify("claude-code", "2.1.240", "sess-1")
    with pytest.raises(PolicyRefused) as refused:
        await agent.start(StartRequest("sh", ["-c", "cd . && npm run deploy"]))
    assert str(refused.value) == (
        f'refused by policy rule "no-deploy" ({isolated_policy}:3): Production deploys are '
        "the person's job. Evaluated: npm run deploy"
    )
    with pytest.raises(PolicyRefused, match="floor-sudo"):
        await agent.start(StartRequest("sudo", ["true"]))
    assert await agent.listed() == []
    rows = audit_rows(supervisor)
    assert ("start", "refused", "no-deploy", "claude-code/2.1.240") in rows
    assert ("start", "refused", "floor-sudo", "claude-code/2.1.240") in rows


async def test_ask_then_the_person_approves_once(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    agent = await session(supervisor, tmp_path)
    person = await session(supervisor, tmp_path, kind="cli")
    with pytest.raises(ApprovalRequired) as asked:
        await agent.start(StartRequest("sleep", ["301"]))
    request = asked.value.request_id
    assert request.startswith("r-") and f"process-mcp approve {request}" in str(asked.value)
    pending = (await person.call(op.PendingList())).pending
    assert [p.id for p in pending] == [request] and pending[0].rule == "slow-sleep"
    token = current_approval.set(request)
    try:
        with pytest.raises(ApprovalRequired, match="not approved yet"):
            await agent.start(StartRequest("sleep", ["301"]))
        with pytest.raises(Exception, match="only the person"):
            await agent.call(op.Approve(request))
        await person.call(op.Approve(request))
        with pytest.raises(Exception, match="another call"):
            await agent.start(StartRequest("sleep", ["301", "0"]))
        started = await agent.start(StartRequest("sleep", ["301"]))
        assert started.running
        with pytest.raises(Exception, match="unknown or expired"):  # once
            await agent.start(StartRequest("sleep", ["301"]))
    finally:
        current_approval.reset(token)
    await agent.stop(started.id)
    outcomes = [(action, outcome) for action, outcome, _, _ in audit_rows(supervisor)]
    assert ("start", "asked") in outcomes and ("start", "approved") in outcomes
    assert ("approve", "done") in outcomes and ("stop", "done") in outcomes


async def test_the_person_runs_ask_and_forces_deny(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    person = await session(supervisor, tmp_path, kind="cli")
    asked = await person.start(StartRequest("sleep", ["301"]))
    assert asked.running
    await person.stop(asked.id)
    with pytest.raises(PolicyRefused, match="no-deploy"):
        await person.start(StartRequest("npm", ["run", "deploy"]))
    forced = await person.start(StartRequest("sh", ["-c", "exit 0; npm run deploy"], force=True))
    assert forced.command == "sh"


async def test_restart_is_checked_against_the_policy_of_now(
    supervisor: SupervisorServer, tmp_path: Path, isolated_policy: Path
) -> None:
    agent = await session(supervisor, tmp_path)
    started = await agent.start(StartRequest("sleep", ["300"]))
    isolated_policy.write_text(
        POLICY + '\n[[rule]]\nid = "no-sleep"\nmatch = ["sleep"]\ndecision = "deny"\n'
    )
    os.utime(isolated_policy, ns=(1, 1))
    with pytest.raises(PolicyRefused, match="no-sleep"):
        await agent.restart(started.id)
    with pytest.raises(PolicyRefused, match="no-sleep"):
        await agent.start(StartRequest("sleep", ["1"]))
    isolated_policy.write_text("[[rule]\n")
    os.utime(isolated_policy, ns=(2, 2))
    with pytest.raises(PolicyRefused, match=r"policy\.toml:1: .*Every start is refused"):
        await agent.start(StartRequest("true"))
    await agent.stop(started.id)


async def test_input_to_a_shell_is_checked_line_by_line(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    agent = await session(supervisor, tmp_path)
    shell = await agent.start(StartRequest("sh", options=StartOptions(stdin="pipe")))
    with pytest.raises(PolicyRefused, match=r'"no-deploy".*Evaluated: npm run deploy'):
        await agent.send_input(shell.id, "echo ok\nnpm run deploy\n")
    with pytest.raises(PolicyRefused, match="floor-sudo"):
        await agent.send_input(shell.id, "echo $(sudo id)\n")
    await agent.send_input(shell.id, "echo fine\n")
    data = await agent.start(StartRequest("cat", options=StartOptions(stdin="pipe")))
    await agent.send_input(data.id, "npm run deploy\n")  # data to cat, not a command
    await agent.stop(shell.id)
    await agent.stop(data.id)
    rows = audit_entries(supervisor)
    inputs = [e for e in rows if e.action == "send-input"]
    assert [e.outcome for e in inputs] == ["refused", "refused", "allowed", "done"]
    assert all(e.command is None and e.detail and "bytes" in e.detail for e in inputs)
    assert inputs[-1].detail == "15 bytes"


async def test_max_running_and_per_session_refuse_naming_the_limit(
    supervisor: SupervisorServer, tmp_path: Path, isolated_policy: Path
) -> None:
    isolated_policy.write_text(POLICY + "\n[limits]\nmax_running = 2\nper_session = 1\n")
    os.utime(isolated_policy, ns=(3, 3))
    alice, bob = await session(supervisor, tmp_path), await session(supervisor, tmp_path)
    first = await alice.start(StartRequest("sleep", ["300"]))
    with pytest.raises(PolicyRefused, match=rf"per_session = 1 .*policy\.toml:\d+.*{first.id}"):
        await alice.start(StartRequest("sleep", ["300"]))
    second = await bob.start(StartRequest("sleep", ["300"]))
    third = await session(supervisor, tmp_path)
    with pytest.raises(PolicyRefused, match=r"max_running = 2 .*2 processes running"):
        await third.start(StartRequest("sleep", ["300"]))
    await alice.stop(first.id)
    await bob.stop(second.id)


async def test_restart_changes_are_checked(supervisor: SupervisorServer, tmp_path: Path) -> None:
    agent = await session(supervisor, tmp_path)
    started = await agent.start(StartRequest("sleep", ["300"]))
    with pytest.raises(ApprovalRequired):
        await agent.restart(started.id, RestartChanges(args=["301"]))
    await agent.stop(started.id)


async def test_a_tree_over_the_memory_limit_is_stopped_with_the_reason(
    supervisor: SupervisorServer, tmp_path: Path, isolated_policy: Path
) -> None:
    isolated_policy.write_text(POLICY + '\n[limits]\nmemory = "32M"\n')
    os.utime(isolated_policy, ns=(4, 4))
    agent = await session(supervisor, tmp_path)
    hog = (  # a child of the shell holds the memory: the whole tree counts
        "import time\nheld = bytearray(96 * 1024 * 1024)\n"
        "for i in range(0, len(held), 4096): held[i] = 1\n"
        'print("holding", flush=True)\ntime.sleep(60)\n'
    )
    started = await agent.start(
        StartRequest("sh", ["-c", f"{sys.executable} -c '{hog}'; sleep 60"])
    )
    small = await agent.start(StartRequest("sleep", ["60"]))
    ended = await agent.wait_for_exits([started.id], False, 30)
    _, log = await agent.read_log_of(started.id, LogQuery())
    assert ended[0].met, f"the tree over the limit was not stopped: {log.lines}"
    record = agent.get(started.id)
    assert record.status.value == "stopped"
    assert record.reason is not None and record.reason.startswith("memory limit 32M exceeded (")
    assert agent.get(small.id).running  # under the limit: untouched
    status, _, _ = await agent.status(started.id)
    assert status is not None and status.reason == record.reason
    await agent.stop(small.id)
    rows = audit_entries(supervisor)
    assert any(e.action == "limit" and e.detail == record.reason for e in rows)


# ------------------------------------------------------------- found by the audit
async def test_an_approval_runs_only_the_call_it_was_given_for_env_included(
    supervisor: SupervisorServer, tmp_path: Path, isolated_policy: Path
) -> None:
    isolated_policy.write_text(
        POLICY + '\n[[rule]]\nid = "slower-sleep"\nmatch = ["sleep", "302"]\ndecision = "ask"\n'
    )
    os.utime(isolated_policy, ns=(5, 5))
    agent = await session(supervisor, tmp_path)
    person = await session(supervisor, tmp_path, kind="cli")

    def line(program: str) -> StartRequest:  # the same call, but for the program $T names
        return StartRequest("$T", env={"T": program}, options=StartOptions(shell=True))

    with pytest.raises(ApprovalRequired) as asked:
        await agent.start(line("sleep 301"))
    request = asked.value.request_id
    await person.call(op.Approve(request))
    token = current_approval.set(request)
    try:
        with pytest.raises(Exception, match="another call"):
            await agent.start(line("sleep 302"))  # another command by the same words
        started = await agent.start(line("sleep 301"))
    finally:
        current_approval.reset(token)
    assert started.running
    await agent.stop(started.id)


async def test_input_to_a_shell_obeys_the_project_file(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / ".process-mcp").mkdir(parents=True)
    (project / ".process-mcp" / "policy.toml").write_text(
        '[[rule]]\nid = "no-migrate"\nmatch = ["npm", "run", "migrate"]\ndecision = "deny"\n'
    )
    agent = await session(supervisor, project)
    with pytest.raises(PolicyRefused, match="no-migrate"):
        await agent.start(StartRequest("npm", ["run", "migrate"]))
    shell = await agent.start(StartRequest("sh", options=StartOptions(stdin="pipe")))
    try:
        with pytest.raises(PolicyRefused, match="no-migrate"):
            await agent.send_input(shell.id, "npm run migrate\n")
    finally:
        await agent.stop(shell.id)


async def test_a_restart_counts_against_max_running(
    supervisor: SupervisorServer, tmp_path: Path, isolated_policy: Path
) -> None:
    isolated_policy.write_text(POLICY + "\n[limits]\nmax_running = 1\n")
    os.utime(isolated_policy, ns=(6, 6))
    agent = await session(supervisor, tmp_path)
    first = await agent.start(StartRequest("sleep", ["300"]))
    await agent.stop(first.id)
    second = await agent.start(StartRequest("sleep", ["300"]))
    try:
        with pytest.raises(
            PolicyRefused, match=rf"max_running = 1 .*1 processes running.*{second.id}"
        ):
            await agent.restart(first.id)
        assert not agent.get(first.id).running
        again = await agent.restart(second.id)  # a running one replaces itself: allowed
        assert again.running
    finally:
        await agent.stop(second.id)


async def test_restart_and_signal_are_audited_with_the_actor(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    agent = await session(supervisor, tmp_path)
    await agent.identify("claude-code", "2.1.240", "sess-7")
    started = await agent.start(StartRequest("sleep", ["300"]))
    await agent.restart(started.id)
    await agent.send_signal(started.id, "SIGTERM")
    await agent.wait_for_exits([started.id], False, 20)
    rows = audit_entries(supervisor)
    mine = [e for e in rows if e.process_id == started.id or e.action == "start"]
    seen = {(e.action, e.outcome) for e in mine}
    assert {("start", "allowed"), ("restart", "allowed"), ("signal", "done")} <= seen
    for entry in mine:
        assert entry.actor == "claude-code/2.1.240" and entry.session == "sess-7"
        assert entry.pid == os.getpid()  # the front-end's pid (this process here)
    assert next(e for e in mine if e.action == "signal").detail == "SIGTERM"


async def test_the_history_database_never_holds_an_env_value_or_input(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    secret, typed, argv_secret = "s3cr3t-env-value-4242", "typed-input-7373", "argv-secret-5151"
    agent = await session(supervisor, tmp_path)
    reader = await agent.start(
        StartRequest(
            "sh",
            ["-c", "read line; sleep 30"],
            env={"MY_API_TOKEN": secret},
            options=StartOptions(stdin="pipe"),
        )
    )
    await agent.send_input(reader.id, typed + "\n")
    refused = StartRequest("env", [f"DEPLOY_TOKEN={argv_secret}", "npm", "run", "deploy"])
    with pytest.raises(PolicyRefused):
        await agent.start(refused)
    await agent.stop(reader.id)
    rows = audit_entries(supervisor)
    assert any(e.action == "send-input" for e in rows)
    refusal = next(e for e in rows if e.outcome == "refused")
    assert refusal.command is not None and "DEPLOY_TOKEN=[redacted" in refusal.command
    stored = b"".join(path.read_bytes() for path in (tmp_path / "state").glob("history.sqlite3*"))
    assert stored, "no history database was written"
    for value in (secret, typed, argv_secret):
        assert value.encode() not in stored, value


async def test_a_request_runs_once_and_expires_after_ten_minutes() -> None:
    from process_mcp.core.history.audit import Actor
    from process_mcp.core.policy import Finding, Rule
    from process_mcp.supervisor.approvals import APPROVAL_TTL, Approvals, Check

    assert APPROVAL_TTL == 600
    approvals = Approvals()
    check = Check("start", ["sleep", "301"], False, "/tmp", {}, None)
    finding = Finding("ask", ("sleep", "301"), Rule("slow-sleep", ("sleep",), "ask"))
    kept = approvals.ask(check, finding, Actor("agent"))
    old = approvals.ask(check, finding, Actor("agent"))
    assert {doc.id: doc.expires_in for doc in approvals.documents()} == {kept.id: 600, old.id: 600}
    kept.approved = old.approved = True
    old.created -= APPROVAL_TTL + 1  # made ten minutes and a second ago
    with pytest.raises(InvalidRequest, match="unknown or expired"):
        approvals.take(old.id, check)
    assert [doc.id for doc in approvals.documents()] == [kept.id]
    approvals.take(kept.id, check)  # once...
    with pytest.raises(InvalidRequest, match="unknown or expired"):
        approvals.take(kept.id, check)  # ...only


async def test_the_memory_limit_reads_as_the_file_writes_it() -> None:
    from process_mcp.supervisor.memory_watch import INTERVAL, human

    assert INTERVAL <= 2.0  # sampled at least every 2 seconds
    assert human(4 * 1024**3) == "4G"
    assert human(int(4.3 * 1024**3)) == "4.3G"
    assert human(512 * 1024**2) == "512M"


async def test_the_memory_limit_is_the_cgroups_memory_max_where_offered(
    supervisor: SupervisorServer, tmp_path: Path, isolated_policy: Path
) -> None:
    from conftest import eventually

    service = supervisor.handler
    assert isinstance(service, ProcessService)
    cgroups = service.manager.ownership.cgroups
    if cgroups is None or "memory" not in cgroups.layout.controllers:
        pytest.skip("no cgroup v2 memory controller here: the sampled RSS is the rule")
    isolated_policy.write_text(POLICY + '\n[limits]\nmemory = "64M"\n')
    os.utime(isolated_policy, ns=(7, 7))
    agent = await session(supervisor, tmp_path)
    started = await agent.start(StartRequest("sleep", ["60"]))
    try:

        def capped() -> bool:
            jobs = cgroups.jobs(started.id)
            return bool(jobs) and (jobs[-1] / "memory.max").read_text().strip() == str(64 << 20)

        assert await eventually(capped, 10)
    finally:
        await agent.stop(started.id)


async def test_force_is_the_persons_only(supervisor: SupervisorServer, tmp_path: Path) -> None:
    agent = await session(supervisor, tmp_path)
    with pytest.raises(PolicyRefused, match="no-deploy"):
        await agent.start(StartRequest("npm", ["run", "deploy"], force=True))
