"""The supervisor protocol's one definition: every message round-trips through its encoder
and decoder, a bad field is refused where it is decoded (naming it), the handshake stays
readable by older protocols, and the wire documents match the core shapes they carry."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest

from process_mcp.core.logs.query import LogAnswer, LogQuery
from process_mcp.core.options import RestartChanges, StartOptions, StartRequest
from process_mcp.core.records import ProcessRecord
from process_mcp.core.settings import RunSettings
from process_mcp.core.spawn.stdin import InputReceipt
from process_mcp.core.waiting import MAX_TAIL_LINES
from process_mcp.supervisor.protocol import (
    PROTOCOL_VERSION,
    Cancel,
    ErrorInfo,
    Event,
    Hello,
    ProtocolError,
    Refused,
    Request,
    Response,
    Welcome,
    decode,
    encode,
    ops,
    to_wire,
)
from process_mcp.supervisor.protocol.documents import (
    Entry,
    FactsDoc,
    HistoryStats,
    Listed,
    LogAnswerDoc,
    LogQueryArgs,
    PastDoc,
    PendingDoc,
    ReceiptDoc,
    RecordDoc,
)

RECORD = ProcessRecord("web1", "npm", ["run", "dev"], "/srv", {"A": "1"}, True, pid=42)
DOC = RecordDoc.from_public(RECORD.public())
ENTRY = Entry(DOC, 7)
LISTED = Listed(
    "web1", 42, "running", "npm run dev", "/srv", "t0", "self", "web", listening_ports=[8080]
)
ANSWER = LogAnswerDoc(["a", "b"], [1, 2], 2, 2, 0, 0, 0, 0, 0, 0, 1, 2)
PAST = PastDoc("old1", 2, "exited", "true", [], "/", None, "t0", "t1", 0.5, 0, None, 10, 3)
FACTS = FactsDoc(1.5, 1024, 2, [8080], 0.25, 99)

REQUESTS: list[Any] = [
    ops.Snapshot(),
    StartRequest(
        "sh",
        ("-c", "echo hi"),
        cwd="sub",
        env={"A": "1"},
        notify_on_exit=True,
        options=StartOptions(stdin="pipe", timeout_seconds=3.5, label="web"),
        folder="/srv",
        base_env={"PATH": "/bin"},
        keep=True,
        reuse=True,
        run_settings=RunSettings(0.5, 8192, 1024),
    ),
    ops.Stop("web1", force=True),
    ops.Status("web1"),
    ops.ReadLog("web1", LogQueryArgs(since=3, grep="err", stream="stderr", context=2)),
    ops.ListProcesses("/srv", all=True, facts=True),
    ops.Remove("web1"),
    ops.SendInput("web1", "y\n", eof=True),
    ops.Signal("web1", "SIGHUP"),
    ops.Restart("web1", "/srv", RestartChanges(args=["x"], env={"B": "2"}, pty=True)),
    ops.Wait("web1", 12.5, "ready", 8080, "http://x", "t1", 5),
    ops.WaitExits(["a", "b"], 3.0, True, "t2", 4),
    ops.FollowOutput(True, 0.5),
    ops.EndSession(),
    ops.Identify("claude-code", "2.1.0", "sess-1"),
    ops.PendingList(),
    ops.Approve("r1", via="person", decline=False, tripwire=None),
    ops.Snapshot(2),
    ops.ListProcesses("/srv", ended=50, command_chars=500),
    ops.Info(),
    ops.SettingsQuery(),
    ops.Retire(now=True),
]
PENDING = PendingDoc(
    "r1", "start", "npm run deploy", "no-deploy", "policy.toml:7", "deploys", "person", False, 600
)
REPLIES: list[ops.Reply] = [
    ops.SnapshotReply([ENTRY], 7, 5.0, exits=[ENTRY]),
    ops.SnapshotReply([], 7, 5.0, history_problem="history.sqlite3 is read-only"),
    ops.StartReply(DOC, 7, True, HistoryStats(3, 1, 2.5)),
    ops.StopReply(DOC, 7, [99]),
    ops.StatusReply(DOC, 7, FACTS, "cgroup"),
    ops.StatusReply(past=PAST),
    ops.ReadLogReply(ANSWER, DOC, 7),
    ops.ReadLogReply(ANSWER, past=PAST),
    ops.ListReply([LISTED], older_ended=3, omitted=1),
    ops.EntryReply(DOC, 8),
    ops.InputReply(DOC, 7, ReceiptDoc(2, 0, True)),
    ops.WaitReply(DOC, 7, True, "pattern", 0.5, ["ready"], 4, "ready", 3),
    ops.WaitExitsReply(False, "timeout", 3.0, [ENTRY], [], {"web1": ["bye"]}),
    ops.FollowReply(True),
    ops.EndSessionReply(["web1"]),
    ops.IdentifyReply(),
    ops.PendingReply([PENDING]),
    ops.ApproveReply(approved=PENDING, recorded=True),
    ops.SnapshotReply([ENTRY], 7, 5.0, {"PROCESS_MCP_DISK_CAP": "1024"}, more=True),
    ops.InfoReply("0.1", 7, 1.5, "cgroup", {"A": "1"}, {"stop_grace": 5.0}, 1, 2, 3, {}),
    ops.SettingsReply({"PROCESS_MCP_CGROUPS": "1"}, 7),
    ops.RetireReply(["web1"], 7),
]
EVENTS: list[tuple[str, Any]] = [
    ("changed", ENTRY),
    ("exited", ENTRY),
    ("removed", ops.Removed("web1", 9)),
    ("output", ops.Output("web1")),
    ("progress", ops.Progress("t1", 1.0, "waiting")),
    ("history", ops.HistoryState("history.sqlite3 is read-only")),
    ("history", ops.HistoryState(None)),
]


def wire(message: Any) -> Any:
    """Through the socket's bytes and back, as a peer reads it."""
    return decode(encode(to_wire(message)))


