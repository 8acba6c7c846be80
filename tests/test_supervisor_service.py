"""The supervisor service behind the transport, in process: sessions over socket pairs
(the standalone path), real processes. Ownership, keep, scope, the exit digest, the
environment a child gets, and the front-end's record mirror."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import eventually, group_pids
from support import service_session, service_supervisor

from process_mcp.core import ProcessRecord
from process_mcp.core.errors import InvalidRequest, UnknownProcess
from process_mcp.core.logs.query import LogQuery
from process_mcp.core.options import StartRequest
from process_mcp.core.waiting import WaitCondition
from process_mcp.supervisor.protocol.documents import Entry, RecordDoc
from process_mcp.supervisor.remote import RecordMirror, RemoteManager
from process_mcp.supervisor.transport import SupervisorServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[SupervisorServer]:
    async with service_supervisor(tmp_path) as server:
        yield server


async def session(server: SupervisorServer, folder: Path) -> RemoteManager:
    """A front-end's session whose default folder is ``folder``, with its own mirror."""
    return await service_session(server, folder)


async def test_a_closed_session_stops_what_it_owns_and_nothing_else(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    alice, bob = await session(supervisor, tmp_path), await session(supervisor, tmp_path)
    owned = await alice.start(StartRequest("sleep", ["300"]))
    kept = await alice.start(StartRequest("sleep", ["300"], keep=True))
    others = await bob.start(StartRequest("sleep", ["300"]))
    assert {p["id"]: p["owner"] for p in await bob.listed()} == {
        owned.id: "other",
        kept.id: "kept",
        others.id: "self",
    }
    assert alice.client is not None
    await alice.client.close()  # a hang-up, as when a front-end is SIGKILLed
    assert await eventually(lambda: bob.get(owned.id).status.value == "stopped", timeout=10)
    assert group_pids(owned.pid or 0) == []
    assert bob.get(kept.id).running and bob.get(others.id).running
    assert await bob.status(kept.id) is not None
    await bob.stop(kept.id)
    await bob.end_session()  # answers once its processes are stopped
    assert group_pids(others.pid or 0) == []


async def test_restarting_a_process_whose_session_ended_takes_it_over(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    alice, bob = await session(supervisor, tmp_path), await session(supervisor, tmp_path)
    started = await alice.start(StartRequest("sleep", ["300"]))
    await alice.end_session()
    assert bob.get(started.id).status.value == "stopped"
    again = await bob.restart(started.id)
    assert again.running and [p["owner"] for p in await bob.listed()] == ["self"]
    await bob.end_session()
    assert group_pids(again.pid or 0) == []


async def test_list_is_scoped_to_the_default_folder_unless_all(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    (tmp_path / "one" / "deep").mkdir(parents=True)
    (tmp_path / "two").mkdir()
    one = await session(supervisor, tmp_path / "one")
    two = await session(supervisor, tmp_path / "two")
    here = await one.start(StartRequest("true"))
    deeper = await one.start(StartRequest("true", cwd="deep"))
    there = await two.start(StartRequest("true"))
    assert deeper.cwd == str((tmp_path / "one" / "deep").resolve())
    assert {p["id"] for p in await one.listed()} == {here.id, deeper.id}
    assert {p["id"] for p in await two.listed()} == {there.id}
    assert {p["id"] for p in await two.listed(everything=True)} == {here.id, deeper.id, there.id}
    for remote in (one, two):
        await remote.end_session()


async def test_exits_reach_the_sessions_concerned_in_their_next_answer(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    alice, bob = await session(supervisor, tmp_path), await session(supervisor, tmp_path)
    heard: dict[str, list[str]] = {"alice": [], "bob": []}
    digests: dict[str, list[str]] = {"alice": [], "bob": []}
    for name, remote in (("alice", alice), ("bob", bob)):
        remote.exit_listeners.append(lambda r, _, n=name: heard[n].append(r.id))
        remote.digest_listeners.append(
            lambda records, _, n=name: digests[n].extend(r.id for r in records)
        )
    started = await alice.start(StartRequest("sh", ["-c", "exit 3"]))
    assert await eventually(lambda: heard["alice"] == [started.id], timeout=10)
    assert bob.get(started.id).status.value == "crashed"  # bob's mirror follows anyway
    with pytest.raises(UnknownProcess):
        await alice.stop("nope00")  # an error answer leaves the digest queued
    assert digests["alice"] == []
    await alice.listed()
    assert digests["alice"] == [started.id]
    await bob.listed()
    assert heard["bob"] == [] and digests["bob"] == []  # bob never touched it
    await bob.read_log(started.id, LogQuery())  # now he has: the next end is his too
    await bob.restart(started.id)
    assert await eventually(lambda: heard["bob"] == [started.id], timeout=10)
    for remote in (alice, bob):
        await remote.end_session()


async def test_a_child_gets_the_front_ends_environment_not_the_supervisors(
    supervisor: SupervisorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONLY_IN_THE_SUPERVISOR", "leak")
    remote = await session(supervisor, tmp_path)
    remote.env = {
        "PATH": os.environ["PATH"],
        "PROCESS_MCP_TEST_TAG": os.environ["PROCESS_MCP_TEST_TAG"],
        "FRONT": "end",
    }
    started = await remote.start(
        StartRequest(
            "sh",
            ["-c", "echo ${FRONT}-${EXTRA}-${ONLY_IN_THE_SUPERVISOR:-absent}"],
            env={"EXTRA": "x"},
        )
    )
    outcome = await remote.wait_for(started.id, WaitCondition(), 10, tail_lines=5)
    assert outcome.met and outcome.tail == ["end-x-absent"]
    restarted = await remote.restart(started.id)  # a restart keeps the same environment
    await remote.wait_for(restarted.id, WaitCondition(), 10)
    lines = (await remote.read_log(started.id, LogQuery())).lines
    assert lines[0] == "end-x-absent" and lines[-1] == "end-x-absent"
    await remote.end_session()


async def test_core_errors_cross_the_wire_as_themselves(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    remote = await session(supervisor, tmp_path)
    await remote.start(StartRequest("sleep", ["300"]))
    with pytest.raises(UnknownProcess, match="'nope00'"):
        await remote.read_log("nope00", LogQuery())
    with pytest.raises(InvalidRequest, match="SIGFOO"):
        await remote.send_signal(remote.records()[0].id, "SIGFOO")
    await remote.end_session()


def test_the_mirror_never_goes_back_in_time() -> None:
    mirror = RecordMirror()
    ended: list[str] = []
    listed: list[int] = []
    mirror.ended_listeners.append(lambda record: ended.append(record.status.value))
    mirror.list_listeners.append(lambda: listed.append(len(mirror.records())))

    def entry(status: str, rev: int) -> Entry:
        record = ProcessRecord("abc123", "sleep", ["1"], "/", {}, False, pid=7)
        return Entry(RecordDoc.from_public({**record.public(), "status": status}), rev)

    mirror.apply(entry("running", 1))
    mirror.apply(entry("exited", 3))
    mirror.apply(entry("running", 2))  # a late copy from another session: ignored
    mirror.apply(entry("exited", 3))  # the same change again: no second end
    assert mirror.get("abc123").status.value == "exited" and ended == ["exited"]
    mirror.remove("abc123", 4)
    mirror.apply(entry("exited", 3))  # older than the removal: stays removed
    assert mirror.find("abc123") is None and listed == [1, 0]
