"""The person's rail commands as a person runs them: ``policy check`` (no supervisor),
``start`` obeying deny rules (``--force``), ``pending``/``approve`` with the tripwire, and
``audit`` — subprocesses against this test's own supervisor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from conftest import wait_until
from support import SAMPLE_POLICY

from process_mcp.core import ApprovalRequired
from process_mcp.core.options import StartRequest
from process_mcp.supervisor.client import ensure_supervisor
from process_mcp.supervisor.remote import RecordMirror, RemoteManager

CLI = [sys.executable, "-m", "process_mcp"]
POLICY = SAMPLE_POLICY
AGENT_MARKERS = ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID", "CODEX_THREAD_ID")


def person_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AGENT_MARKERS}
    return {**env, **extra}


def cli(*args: str, cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
        check=False,
        env=person_env(**extra),
    )


def audit_once(expected: tuple[str, str]) -> list[dict]:
    """The audit as ``process-mcp audit --json`` prints it, once it holds ``expected``
    (action, outcome): the supervisor's writer thread lags the answers by a moment."""
    entries: list[dict] = []

    def has() -> bool:
        nonlocal entries
        entries = json.loads(cli("audit", "--json", "--since", "1h").stdout)
        return any((e["action"], e["outcome"]) == expected for e in entries)

    assert wait_until(has, 10), entries
    return entries


@pytest.fixture
def policy(isolated_policy: Path) -> Path:
    isolated_policy.parent.mkdir(parents=True)
    isolated_policy.write_text(POLICY)
    return isolated_policy


def test_policy_check_exit_statuses_and_json(policy: Path, tmp_path: Path) -> None:
    denied = cli("policy", "check", "--json", "--", "sh", "-c", "npm run deploy")
    assert denied.returncode == 1, denied.stderr
    assert json.loads(denied.stdout) == {
        "decision": "deny",
        "rule": "no-deploy",
        "source": f"{policy}:3",
        "reason": "Production deploys are the person's job.",
        "argv": ["npm", "run", "deploy"],
    }
    assert cli("policy", "check", "--", "sleep", "301").returncode == 3
    allowed = cli("policy", "check", "--", "ls", "-la")
    assert allowed.returncode == 0 and allowed.stdout.startswith("allow")
    floor = cli("policy", "check", "--json", "--shell", "--", "echo $(sudo id)")
    assert floor.returncode == 1 and json.loads(floor.stdout)["source"] == "builtin"
    policy.write_text("[[rule]]\nid = 'x'\nmatch = 'npm'\ndecision = 'deny'\n")
    broken = cli("policy", "check", "--", "ls")
    assert broken.returncode == 1 and f"{policy}:3:" in broken.stdout


def test_start_obeys_deny_unless_forced_and_runs_ask(policy: Path, tmp_path: Path) -> None:
    refused = cli("start", "--", "npm", "run", "deploy", cwd=tmp_path)
    assert refused.returncode == 1
    assert 'refused by policy rule "no-deploy"' in refused.stderr
    asked = cli("start", "--json", "--", "sleep", "301", cwd=tmp_path)  # the person's own
    assert asked.returncode == 0, asked.stderr
    process_id = json.loads(asked.stdout)["id"]
    forced = cli("start", "--force", "--json", "--", "sh", "-c", "exit 0; npm run deploy")
    assert forced.returncode == 0, forced.stderr
    assert cli("stop", process_id).returncode == 0
    audit = audit_once(("stop", "done"))
    seen = [(e["action"], e["outcome"], e.get("rule"), e["actor"]) for e in audit]
    assert ("start", "refused", "no-deploy", "person") in seen
    assert ("start", "approved", "slow-sleep", "person") in seen
    assert ("start", "allowed", "no-deploy", "person") in seen  # forced
    assert ("stop", "done", None, "person") in seen
    forced_row = next(e for e in audit if e.get("detail") == "forced by the person")
    assert forced_row["command"].startswith("sh -c")


async def _agent_asks() -> tuple[RemoteManager, str]:
    remote = RemoteManager(RecordMirror(), folder_fallback=os.getcwd)
    remote.client = await ensure_supervisor("mcp-stdio", on_event=remote.on_event)
    await remote.snapshot()
    try:
        await remote.start(StartRequest("sleep", ["301"]))
    except ApprovalRequired as asked:
        return remote, asked.request_id
    raise AssertionError("the policy did not ask")


