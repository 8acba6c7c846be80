"""Flat memory for a long-lived supervisor: ended processes leave its memory (never its
history) after an hour or beyond a thousand held, their ids still answer ``get-status``,
``get-log`` and ``wait`` from the history, and no session's records lock another out.

In process (the service behind a socket pair, real ``true`` runs, a real history): the
process boundary is not what these tests are about, and thousands of runs must be fast."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import eventually

from process_mcp.core import Settings, limits
from process_mcp.core.errors import InvalidRequest
from process_mcp.core.logs.query import LogQuery
from process_mcp.core.options import StartRequest
from process_mcp.core.retention import MOST_HELD, EndedRecords
from process_mcp.core.waiting import WaitCondition
from process_mcp.supervisor.client import SupervisorClient
from process_mcp.supervisor.paths import SupervisorPaths
from process_mcp.supervisor.remote import RecordMirror, RemoteManager
from process_mcp.supervisor.service import ProcessService
from process_mcp.supervisor.transport import SupervisorServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ProcessService]:
    settings = Settings(state_dir=tmp_path / "state", stop_grace=1.0, exit_drain_grace=0.5)
    paths = SupervisorPaths(runtime_dir=tmp_path / "run", state_dir=tmp_path / "state")
    handler = ProcessService(settings)
    server = SupervisorServer(handler, paths)
    handler.server = server  # type: ignore[attr-defined]  # for session()
    try:
        yield handler
    finally:
        await server.close()


async def session(service: ProcessService, folder: Path) -> RemoteManager:
    remote = RemoteManager(RecordMirror(), folder_fallback=lambda: str(folder))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    await service.server.connect_local(theirs)  # type: ignore[attr-defined]
    remote.client = await SupervisorClient.connect(ours, kind="test", on_event=remote.on_event)
    await remote.snapshot()
    return remote


async def run_many(remote: RemoteManager, count: int, batch: int = 40) -> list[str]:
    """``count`` short runs that each print their number, ``batch`` at a time; their ids
    in start order once every one has ended."""
    ids: list[str] = []
    for first in range(0, count, batch):
        started = await asyncio.gather(
            *(
                remote.start(StartRequest("echo", [f"run {n}"]))
                for n in range(first, min(first + batch, count))
            )
        )
        ids.extend(record.id for record in started)
        await remote.wait_for_exits([r.id for r in started], True, 30.0)
    return ids


async def test_beyond_a_thousand_ended_the_oldest_leave_memory_and_answer_from_history(
    service: ProcessService, tmp_path: Path
) -> None:
    remote = await session(service, tmp_path)
    count = MOST_HELD + 200
    ids = await run_many(remote, count)
    manager = service.manager
    assert await eventually(lambda: len(manager.records()) <= MOST_HELD, timeout=10)
    gone = [process_id for process_id in ids if manager.find(process_id) is None]
    assert len(gone) >= 200 and gone[0] == ids[0], "the oldest ends leave first"
    # every table of the service let them go too, and so did the front-end's mirror
    assert not set(gone) & (set(service.owner) | set(service.touched) | set(service.started_by))
    assert await eventually(lambda: remote.find(ids[0]) is None, timeout=5)
    assert len(remote.records()) <= MOST_HELD
    # their ids still answer, from the history
    record, _facts, past = await remote.status(ids[0])
    assert record is None and past is not None and past.status == "exited"
    whose, log = await remote.read_log_of(ids[0], LogQuery(last_lines=5))
    assert log.lines == ["run 0"] and whose.id == ids[0]
    waited = await remote.wait_for(ids[0], WaitCondition(), 5.0, tail_lines=3)
    assert waited.met and waited.reason == "exited" and waited.tail == ["run 0"]
    assert waited.record.status.value == "exited" and remote.find(ids[0]) is None
    pattern = await remote.wait_for(ids[1], WaitCondition(port=1), 5.0)
    assert not pattern.met and pattern.reason == "exited" and pattern.tail == ["run 1"]
    outcome, tails = await remote.wait_for_exits([ids[2], ids[-1]], True, 5.0, tail_lines=1)
    assert outcome.met and {r.id for r in outcome.ended} == {ids[2], ids[-1]}
    assert tails == {ids[2]: ["run 2"], ids[-1]: [f"run {count - 1}"]}
    # a removed id of this supervisor stays unknown (it is not 'left memory')
    await remote.remove(ids[-1])
    assert await remote.status(ids[-1]) == (None, None, None)
    await remote.end_session()


async def test_an_ended_process_leaves_memory_an_hour_after_its_end(
    service: ProcessService, tmp_path: Path
) -> None:
    now = [1000.0]
    service.manager.ended_held = EndedRecords(clock=lambda: now[0])
    remote = await session(service, tmp_path)
    first = (await run_many(remote, 3))[0]
    assert service.manager.find(first) is not None
    now[0] += 3599.0
    service.manager.forget_due()
    assert service.manager.find(first) is not None  # not an hour yet
    now[0] += 1.0
    await remote.start(StartRequest("true"))  # any start lets due records go
    assert service.manager.find(first) is None
    assert (await remote.status(first))[2] is not None
    await remote.end_session()


async def test_a_daemon_left_behind_keeps_its_record_in_memory(
    service: ProcessService, tmp_path: Path
) -> None:
    service.manager.ended_held = EndedRecords(most=0)
    remote = await session(service, tmp_path)
    # the leader exits at once; a member of its group lives on (holding no pipe)
    leader = await remote.start(
        StartRequest("sh", ["-c", "sleep 300 >/dev/null 2>&1 </dev/null & exit 0"], keep=True)
    )
    await remote.wait_for(leader.id, WaitCondition(), 10.0)
    service.manager.forget_due()
    assert service.manager.find(leader.id) is not None, "its daemon is reachable by id"
    await remote.stop(leader.id)  # ends what it left
    await remote.end_session()


async def test_ended_records_of_a_session_never_lock_others_out(
    service: ProcessService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: at MAX_PROCESSES records kept, ended or not, every session's start was
    refused, even after the session that made them had left."""
    monkeypatch.setattr(limits, "MAX_PROCESSES", 50)
    monkeypatch.setattr(limits, "MAX_SESSION_PROCESSES", 50)  # short runs must not count
    alice = await session(service, tmp_path)
    await run_many(alice, 120)  # more ended runs than the cap
    await alice.end_session()
    bob = await session(service, tmp_path)
    assert (await bob.start(StartRequest("true"))).id


async def test_the_running_cap_is_per_session(
    service: ProcessService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_SESSION_PROCESSES", 2)
    alice, bob = await session(service, tmp_path), await session(service, tmp_path)
    held = [await alice.start(StartRequest("sleep", ["300"])) for _ in range(2)]
    with pytest.raises(InvalidRequest, match=r"this session has 2 processes running, .* is 2"):
        await alice.start(StartRequest("sleep", ["300"]))
    assert (await bob.start(StartRequest("true"))).id  # another session is not locked out
    await alice.stop(held[0].id)
    assert (await alice.start(StartRequest("true"))).id  # room again
    await alice.end_session()
    await bob.end_session()
