"""Redaction: the masks themselves (pure), then what a session reads through the
supervisor's service from real processes: secrets split across pipe reads, env values,
wait tails and matched lines, the person's raw view, the person's switch."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import service_session, service_supervisor

from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.logs.query import LogQuery
from process_mcp.core.logs.redact import BUILTIN_PATTERNS, Redactor
from process_mcp.core.options import StartRequest
from process_mcp.core.waiting import WaitCondition
from process_mcp.supervisor.protocol import ops as op
from process_mcp.supervisor.protocol.documents import LogQueryArgs
from process_mcp.supervisor.remote import RemoteManager
from process_mcp.supervisor.transport import SupervisorServer

GITHUB = "ghp_" + "A1b2C3d4" * 5
SAMPLES = {  # one line a child might print, per built-in pattern
    "private-key": "-----BEGIN OPENSSH PRIVATE KEY-----",
    "github-token": f"token={GITHUB}",
    "aws-access-key": "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "slack-token": "SLACK=xoxb-123456789012-abcdefABCDEF",
    "anthropic-key": "ANTHROPIC=sk-ant-api03-" + "x" * 40,
    "stripe-key": "stripe sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "openai-key": "openai sk-proj-" + "z" * 40,
    "google-api-key": "key=AIza" + "S" * 35,
    "jwt": "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_X",
    "bearer": "curl -H 'Authorization: Bearer abcdef123456.xyz'",
    "url-password": "DATABASE=postgres://app:hunter2hunter2@db.internal:5432/app",
}


def test_every_builtin_pattern_has_a_sample() -> None:
    assert set(SAMPLES) == {rule for rule, _ in BUILTIN_PATTERNS}


@pytest.mark.parametrize(("rule", "line"), SAMPLES.items())
def test_builtin_patterns_mask_their_token(rule: str, line: str) -> None:
    masked, count = Redactor.for_run({}).line(line)
    assert count >= 1 and f"[redacted:{rule}]" in masked, masked
    secret = line.split()[-1].split("=")[-1].strip("'")
    assert secret not in masked or rule in ("private-key",)


def test_secret_env_values_are_masked_by_name() -> None:
    env = {
        "HUBSPOT_SERVICE_KEY": "pat-na1-0123456789",  # hermes-agent #43025: no known prefix
        "DB_PASSWORD": "correct horse",
        "GITHUB_TOKEN": "short",  # under 8 characters: left alone
        "HOME": "/home/someone",  # not a secret name
        "DATABASE_URL": "postgres://x@y/z",
        "SENTRY_DSN": "https://abc@o1.ingest/1",
    }
    redactor = Redactor.for_run(env)
    masked, count = redactor.lines(
        [
            "HUBSPOT_SERVICE_KEY=pat-na1-0123456789",
            "pw: correct horse; again correct horse",
            "short /home/someone",
            "postgres://x@y/z and https://abc@o1.ingest/1",
        ]
    )
    assert masked == [
        "HUBSPOT_SERVICE_KEY=[redacted:env:HUBSPOT_SERVICE_KEY]",
        "pw: [redacted:env:DB_PASSWORD]; again [redacted:env:DB_PASSWORD]",
        "short /home/someone",
        "[redacted:env:DATABASE_URL] and [redacted:env:SENTRY_DSN]",
    ]
    assert count == 5


def test_ordinary_lines_are_untouched() -> None:
    lines = ["  VITE v5.0.0  ready in 312 ms", "GET /api/users 200 4ms", "sk-8 is a model name"]
    assert Redactor.for_run({"API_KEY": "not-in-these-lines"}).lines(lines) == (lines, 0)


def test_a_private_key_block_is_masked_whole_and_counted_once() -> None:
    lines = [
        "before",
        "-----BEGIN RSA PRIVATE KEY-----",
        "MIIEow" + "A" * 58,
        "=x=",
        "-----END RSA PRIVATE KEY-----",
        "after",
    ]
    masked, count = Redactor.for_run({}).lines(lines)
    assert masked[0] == "before" and masked[-1] == "after"
    assert all(line == "[redacted:private-key]" for line in masked[1:5])
    assert count == 1


def test_policy_patterns_are_added() -> None:
    redactor = Redactor.for_run({}, [("acme", r"acme_[A-Za-z0-9]{8}")])
    assert redactor.line("id acme_abcd1234 ok") == ("id [redacted:acme] ok", 1)


# ------------------------------------------------------------ through the service
pytestmark = pytest.mark.anyio


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[SupervisorServer]:
    async with service_supervisor(tmp_path) as server:
        yield server


async def session(server: SupervisorServer, folder: Path, kind: str = "mcp-stdio") -> RemoteManager:
    return await service_session(server, folder, kind)


SPLIT_WRITER = (
    "import os, sys, time\n"
    "token = sys.argv[1]\n"
    "os.write(1, ('deploy with ' + token[:10]).encode())\n"  # one read of the pipe...
    "time.sleep(0.3)\n"
    "os.write(1, (token[10:] + ' done\\n').encode())\n"  # ...and the rest in another
    "print('key is', os.environ['MY_API_KEY'], flush=True)\n"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)


async def test_what_an_agent_reads_is_masked_and_the_person_reads_raw(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    agent = await session(supervisor, tmp_path)
    person = await session(supervisor, tmp_path, kind="cli")
    started = await agent.start(
        StartRequest(
            sys.executable, ["-c", SPLIT_WRITER, GITHUB], env={"MY_API_KEY": "s3cr3t-value-123"}
        )
    )
    outcome = await agent.wait_for(
        started.id, WaitCondition(pattern=LinePattern.compile("key is")), 20, tail_lines=5
    )
    assert outcome.met and outcome.matched_line == "key is [redacted:env:MY_API_KEY]"
    assert outcome.tail[0] == "deploy with [redacted:github-token] done"
    assert outcome.redacted == 3  # two in the tail, one in matchedLine
    _, answer = await agent.read_log_of(started.id, LogQuery(last_lines=10))
    assert answer.lines[:2] == [
        "deploy with [redacted:github-token] done",
        "key is [redacted:env:MY_API_KEY]",
    ]
    assert answer.redacted == 2
    raw = await person.call(op.ReadLog(started.id, LogQueryArgs(last_lines=10)))
    assert raw.answer.lines[:2] == [f"deploy with {GITHUB} done", "key is s3cr3t-value-123"]
    assert raw.answer.redacted == 0
    masked = await person.call(op.ReadLog(started.id, LogQueryArgs(last_lines=10), redact=True))
    assert masked.answer.redacted == 2
    log_files = list((tmp_path / "state").rglob("*"))
    on_disk = b"".join(p.read_bytes() for p in log_files if p.is_file() and "runs" in p.parts)
    assert GITHUB.encode() in on_disk  # the log on disk stays raw
    await agent.stop(started.id)


async def test_only_the_persons_own_file_turns_redaction_off(
    supervisor: SupervisorServer, tmp_path: Path, isolated_policy: Path
) -> None:
    project = tmp_path / "project"
    (project / ".process-mcp").mkdir(parents=True)
    (project / ".process-mcp" / "policy.toml").write_text("[redact]\nenabled = false\n")
    agent = await session(supervisor, project)
    started = await agent.start(StartRequest("echo", [GITHUB]))
    await agent.wait_for(started.id, WaitCondition(), 20)
    _, answer = await agent.read_log_of(started.id, LogQuery())
    assert answer.lines == ["[redacted:github-token]"]  # the project file cannot
    isolated_policy.parent.mkdir(parents=True)
    isolated_policy.write_text("[redact]\nenabled = false\n")
    _, answer = await agent.read_log_of(started.id, LogQuery())
    assert answer.lines == [GITHUB] and answer.redacted == 0
    os.unlink(isolated_policy)


# ------------------------------------------------------------- found by the audit
@pytest.mark.parametrize(
    "name",
    [
        "GITHUB_TOKEN",
        "npm_token",
        "CLIENT_SECRET",
        "SECRETS_FILE_CONTENT",
        "DB_PASSWORD",
        "MYSQL_PASSWD",
        "STRIPE_KEY",
        "OPENAI_API_KEY",
        "OPENAI_API_KEY_2",
        "GCP_CREDENTIALS",
        "SSH_PRIVATE",
        "PRIVATE_SIGNING",
        "DATABASE_URL",
        "SENTRY_DSN",
    ],
)
def test_every_secret_name_shape_is_masked_from_eight_characters(name: str) -> None:
    assert Redactor.for_run({name: "12345678"}).line("v=12345678") == (
        f"v=[redacted:env:{name}]",
        1,
    )
    assert Redactor.for_run({name: "1234567"}).line("v=1234567") == ("v=1234567", 0)


@pytest.mark.parametrize(
    "name", ["KEYBOARD_LAYOUT", "MONKEY", "HOME", "PATH", "DATABASE_URL_FILE_X", "DSN_MODE"]
)
def test_ordinary_names_are_not_secret(name: str) -> None:
    assert Redactor.for_run({name: "ordinary-value"}).line("ordinary-value")[1] == 0


@pytest.mark.parametrize(
    ("rule", "token"),
    [
        ("github-token", "gho_" + "a1B2" * 9),
        ("github-token", "ghs_" + "a1B2" * 9),
        ("github-token", "github_pat_11ABCDEFG0" + "x" * 40),
        ("slack-token", "xoxa-2-1234567890-abcdef"),
        ("slack-token", "xoxp-1234567890-abcdef"),
        ("slack-token", "xoxr-1234567890-abcdef"),
        ("slack-token", "xoxs-1234567890-abcdef"),
        ("anthropic-key", "sk-ant-admin01-" + "k" * 30),
        ("openai-key", "sk-" + "T3BlbkFJ" * 4),
        ("aws-access-key", "AKIA" + "Z" * 16),
        ("jwt", "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlLXBhcnQ"),
    ],
)
def test_each_named_token_family_is_masked(rule: str, token: str) -> None:
    masked, count = Redactor.for_run({}).line(f"value: {token} end")
    assert masked == f"value: [redacted:{rule}] end" and count == 1


async def test_a_wait_on_a_process_an_earlier_supervisor_ran_is_masked(tmp_path: Path) -> None:
    async with service_supervisor(tmp_path) as first:
        agent = await service_session(first, tmp_path, "mcp-stdio")
        started = await agent.start(StartRequest("echo", [f"deploy {GITHUB}"]))
        await agent.wait_for_exits([started.id], False, 20)
    async with service_supervisor(tmp_path) as later:
        agent = await service_session(later, tmp_path, "mcp-stdio")
        outcome = await agent.wait_for(started.id, WaitCondition(), 20, tail_lines=5)
        assert outcome.tail == ["deploy [redacted:github-token]"]
        assert outcome.redacted == 1


async def test_a_line_cut_to_fit_an_answer_never_shows_part_of_a_secret(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    secret = "s3cr3t-value-0123456789abcdef"
    line = "x" * 3000 + f" key={secret} token={GITHUB} end"
    agent = await session(supervisor, tmp_path)
    started = await agent.start(
        StartRequest(sys.executable, ["-c", f"print({line!r})"], env={"MY_API_KEY": secret})
    )
    await agent.wait_for_exits([started.id], False, 20)
    at = line.index(secret)
    for max_bytes in range(at, at + len(line) - at + 8, 3):  # the cut anywhere in them
        _, answer = await agent.read_log_of(started.id, LogQuery(max_bytes=max_bytes))
        text = "\n".join(answer.lines)
        assert secret[:4] not in text and GITHUB[:8] not in text, (max_bytes, text[at - 10 :])
    _, whole = await agent.read_log_of(started.id, LogQuery())
    assert whole.lines == [
        "x" * 3000 + " key=[redacted:env:MY_API_KEY] token=[redacted:github-token] end"
    ]
    assert whole.redacted == 2


async def test_logs_on_disk_are_private(supervisor: SupervisorServer, tmp_path: Path) -> None:
    agent = await session(supervisor, tmp_path)
    started = await agent.start(StartRequest("echo", [GITHUB]))
    await agent.wait_for_exits([started.id], False, 20)
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file() and "runs" in p.parts]
    assert files
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))


async def test_the_policies_own_patterns_mask_what_an_agent_reads(
    supervisor: SupervisorServer, tmp_path: Path, isolated_policy: Path
) -> None:
    isolated_policy.parent.mkdir(parents=True)
    isolated_policy.write_text('[redact]\npatterns = [{ id = "acme", regex = "acme_[0-9]{8}" }]\n')
    project = tmp_path / "project"
    (project / ".process-mcp").mkdir(parents=True)
    (project / ".process-mcp" / "policy.toml").write_text(
        '[redact]\npatterns = [{ id = "proj", regex = "proj-[a-z]{6}" }]\n'
    )
    agent = await session(supervisor, project)
    started = await agent.start(StartRequest("echo", ["acme_12345678 proj-abcdef plain"]))
    await agent.wait_for_exits([started.id], False, 20)
    _, answer = await agent.read_log_of(started.id, LogQuery())
    assert answer.lines == ["[redacted:acme] [redacted:proj] plain"] and answer.redacted == 2


async def test_a_wait_never_shows_part_of_a_secret_in_a_line_too_long_for_it(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    from process_mcp.core.logs.query import ANSWER_LINE_BYTES

    secret = "s3cr3t-value-0123456789abcdef"
    at = ANSWER_LINE_BYTES - 40  # the line is cut inside the secret
    line = "x" * at + f"{secret} token {GITHUB} end"
    agent = await session(supervisor, tmp_path)
    started = await agent.start(
        StartRequest(
            sys.executable,
            ["-c", f"print('ready'); print({line!r}, flush=True); import time; time.sleep(30)"],
            env={"MY_API_KEY": secret},
        )
    )
    try:
        outcome = await agent.wait_for(
            started.id, WaitCondition(pattern=LinePattern.compile("xx")), 20, tail_lines=2
        )
        assert outcome.met and outcome.matched_line is not None
        for text in (outcome.matched_line, *outcome.tail):
            assert secret[:4] not in text and GITHUB[:8] not in text, text[at - 10 : at + 60]
        assert outcome.matched_line[at:].startswith("[redacte")  # masked, then cut
        assert outcome.redacted >= 2  # in the tail and in the matched line
    finally:
        await agent.stop(started.id)
    ended, tails = await agent.wait_for_exits([started.id], False, 20, tail_lines=1)
    assert ended.met and len(tails[started.id]) == 1
    assert secret[:4] not in tails[started.id][0] and GITHUB[:8] not in tails[started.id][0]
