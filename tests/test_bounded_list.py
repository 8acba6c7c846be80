"""``list`` and the front-end's start-up ``snapshot`` stay bounded whatever the records hold
and however many ended: running processes plus the newest ended ones (``ended``),
``olderEnded`` for the rest, command lines cut (and said so), snapshots in pages.

In process: the service behind socket pairs (what a front-end and the person's CLI talk
to), real processes, a real history."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import service_session, service_supervisor

from process_mcp.core.options import StartRequest
from process_mcp.core.retention import EndedRecords
from process_mcp.supervisor.client import SupervisorClient
from process_mcp.supervisor.protocol import ops as op
from process_mcp.supervisor.remote import RecordMirror, RemoteManager
from process_mcp.supervisor.service import ProcessService
from process_mcp.supervisor.transport import SupervisorServer

pytestmark = pytest.mark.anyio
# 1 MB of arguments (an argument may hold 128 KiB): nine such runs once locked lists out
BIG = ["x" * 100_000] * 10


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SupervisorServer]:
    async with service_supervisor(tmp_path) as supervisor:
        yield supervisor


def service_of(server: SupervisorServer) -> ProcessService:
    handler = server.handler
    assert isinstance(handler, ProcessService)
    return handler


async def session(server: SupervisorServer, folder: Path) -> RemoteManager:
    return await service_session(server, folder)


async def ended_runs(remote: RemoteManager, count: int, *args: str) -> list[str]:
    """``count`` runs of ``true``, each ended before the next starts (ends in start order,
    at least a millisecond apart: ``endedAt`` has millisecond precision)."""
    ids = []
    for n in range(count):
        ids.append((await remote.start(StartRequest("true", [str(n), *args]))).id)
        await remote.wait_for_exits(ids[-1:], True, 30.0)
        time.sleep(0.002)
    return ids


async def raw_list(remote: RemoteManager, **args: object) -> dict:
    """The list op's answer as it crosses the socket."""
    assert remote.client is not None
    return await remote.client.request("list", {"folder": remote.folder, **args})


async def test_list_shows_running_and_the_ten_newest_ended_then_counts_the_rest(
    server: SupervisorServer, tmp_path: Path
) -> None:
    remote = await session(server, tmp_path)
    running = [await remote.start(StartRequest("sleep", ["300"])) for _ in range(3)]
    ids = await ended_runs(remote, 25)
    summaries, older, omitted = await remote.list_summaries()
    listed = [s["id"] for s in summaries]
    assert set(listed) == {r.id for r in running} | set(ids[-10:])
    assert (older, omitted) == (15, 0)
    assert [s["id"] for s in summaries if s["status"] != "running"] == ids[-10:]  # start order
    none, older, _ = await remote.list_summaries(ended=0)
    assert {s["id"] for s in none} == {r.id for r in running} and older == 25
    every, older, _ = await remote.list_summaries(ended=1000)
    assert len(every) == 28 and older == 0
    answer = await raw_list(remote)
    assert (answer["older_ended"], answer["omitted"]) == (15, 0)
    with pytest.raises(Exception, match=r"ended.*1001"):
        await raw_list(remote, ended=1001)
    await remote.end_session()


async def test_ended_asked_for_reaches_into_the_history(
    server: SupervisorServer, tmp_path: Path
) -> None:
    service_of(server).manager.ended_held = EndedRecords(most=5)
    remote = await session(server, tmp_path)
    ids = await ended_runs(remote, 20)
    default, older, _ = await remote.list_summaries()
    assert [s["id"] for s in default] == ids[-5:] and older == 0  # memory holds five
    deeper, _, _ = await remote.list_summaries(ended=12)
    assert [s["id"] for s in deeper] == ids[-12:]  # seven more from the history
    assert deeper[0]["status"] == "exited" and deeper[0]["command"] == "true 8"
    await remote.end_session()


async def test_other_sessions_ended_processes_over_an_hour_old_are_left_out_unless_asked(
    server: SupervisorServer, tmp_path: Path
) -> None:
    now = [0.0]
    service_of(server).manager.ended_held = EndedRecords(seconds=1e9, clock=lambda: now[0])
    alice, bob = await session(server, tmp_path), await session(server, tmp_path)
    theirs = await ended_runs(alice, 2)
    now[0] += 3601.0
    mine = await ended_runs(bob, 1)
    default, _, _ = await bob.list_summaries()
    assert [s["id"] for s in default] == mine
    asked, _, _ = await bob.list_summaries(ended=10)
    assert {s["id"] for s in asked} == {*theirs, *mine}
    await alice.end_session()
    await bob.end_session()


