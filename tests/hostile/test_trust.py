"""Issue 12 item 7: the state directory is private, and nobody else's folder in it is used
to kill anything.

Before, under umask 000 the server made 0777 folders and a 0666 ``server.json``, and a
forged dead-server folder written by another user made the next server SIGTERM a process
it never started (the forged ledger named it, with its true start time)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import RawServer

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_state_dir_is_private_whatever_the_umask(isolated_state_dir: Path) -> None:
    old = os.umask(0)
    try:
        server = RawServer()
    finally:
        os.umask(old)
    try:
        server.initialize()
        started = server.call_tool(
            "start", {"command": sys.executable, "args": ["-c", "print('hello')"]}
        )["structuredContent"]
        server.call_tool("wait", {"id": started["id"], "timeoutSeconds": 10})
        server.call_tool("list", {})  # the ledger entry is written 20 ms after the start
        made = [isolated_state_dir, *isolated_state_dir.rglob("*")]
        assert any(started["id"] in path.name for path in made), made  # its log is there
        wrong = {
            str(path): oct(mode(path))
            for path in made
            if mode(path) != (0o700 if path.is_dir() else 0o600)
        }
        assert not wrong, wrong  # folders 0700, files 0600, whatever the umask
    finally:
        server.kill()


def forge_dead_server(state_dir: Path, victim: subprocess.Popen[bytes], name: str) -> Path:
    """A folder that looks like the leftovers of a dead server whose ledger names
    ``victim`` with its real start time: what an attacker would write."""
    with open(f"/proc/{victim.pid}/stat", "rb") as handle:
        raw = handle.read()
    ticks = int(raw[raw.rfind(b")") + 2 :].split()[19])
    folder = state_dir / name
    folder.mkdir(parents=True)
    (folder / "server.json").write_text(
        json.dumps({"pid": 999_999_999, "startTicks": 1, "token": "forged"})
    )
    entry = {"id": "forged", "pid": victim.pid, "pgid": victim.pid, "startTicks": [ticks, ticks]}
    (folder / "processes.jsonl").write_text(json.dumps({**entry, "command": "x", "args": []}))
    return folder


@pytest.mark.parametrize("forgery", ["other user's folder", "folder writable by others"])
def test_forged_dead_server_folder_is_ignored(isolated_state_dir: Path, forgery: str) -> None:
    if os.geteuid() != 0 and forgery == "other user's folder":
        pytest.skip("making a folder another user owns needs root (chown)")
    isolated_state_dir.mkdir(mode=0o777)
    os.chmod(isolated_state_dir, 0o777)  # a shared, writable state dir
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        folder = forge_dead_server(isolated_state_dir, victim, "1-deadbeef")
        if forgery == "other user's folder":
            for path in (folder, *folder.iterdir()):
                os.chown(path, NOBODY, NOBODY)
        else:
            os.chmod(folder, 0o777)
        server = RawServer()
        try:
            server.initialize()  # leftovers are ended before the first answer
            server.call_tool("list", {})
        finally:
            server.kill()
        assert victim.poll() is None, f"the forged ledger made the server kill {victim.pid}"
        assert folder.exists()  # not ours: not deleted either
    finally:
        victim.kill()
        victim.wait()
