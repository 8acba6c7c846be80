"""Issue 12 item 5: a tree that hops pids must not survive ``stop`` or the server's exit.

The hopper forks every 5 ms; each child calls ``setsid()`` (leaving the group) and the
parent exits, so whatever process was found a moment ago is already gone. Before, ``stop``
answered ``treeGone: true, survivors: []`` and the hopper ran on: the kill phase only
re-checked the processes it knew, never looked again for new ones."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from support import mcp_client

pytestmark = pytest.mark.anyio

HOPPER = """
import os, sys, time
beat = open(sys.argv[1], "ab", buffering=0)
hops = 0
while True:
    time.sleep(0.005)
    beat.write(b".")
    hops += 1
    if hops == 3:
        print("hopping", flush=True)
    if os.fork() == 0:
        os.setsid()
    else:
        os._exit(0)
"""
QUIET = 0.5  # seconds without a heartbeat that prove no hopper is left (it beats every 5 ms)


async def hopping(client, beat: Path) -> str:
    """Start a hopper writing a byte to ``beat`` at every hop; return its id once it hops."""
    started = await client.ok(
        "start", {"command": sys.executable, "args": ["-c", HOPPER, str(beat)]}
    )
    waited = await client.ok(
        "wait", {"id": started["id"], "pattern": "^hopping$", "timeoutSeconds": 10}
    )
    assert waited["met"] is True or waited["reason"] == "exited", waited
    return started["id"]


def beats_after(beat: Path) -> int:
    """Heartbeats written during ``QUIET`` seconds: 0 when no hopper is left. A /proc scan
    would not do: a scan takes longer than a hopper lives, so it misses one it lists."""
    before = beat.stat().st_size
    deadline = time.monotonic() + QUIET
    while time.monotonic() < deadline:
        if beat.stat().st_size != before:
            return beat.stat().st_size - before
        time.sleep(0.01)
    return 0


async def test_stop_ends_a_pid_hopping_tree_and_says_so_truthfully(tmp_path: Path) -> None:
    async with mcp_client() as client:
        for force in (False, True):
            beat = tmp_path / f"beat-{force}"
            process_id = await hopping(client, beat)
            stopped = await client.ok("stop", {"id": process_id, "force": force})
            assert not beats_after(beat), f"a hopper is still alive after stop (force={force})"
            assert stopped["treeGone"] is True and stopped.get("survivors", []) == []


@pytest.mark.server_process  # the server process exits
async def test_server_exit_ends_a_pid_hopping_tree(tmp_path: Path) -> None:
    beat = tmp_path / "beat"
    async with mcp_client() as client:
        await hopping(client, beat)
    assert not beats_after(beat), "a hopper is still alive after the server exited"
