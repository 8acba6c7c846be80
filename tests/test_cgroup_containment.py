"""Cgroup containment wired in: escapes that a process group and an ownership mark
cannot hold (an ``env -i`` + ``setsid`` escapee carries no mark; a pid hopper outruns every
scan) are gone after ``stop`` and after a SIGKILL of the server; with
``PROCESS_MCP_CGROUPS=0`` the group design works alone, as before. Real processes; the
escapees carry no tag, so they are found by a unique word on their command line."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from pathlib import Path

import pytest
from conftest import eventually, wait_until
from support import RawServer, mcp_client

from process_mcp.core import ProcessManager, Settings
from process_mcp.core.options import StartRequest
from process_mcp.core.trees import cgroups

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not cgroups.detect().available, reason="cgroups not writable here"),
]


def with_word(word: str) -> list[int]:
    """Live processes whose command line holds ``word`` (not zombies)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        if word.encode() in cmdline and stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X"):
            found.append(int(name))
    return found


def escapes(tmp_path: Path) -> tuple[str, str]:
    """A tree with both escapes, and the word on every escapee's command line."""
    word = f"{uuid.uuid4().int % 10**6 + 10**6}"
    hopper = tmp_path / "hopper.sh"
    # each generation starts the next in its own session and exits: the pid never stays
    hopper.write_text(f'#!/bin/sh\nsleep 0.05\nsetsid "$0" {word} &\n')
    hopper.chmod(0o755)
    tree = f"env -i setsid sleep {word} & setsid {hopper} {word} & wait"
    return tree, word


def kill_words(word: str) -> None:
    for _ in range(50):  # the hopper outruns a single pass
        for pid in with_word(word):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


async def test_stop_ends_an_env_i_setsid_escapee_and_a_pid_hopper(
    manager: ProcessManager, tmp_path: Path
) -> None:
    assert manager.containment == "cgroup"
    tree, word = escapes(tmp_path)
    try:
        record = await manager.start(StartRequest("sh", ["-c", tree]))
        await eventually(lambda: len(with_word(word)) >= 2, 10)
        stopped = await manager.stop(record.id)
        assert (stopped.survivors, stopped.tree_gone) == ([], True)
        assert with_word(word) == []
    finally:
        kill_words(word)


async def test_facts_of_a_cgroup_tree_count_an_escapee_and_its_cpu(
    manager: ProcessManager,
) -> None:
    """An ``env -i`` + ``setsid`` busy loop carries no mark and has left the group: only
    the cgroup knows it is in the tree, so its CPU shows only when facts come from there."""
    word = f"{uuid.uuid4().int % 10**6 + 10**6}"
    busy = f"env -i setsid sh -c 'while :; do :; done' {word} & sleep 300"
    try:
        record = await manager.start(StartRequest("sh", ["-c", busy]))
        await eventually(lambda: len(with_word(word)) == 2, 10)  # the outer sh, the loop

        def busy_counted() -> bool:
            facts = manager.live_facts(record.id) or {}
            # sh, sleep, the loop; which spins a core (when it gets one)
            return facts.get("processCount", 0) >= 3 and facts.get("cpuPercent", 0) >= 20

        await eventually(busy_counted, 15)
        await manager.stop(record.id)
    finally:
        kill_words(word)


async def test_a_restart_gets_a_fresh_cgroup_and_remove_deletes_them(
    manager: ProcessManager,
) -> None:
    record = await manager.start(StartRequest("sleep", ["300"]))
    first = manager.ownership.cgroups.jobs(record.id)  # type: ignore[union-attr]
    assert len(first) == 1
    await eventually(lambda: cgroups.members(first[0]) == [record.pid], 10)
    await manager.restart(record.id)
    jobs = manager.ownership.cgroups.jobs(record.id)  # type: ignore[union-attr]
    assert len(jobs) == 1 and jobs[0] != first[0] and not first[0].exists()
    assert manager.tree_pids(record.id) == [record.pid]
    await manager.stop(record.id)
    await manager.remove(record.id)
    assert not jobs[0].exists()


async def test_e2e_get_status_says_cgroup_and_stop_ends_the_escapees(tmp_path: Path) -> None:
    tree, word = escapes(tmp_path)
    try:
        async with mcp_client() as client:
            started = await client.ok("start", {"command": "sh", "args": ["-c", tree]})
            status = await client.ok("get-status", {"id": started["id"]})
            assert status["containment"] == "cgroup"
            assert wait_until(lambda: len(with_word(word)) >= 2, 10)
            stopped = await client.ok("stop", {"id": started["id"]})
            assert stopped["treeGone"] is True
            assert with_word(word) == []
    finally:
        kill_words(word)


def test_server_sigkill_ends_the_escapees_and_removes_the_cgroups(tmp_path: Path) -> None:
    """SIGKILL of the process running the manager (the server, standalone; with a
    supervisor that process is the supervisor, killed in test_e2e_supervisor.py)."""
    tree, word = escapes(tmp_path)
    server = RawServer(PROCESS_MCP_STANDALONE="1")
    try:
        server.initialize()
        server.call_tool("start", {"command": "sh", "args": ["-c", tree]})
        assert wait_until(lambda: len(with_word(word)) >= 2, 10)
        base = next(
            base
            for base in cgroups.own_cgroup().glob("process-mcp-*")  # type: ignore[union-attr]
            if base.name.startswith(f"process-mcp-{server.proc.pid}-")
        )
        server.proc.kill()
        assert wait_until(lambda: not with_word(word), 5)
        assert wait_until(lambda: not base.exists(), 5)
    finally:
        server.kill()
        kill_words(word)


async def test_fallback_with_cgroups_turned_off_keeps_the_group_design(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path
) -> None:
    monkeypatch.setenv(cgroups.DISABLE_VAR, "0")
    manager = ProcessManager(settings)
    try:
        assert manager.containment == "group" and manager.ownership.cgroups is None
        # today's guarantee: setsid escapees and double-forked daemons (marked) are ended
        record = await manager.start(
            StartRequest("sh", ["-c", "setsid sleep 300 & (setsid sleep 301 &); wait"])
        )
        await eventually(lambda: len(manager.tree_pids(record.id)) == 3, 10)
        stopped = await manager.stop(record.id)
        assert (stopped.survivors, stopped.tree_gone) == ([], True)
    finally:
        await manager.shutdown()


async def test_e2e_get_status_says_group_with_cgroups_turned_off() -> None:
    async with mcp_client(PROCESS_MCP_CGROUPS="0") as client:
        started = await client.ok("start", {"command": "sleep", "args": ["300"]})
        status = await client.ok("get-status", {"id": started["id"]})
        assert status["containment"] == "group"
        await client.ok("stop", {"id": started["id"]})
