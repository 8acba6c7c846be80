"""The instance ledger: what each server writes down so that the next one can end what a
crash left running. (Not the process records of ``core/records.py``: those live in memory.)

Every server keeps ``STATE_DIR/<pid>-<random>/``. Besides the logs it holds its ledger:

``server.json``      ``{"pid", "startTicks", "token", "clock"}``: who owns the directory
                     (written atomically before anything is started; ``clock``: the OS
                     backend's unit of start times, ``boot-ticks`` or ``epoch-us``);
``processes.jsonl``  one line per managed process: ``{"id", "pid", "pgid", "startTicks",
                     "command", "args"}``, appended at spawn (``startTicks``: the earliest and
                     latest start time it can have, in the backend's clock: see
                     ``core/platform``). One
                     unbuffered write each: the page cache survives the death of the
                     process, which is what matters here.

A clean exit deletes the directory, and so does the sentinel after a SIGKILL of the server.
A directory still there whose server is dead (its pid gone, or now a process with another
start time) is a leftover — the server and its sentinel died together (``kill -9`` of both,
the OOM killer, a container's cgroup kill that spared the children). A starting server ends
what is left of it: each leader in the ledger that is still the same process (start time
checked, so a reused pid is never touched) with its group and descendants, and every
process carrying that server's ownership mark. Then it deletes the directory.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from process_mcp.core import platform
from process_mcp.core.trees import proc, sentinel_program

logger = logging.getLogger(__name__)
SERVER_FILE = "server.json"
PROCESSES_FILE = "processes.jsonl"
_INSTANCE_NAME = re.compile(r"^(\d+)-[0-9a-f]+$")
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class InstanceLedger:
    """This server's ledger: ``server.json`` and ``processes.jsonl`` of its instance directory."""

    def __init__(self, instance_dir: Path, token: str) -> None:
        """Create the directory and write ``server.json`` atomically.

        Raises OSError when the directory or the file cannot be written.
        """
        self.directory = instance_dir
        make_private_dir(instance_dir.parent)
        make_private_dir(instance_dir)
        me = proc.read_proc(os.getpid())
        owner = {
            "pid": os.getpid(),
            "startTicks": me.start_ticks if me else None,
            "token": token,
            "clock": platform.backend().clock,
        }
        temporary = instance_dir / f".{SERVER_FILE}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(owner))
        temporary.replace(instance_dir / SERVER_FILE)
        self._fd: int | None = None

    def add(
        self,
        process_id: str,
        pid: int,
        start_ticks: tuple[int, int],
        command: str,
        args: list[str],
    ) -> None:
        """Append one process's entry (one write). Never raises: a failure is logged, since
        the sentinel and the ownership mark still find the process."""
        line = {
            "id": process_id,
            "pid": pid,
            "pgid": pid,
            "startTicks": list(start_ticks),
            "command": command,
            "args": args,
        }
        try:
            if self._fd is None:
                self._fd = os.open(self.directory / PROCESSES_FILE, _OPEN_FLAGS, 0o600)
            os.write(self._fd, (json.dumps(line) + "\n").encode())
        except OSError as exc:  # never fail a start over it; the sentinel still knows
            logger.warning(
                "cannot add process %s to the instance ledger in %s: %s",
                process_id,
                self.directory,
                exc,
            )

    def close(self) -> None:
        """Close the ledger's file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as 0700, whatever the umask: only this user
    may read the logs or write a ledger. An existing directory is left as it is (the
    state dir may be one the user chose, even a shared one). Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)  # the umask can only take bits away from 0700
    except FileExistsError:
        return


def trusted(path: Path, directory: bool) -> bool:
    """Whether ``path`` is ours to act on: owned by this user, not a symlink, of the
    expected kind, and writable by nobody else. A folder or ledger another user could have
    written might name any process; ending what it names would let them kill ours."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    kind = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
    return kind and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def end_leftovers(state_dir: Path, own_dir: Path, grace: float) -> list[Path]:
    """End what dead servers left running and delete their directories.

    Looks at every instance directory under ``state_dir`` but ``own_dir`` whose server is
    gone; one whose leftovers survive SIGKILL is kept (with its ledger) for the next try.
    A directory or ledger file that is not :func:`trusted` is ignored, never acted on.
    Returns the directories deleted. Never raises: an unreadable state dir ends nothing.
    """
    try:
        candidates = [path for path in state_dir.iterdir() if path != own_dir]
    except OSError:
        return []
    cleaned = []
    for directory in candidates:
        match = _INSTANCE_NAME.match(directory.name)
        if match is None or not trusted(directory, directory=True):
            continue  # not ours, or writable by others: never used to end anything
        if any(
            (directory / name).exists() and not trusted(directory / name, directory=False)
            for name in (SERVER_FILE, PROCESSES_FILE)
        ):
            logger.warning("ignoring %s: its ledger is not ours alone to have written", directory)
            continue
        owner = _read_json(directory / SERVER_FILE)
        if owner is None:
            # Being created right now, or written by an older version: only its pid to go by.
            if proc.read_proc(int(match.group(1))) is not None:
                continue
        elif _alive(owner):
            continue  # its server is running
        elif not _end_processes(directory, owner, grace):
            continue  # something survived SIGKILL: keep the ledger for the next try
        shutil.rmtree(directory, ignore_errors=True)
        cleaned.append(directory)
    return cleaned


def server_gone(state_dir: Path, name: str) -> bool:
    """Whether the server of instance ``name`` (its directory's name) is gone for good: its
    directory was deleted (a clean exit, or its sentinel after a crash), or its server is
    no longer the process that wrote ``server.json``. A directory without ``server.json``
    (being created) counts as alive while the pid in its name runs. Never raises."""
    directory = state_dir / name
    match = _INSTANCE_NAME.match(name)
    if match is None or not directory.is_dir():
        return True
    owner = _read_json(directory / SERVER_FILE)
    if owner is None:
        return proc.read_proc(int(match.group(1))) is None
    return not _alive(owner)


def _end_processes(directory: Path, owner: dict[str, Any], grace: float) -> bool:
    leaders: dict[int, tuple[int, int]] = {}
    for entry in _read_entries(directory / PROCESSES_FILE):
        pgid, ticks = entry.get("pgid"), entry.get("startTicks")
        if (
            isinstance(pgid, int)
            and isinstance(ticks, list)
            and len(ticks) == 2
            and all(isinstance(t, int) for t in ticks)
        ):
            leaders[pgid] = (ticks[0], ticks[1])
    token = owner.get("token")
    needle = f"{sentinel_program.owner_var(token)}=".encode() if isinstance(token, str) else None
    survivors = sentinel_program.sweep(needle, leaders, grace, trust_orphan_groups=False)
    if survivors:
        logger.warning(
            "leftovers of a dead server (%s) survive SIGKILL: pids %s", directory, survivors
        )
        return False
    if leaders:
        logger.info("ended what a dead server left running (%s)", directory)
    return True


def _alive(owner: dict[str, Any]) -> bool:
    """Whether the server that wrote ``owner`` (its server.json) still runs. A server of
    another backend (another clock) counts as alive while its pid runs: its start time
    cannot be compared, and ending a live server's processes would be far worse than
    keeping a dead one's ledger until its pid is gone."""
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    info = proc.read_proc(pid)
    if info is None or info.zombie:
        return False
    if owner.get("clock", "boot-ticks") != platform.backend().clock:
        return True
    return info.start_ticks == owner.get("startTicks")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_entries(path: Path) -> list[dict[str, Any]]:
    """The ledger's process entries (JSON objects, one a line); [] when it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by the crash
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