def test_every_envelope_message_round_trips() -> None:
    messages = [
        Hello("0.1.0", "cli", 42, replace_if_idle=True),
        Welcome("0.1.0", 7, "s3", 1024),
        Refused("version_mismatch", "old", "0.0.9", 7, 1, retiring=True),
        Request(5, "wait", {"id": "web1"}),
        Cancel(5),
        Response(5, {"ok": [1, 2]}),
        Response(None, error=ErrorInfo("bad_message", "not JSON")),
        Event("exited", 12, {"id": "web1"}),
    ]
    for message in messages:
        assert wire(message) == message


def test_every_op_request_reply_and_event_round_trips() -> None:
    assert {ops.op_name(request) for request in REQUESTS} == set(ops.OPS)  # none untested
    assert {type(reply) for reply in REPLIES} == {reply for _, reply in ops.OPS.values()}
    assert {name for name, _ in EVENTS} == set(ops.EVENTS)
    for request in REQUESTS:
        name, args = ops.encode_request(request)
        line = wire(Request(1, name, json.loads(json.dumps(args))))
        assert ops.decode_request(line.op, line.args) == request
    for reply in REPLIES:
        name = next(op for op, (_, kind) in ops.OPS.items() if kind is type(reply))
        ok = wire(Response(1, ops.encode_reply(reply))).ok
        assert ops.decode_reply(name, ok) == reply
    for name, payload in EVENTS:
        event = wire(Event(name, 1, ops.encode_event(name, payload)))
        assert ops.decode_event(event.event, event.data) == payload


