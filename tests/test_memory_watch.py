"""The memory watch's cost stays flat: a round asks for the policy once per folder, not
once per running process (each ``start`` wakes it, so a per-process ask made every start
among hundreds of running processes pay hundreds of policy look-ups)."""

from __future__ import annotations

from pathlib import Path

import pytest

from process_mcp.core import ProcessManager, ProcessRecord
from process_mcp.core.options import StartRequest
from process_mcp.core.policy import Policy
from process_mcp.supervisor.memory_watch import MemoryWatch

pytestmark = pytest.mark.anyio


async def test_a_round_asks_the_policy_once_per_folder(
    manager: ProcessManager, tmp_path: Path
) -> None:
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    started = [
        await manager.start(StartRequest("sleep", ["60"], cwd=str(folder)))
        for folder in folders
        for _ in range(3)
    ]
    asked: list[str] = []

    def policy_of(record: ProcessRecord) -> Policy | None:
        asked.append(record.cwd)
        return None  # no memory limit: the round ends, as it does without a policy file

    watch = MemoryWatch(manager, policy_of, lambda record: None)
    await watch.wake()  # one round: no limit anywhere, so it ends
    assert sorted(asked) == sorted(str(folder) for folder in folders), asked
    for record in started:
        await manager.stop(record.id, force=True)