def test_pending_approve_and_the_tripwire(policy: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        agent, request = await _agent_asks()
        try:
            listed = await anyio.to_thread.run_sync(lambda: cli("pending", "--json"))
            assert [r["id"] for r in json.loads(listed.stdout)] == [request]
            tripped = await anyio.to_thread.run_sync(
                lambda: cli("approve", request, CLAUDECODE="1")
            )
            assert tripped.returncode == 1 and "agent's shell" in tripped.stderr
            pending = json.loads(
                (await anyio.to_thread.run_sync(lambda: cli("pending", "--json"))).stdout
            )
            assert pending[0]["approved"] is False
            done = await anyio.to_thread.run_sync(lambda: cli("approve", request))
            assert done.returncode == 0 and "approved" in done.stdout, done.stderr
            from process_mcp.supervisor.remote import current_approval

            token = current_approval.set(request)
            try:
                started = await agent.start(StartRequest("sleep", ["301"]))
            finally:
                current_approval.reset(token)
            await agent.stop(started.id)
        finally:
            await agent.end_session()
            assert agent.client is not None
            await agent.client.close()

    anyio.run(scenario)
    audit = audit_once(("start", "approved"))
    outcomes = [(e["action"], e["outcome"]) for e in audit]
    assert ("approve", "refused") in outcomes  # the tripwire's attempt, recorded
    assert outcomes.count(("start", "approved")) == 1
    tripwire = next(e for e in audit if e["action"] == "approve" and e["outcome"] == "refused")
    assert "CLAUDECODE" in tripwire["detail"]


# ------------------------------------------------------------- found by the audit
def test_the_persons_logs_are_raw_unless_redact(policy: Path, tmp_path: Path) -> None:
    secret = "ghp_" + "P0o9I8u7" * 5
    started = cli("start", "--json", "--", "sh", "-c", f"echo token {secret}", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    process_id = json.loads(started.stdout)["id"]
    assert wait_until(lambda: secret in cli("logs", process_id).stdout, 10)
    masked = cli("logs", "--redact", process_id)
    assert masked.returncode == 0, masked.stderr
    assert "token [redacted:github-token]" in masked.stdout and secret not in masked.stdout


@pytest.mark.parametrize("marker", AGENT_MARKERS)
def test_approve_from_any_agents_shell_is_refused_and_recorded(
    policy: Path, tmp_path: Path, marker: str
) -> None:
    tripped = cli("approve", "r-000000", **{marker: "1"})
    assert tripped.returncode == 1 and marker in tripped.stderr
    entries = audit_once(("approve", "refused"))
    assert any(marker in e.get("detail", "") for e in entries)


def test_policy_check_reads_the_project_file_of_cwd_and_warns(policy: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".process-mcp").mkdir(parents=True)
    (project / ".process-mcp" / "policy.toml").write_text(
        "[[rule]]\nid = 'ok-deploy'\nmatch = ['npm', 'run', 'deploy']\ndecision = 'allow'\n"
        "[[rule]]\nid = 'no-migrate'\nmatch = ['npm', 'run', 'migrate']\ndecision = 'deny'\n"
        "[limits]\nmax_running = 5\n"
    )
    policy.write_text(POLICY + "\n[limits]\nmax_running = 2\n")
    migrate = cli("policy", "check", "--json", "--cwd", str(project), "--", "npm", "run", "migrate")
    assert migrate.returncode == 1 and json.loads(migrate.stdout)["rule"] == "no-migrate"
    assert "allow rule 'ok-deploy' ignored" in migrate.stderr
    assert "max_running ignored (higher than the person's limit)" in migrate.stderr
    deploy = cli("policy", "check", "--cwd", str(project), "--", "npm", "run", "deploy")
    assert deploy.returncode == 1  # the project's allow rule cannot lift the person's deny
    elsewhere = cli("policy", "check", "--cwd", str(tmp_path), "--", "npm", "run", "migrate")
    assert elsewhere.returncode == 0 and not elsewhere.stderr


def test_the_policy_file_is_found_in_xdg_config_home_else_dot_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from process_mcp.core.policy import user_policy_path

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_policy_path() == tmp_path / "xdg" / "process-mcp" / "policy.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_policy_path() == tmp_path / "home" / ".config" / "process-mcp" / "policy.toml"
    path = tmp_path / "home" / ".config" / "process-mcp" / "policy.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[[rule]]\nid = 'no-ls'\nmatch = ['ls']\ndecision = 'deny'\n")
    env = {k: v for k, v in person_env().items() if k != "XDG_CONFIG_HOME"}
    checked = subprocess.run(
        [*CLI, "policy", "check", "--json", "--", "ls"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**env, "HOME": str(tmp_path / "home")},
    )
    assert (
        checked.returncode == 1
        and json.loads(checked.stdout)["source"] == f"~/{path.relative_to(tmp_path / 'home')}:1"
    )


def test_audit_since_takes_a_duration(policy: Path) -> None:
    assert cli("policy", "check", "--", "npm", "run", "deploy").returncode == 1
    bad = cli("audit", "--since", "soon")
    assert bad.returncode == 2 and "--since 'soon'" in bad.stderr
    assert cli("audit", "--since", "30s", "--json").returncode == 0