def test_the_wire_has_one_spelling() -> None:
    """snake_case keys everywhere: no key of any message is camelCase (variable names in
    an environment are data, not keys of the protocol, and are upper case anyway)."""

    def keys(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [k for key, item in value.items() for k in (key, *keys(item))]
        if isinstance(value, list):
            return [k for item in value for k in keys(item)]
        return []

    bodies = [ops.encode_request(request)[1] for request in REQUESTS]
    bodies += [ops.encode_reply(reply) for reply in REPLIES]
    bodies += [ops.encode_event(name, payload) for name, payload in EVENTS]
    bodies.append(to_wire(Hello("1", "cli", 1, replace_if_idle=True)))
    spelled = {key for body in bodies for key in keys(json.loads(json.dumps(body)))}
    assert "replace_if_idle" in spelled and "exit_code" in spelled and "matched_line" in spelled
    assert not {key for key in spelled if re.search("[a-z][A-Z]", key)}


@pytest.mark.parametrize(
    ("op", "args", "field"),
    [
        ("start", {"command": "true", "colour": "red"}, "'colour'"),
        ("start", {"command": "true", "options": {"label": "x", "nice": 5}}, "'options.nice'"),
        ("stop", {"id": "a", "force": True, "now": True}, "'now'"),
        ("wait", {"id": "a", "timeout": 1, "patern": "x"}, "'patern'"),
    ],
)
def test_an_unknown_field_is_refused_naming_it(op: str, args: dict, field: str) -> None:
    with pytest.raises(ProtocolError, match=f"unknown field {field}") as refused:
        ops.decode_request(op, args)
    assert refused.value.code == "bad_request"


def test_unknown_fields_in_replies_and_envelopes_are_refused_too() -> None:
    ok = ops.encode_reply(ops.FollowReply(True))
    with pytest.raises(ProtocolError, match="unknown field 'extra'"):
        ops.decode_reply("follow_output", {**ok, "extra": 1})
    with pytest.raises(ProtocolError, match="unknown field 'priority'"):
        decode(b'{"id": 1, "op": "list", "args": {}, "priority": 9}')
    with pytest.raises(ProtocolError, match="unknown op 'explode'"):
        ops.decode_request("explode", {})


@pytest.mark.parametrize(
    ("op", "args", "said"),
    [
        ("start", {"command": 5}, "'command' must be a string, got 5"),
        ("start", {"command": "true", "args": "abc"}, "'args' must be a list of strings"),
        ("start", {"command": "true", "args": ["a", 1]}, "'args[1]' must be a string, got 1"),
        ("start", {"command": "true", "env": {"A": 1}}, "\"env['A']\" must be a string"),
        ("start", {"command": "true", "keep": 1}, "'keep' must be true or false, got 1"),
        ("wait", {"id": "a", "timeout": float("nan")}, "finite number from 0 to 86400, got nan"),
        ("wait", {"id": "a", "timeout": float("inf")}, "finite number from 0 to 86400, got inf"),
        ("wait", {"id": "a", "timeout": 1e308}, "number from 0 to 86400, got 1e+308"),
        ("wait_exits", {"ids": ["a"], "timeout": -1}, "number from 0 to 86400, got -1"),
        ("wait", {"id": "a", "tail_lines": 10**6}, f"from 0 to {MAX_TAIL_LINES}"),
        ("read_log", {"id": "a", "query": {"since": 1.5}}, "'query.since' must be a whole"),
        ("list", {"all": "yes"}, "'all' must be true or false, got 'yes'"),
    ],
)
def test_types_and_finite_ranges_are_checked_at_decode(op: str, args: dict, said: str) -> None:
    with pytest.raises(ProtocolError, match=said.replace("[", r"\[").replace("+", r"\+")) as bad:
        ops.decode_request(op, args)
    assert bad.value.code == "bad_request" and bad.value.message.startswith(f"{op}: ")


def test_the_hello_is_still_read_by_a_protocol_1_supervisor() -> None:
    """An idle older supervisor steps down only if it reads ``replace_if_idle`` in the
    hello: protocol 1's hello keys are the handshake's forever."""
    protocol_1_keys = {"protocol", "version", "kind", "pid", "replace_if_idle"}
    hello = to_wire(Hello("0.2.0", "mcp-stdio", 42, replace_if_idle=True))["hello"]
    assert set(hello) == protocol_1_keys and hello["replace_if_idle"] is True
    assert hello["protocol"] == PROTOCOL_VERSION > 1
    # ... and a newer peer's extra handshake keys are ignored, not refused.
    newer = decode(b'{"refused": {"code": "c", "message": "m", "retiring": true, "x": 1}}')
    assert newer == Refused("c", "m", retiring=True)


def test_the_wire_documents_match_the_core_shapes() -> None:
    assert DOC.public() == RECORD.public()  # same keys, same order: answers unchanged
    query = {f.name: f.default for f in dataclasses.fields(LogQuery) if f.init}
    del query["scan_lines"]  # the supervisor's own stepping, never sent
    del query["mask"]  # the supervisor's own redaction of lines it cuts, never sent
    del query["partial_quiet"]  # the supervisor's own wait for a partial line, never sent
    assert {f.name: f.default for f in dataclasses.fields(LogQueryArgs)} == query
    assert [f.name for f in dataclasses.fields(LogAnswerDoc)] == [
        f.name for f in dataclasses.fields(LogAnswer)
    ]
    assert [f.name for f in dataclasses.fields(ReceiptDoc)] == [
        f.name for f in dataclasses.fields(InputReceipt)
    ]
    assert ops.MAX_TAIL_LINES == MAX_TAIL_LINES
    listed = Listed("web1", None, "exited", "npm run dev", "/srv", "t0", "kept", exit_code=1)
    assert list(listed.public()) == [
        *("id", "pid", "status", "commandLine", "cwd", "startedAt"),
        *("exitCode", "signal", "endedAt", "owner"),
    ]
    assert "logDroppedBytes" not in PAST.public() and PAST.public()["exitCode"] == 0