async def test_nine_runs_with_a_megabyte_of_args_lock_nobody_out(
    server: SupervisorServer, tmp_path: Path
) -> None:
    """Before: list and a new front-end's snapshot carried every record with its args in
    one message; after nine such runs every list failed with message_too_large and every
    new MCP front-end died at start-up."""
    remote = await session(server, tmp_path)
    ids = await ended_runs(remote, 9, *BIG)
    still = await remote.start(StartRequest("sh", ["-c", "exec sleep 300", *BIG]))
    answer = await raw_list(remote, all=True, facts=True)
    size = len(json.dumps(answer["processes"]))  # not the ends it may carry (exits)
    assert len(answer["processes"]) == 10 and size < 10 * 1024, size
    line = next(p for p in answer["processes"] if p["id"] == still.id)
    assert line["command_cut"] is True and line["command_line"].endswith("…")
    assert len(line["command_line"]) == 120 and "args" not in line
    summaries, _, _ = await remote.list_summaries()
    assert all(s["commandCut"] for s in summaries)
    newcomer = await session(server, tmp_path)  # its snapshot comes in pages
    assert {r.id for r in newcomer.records()} == {*ids, still.id}
    assert newcomer.get(still.id).args == [
        "-c",
        "exec sleep 300",
        *BIG,
    ]  # the mirror holds whole records
    await remote.stop(still.id)
    await newcomer.end_session()
    await remote.end_session()


async def test_a_snapshot_in_pages_keeps_what_started_between_its_pages(
    server: SupervisorServer, tmp_path: Path
) -> None:
    remote = await session(server, tmp_path)
    await ended_runs(remote, 5, *BIG)
    newcomer = RemoteManager(RecordMirror(), folder_fallback=lambda: str(tmp_path))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    await server.connect_local(theirs)
    newcomer.client = await SupervisorClient.connect(ours, kind="test", on_event=newcomer.on_event)
    newcomer.mirror.begin_replace()  # what RemoteManager.snapshot does, step by step
    entries = []
    answer = await newcomer.call(op.Snapshot(0))
    assert answer.more and len(answer.records) < 5
    late = await remote.start(StartRequest("sleep", ["300"]))  # heard as an event between pages
    deadline = time.monotonic() + 5
    while newcomer.find(late.id) is None and time.monotonic() < deadline:
        await newcomer.call(op.ListProcesses(str(tmp_path)))  # lets events arrive
    page = 0
    while True:
        entries.extend(answer.records)
        for entry in answer.records:
            newcomer.mirror.apply(entry)
        if not answer.more:
            break
        page += 1
        answer = await newcomer.call(op.Snapshot(page))
    assert late.id not in {entry.record.id for entry in entries}
    newcomer.mirror.end_replace(entries)
    assert newcomer.find(late.id) is not None and len(newcomer.records()) == 6
    await remote.stop(late.id)
    await newcomer.end_session()
    await remote.end_session()


async def test_the_list_tool_takes_ended_and_answers_older_ended(tmp_path: Path) -> None:
    from support import mcp_client

    async with mcp_client(cwd=str(tmp_path), PROCESS_MCP_STANDALONE="1") as client:
        ids = []
        for n in range(12):
            ids.append((await client.ok("start", {"command": "true", "args": [str(n)]}))["id"])
            await client.ok("wait", {"id": ids[-1]})
            time.sleep(0.002)
        answer = await client.ok("list")
        assert [p["id"] for p in answer["processes"]] == ids[-10:]
        assert answer["olderEnded"] == 2
        three = await client.ok("list", {"ended": 3})
        assert [p["id"] for p in three["processes"]] == ids[-3:] and three["olderEnded"] == 9
        every = await client.ok("list", {"ended": 1000})
        assert len(every["processes"]) == 12 and "olderEnded" not in every
        text = await client.fail("list", {"ended": 1001})
        assert "ended" in text and "1000" in text
        long = await client.ok("start", {"command": "sleep", "args": ["300", "y" * 500]})
        line = next(p for p in (await client.ok("list"))["processes"] if p["id"] == long["id"])
        assert line["commandCut"] is True and len(line["command"]) == 120
        await client.ok("stop", {"id": long["id"]})


async def test_ends_of_runs_with_a_megabyte_of_args_reach_their_session_in_bounded_answers(
    server: SupervisorServer, tmp_path: Path
) -> None:
    """Before: every answer carried all the ends queued for its session, each with its whole
    record; nine runs with 1 MB of args ended by another session made the starter's next
    answer 9 MB, refused as message_too_large (and those ends were never reported)."""
    starter = await session(server, tmp_path)
    person = await session(server, tmp_path)
    reported: list[str] = []
    starter.digest_listeners.append(lambda ended, _: reported.extend(r.id for r in ended))
    big = StartRequest("sh", ["-c", "exec sleep 300", *BIG])  # sleep itself refuses BIG
    ids = [(await starter.start(big)).id for _ in range(9)]
    assert reported == [] and all(starter.get(i).running for i in ids)
    for process_id in ids:
        await person.stop(process_id, force=True)
    answers = 0
    while len(reported) < len(ids) and answers < 20:
        summaries, _, _ = await starter.list_summaries()  # each answer is a call that works
        assert {s["id"] for s in summaries} >= set(ids)
        answers += 1
    assert sorted(reported) == sorted(ids), (reported, answers)  # each end once, none lost
    assert answers > 1  # the ends came over several answers, each under the message cap
    await person.end_session()
    await starter.end_session()
