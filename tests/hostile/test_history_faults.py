"""Issue 25 item 9: history faults are told, and none leaves the history wrong.

Before: with ``history.sqlite3`` damaged the supervisor went on with one line in its log
and no client heard of it; ``process-mcp history`` opened the database read-write and
migrated it, so an intact database on a read-only disk could not be read; and a run whose
end could not be written (a full disk, a write lock held by a backup) stayed ``running``
in the history for ever."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from support import mcp_client, service_session, service_supervisor

from process_mcp.core.history import DB_NAME, History
from process_mcp.core.options import StartRequest
from process_mcp.supervisor.remote import RemoteManager
from process_mcp.supervisor.transport import SupervisorServer

SUP = "1234-abcd"


def history_cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROCESS_MCP_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "process_mcp", "history", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def record_one_run(state: Path) -> None:
    with History.in_state_dir(state) as history:
        run = history.record_start(
            "web", command="sleep", args=["1"], cwd="/", label="srv", supervisor=SUP
        )
        assert run is not None
        history.record_end(run.id, status="exited", exit_code=0, signal=None)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs, yielded writable; ``remount(ro=True)`` makes it read-only (root ignores
    file modes, so a mode is no test of a read-only database)."""
    point = tmp_path / "disk"
    point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def remount_read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)


def test_the_cli_reads_an_intact_history_on_a_read_only_disk(read_only_disk: Path) -> None:
    state = read_only_disk / "state"
    record_one_run(state)
    remount_read_only(read_only_disk)
    done = history_cli(state, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads(done.stdout)
    assert [(r["id"], r["label"], r["status"]) for r in runs] == [("web", "srv", "exited")]
    assert history_cli(state).returncode == 0  # the table too


def test_the_cli_never_migrates_and_says_an_older_schema_is_older(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / DB_NAME) as old:  # version 0: written before any schema
        old.execute("CREATE TABLE notes (text)")
    done = history_cli(state)
    assert done.returncode == 1, done.stdout
    assert "schema version 0, older than this process-mcp's" in done.stdout, done.stdout
    with sqlite3.connect(state / DB_NAME) as still:
        assert still.execute("PRAGMA user_version").fetchone() == (0,)  # left as it was
        assert still.execute("SELECT name FROM sqlite_master WHERE name = 'runs'").fetchall() == []


def test_the_cli_says_no_runs_without_creating_a_history(tmp_path: Path) -> None:
    done = history_cli(tmp_path / "state")
    assert (done.returncode, done.stdout.strip()) == (0, "no runs")
    assert not (tmp_path / "state" / DB_NAME).exists()


@pytest.mark.anyio
async def test_a_damaged_history_is_told_to_the_client_once_as_a_warning(
    isolated_state_dir: Path,
) -> None:
    isolated_state_dir.mkdir(parents=True)
    (isolated_state_dir / DB_NAME).write_bytes(b"not a database, " * 512)
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "true"})
        await client.ok("wait", {"id": started["id"]})
        await client.ok("list")

        def warnings() -> list[Any]:
            return [
                m.params
                for m in client.messages
                if isinstance(m, types.LoggingMessageNotification) and m.params.level == "warning"
            ]

        told = warnings()
        assert len(told) == 1, told
        assert told[0].logger == "process-mcp"
        message = told[0].data["message"]
        assert "history is off" in message and str(isolated_state_dir / DB_NAME) in message
        assert "damaged" in message, message


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[SupervisorServer]:
    async with service_supervisor(tmp_path) as server:
        yield server


async def front_end(server: SupervisorServer, folder: Path) -> RemoteManager:
    return await service_session(server, folder)


def statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return dict(conn.execute("SELECT process_id, status FROM runs").fetchall())


@pytest.mark.anyio
async def test_a_run_left_open_by_a_failed_write_is_closed_when_writing_works_again(
    supervisor: SupervisorServer, tmp_path: Path
) -> None:
    """The write lock held by another process (a backup, a slow disk) makes the end's write
    fail; the front-end hears the history is off, and the next write that works closes the
    run and says the history is on again."""
    remote = await front_end(supervisor, tmp_path)
    heard: asyncio.Queue[str | None] = asyncio.Queue()
    remote.history_listeners.append(heard.put_nowait)
    db = tmp_path / "state" / DB_NAME
    first = await remote.start(StartRequest("sleep", ["300"]))
    for _ in range(200):  # its start is written in the background
        if statuses(db).get(first.id) == "running":
            break
        await asyncio.sleep(0.05)
    assert statuses(db) == {first.id: "running"}
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as another process would hold it
    try:
        await remote.stop(first.id)
        problem = await asyncio.wait_for(heard.get(), timeout=30)  # after the busy timeout
        assert problem is not None and "database is locked" in problem, problem
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert statuses(db) == {first.id: "running"}  # the end is not written yet
    second = await remote.start(StartRequest("true"))  # the next write closes the run left open
    assert await asyncio.wait_for(heard.get(), timeout=30) is None
    assert statuses(db)[first.id] == "stopped"
    assert second.id in statuses(db)
    await remote.end_session()
