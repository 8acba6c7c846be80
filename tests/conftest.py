"""Shared fixtures. Every test runs with a unique tag in its environment, inherited by
every process it starts (directly or through a server), and fails if any such process
is still alive afterwards: no test may leave a process behind."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from process_mcp.core import ProcessManager, Settings
from process_mcp.core.logs.query import LogQuery, run_query
from process_mcp.core.trees import cgroups

CGROUP_PARENT = cgroups.own_cgroup()  # where servers started by the tests put their cgroups

TAG_VAR = "PROCESS_MCP_TEST_TAG"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def tagged_processes(tag: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries ``tag``."""
    needle = f"{TAG_VAR}={tag}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                if needle not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        if stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X"):
            found.append(int(name))
    return found


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``, read straight from ``/proc``
    rather than through the code under test. Unlike :func:`tagged_processes` it also sees
    a member that cleared its environment (``env -i``)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            found.append(int(name))
    return found


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (a deadline, not a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], object], timeout: float, interval: float = 0.02
) -> bool:
    """Async twin of :func:`wait_until`, which lets the event loop run while polling."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(interval)
    return True


def log_lines(manager: ProcessManager, process_id: str, **query: object) -> list[str]:
    """The process's log as an agent reads it: ``get-log``'s query (``LogQuery`` fields,
    e.g. ``last_lines=3``) over a snapshot of the store, cleaned text."""
    return run_query(manager.log(process_id).snapshot(), LogQuery(**query)).lines  # type: ignore[arg-type]


def cgroup_bases() -> dict[Path, int | None]:
    """The ``process-mcp-*`` cgroup subtrees next to ours, with their owner's pid."""
    if CGROUP_PARENT is None:
        return {}
    found: dict[Path, int | None] = {}
    for base in CGROUP_PARENT.glob(f"{cgroups.BASE_PREFIX}*"):
        try:
            owner = os.getxattr(base, cgroups.OWNER_XATTR).decode().partition(":")[0]
        except OSError:
            owner = ""
        found[base] = int(owner) if owner.isdigit() else None
    return found


def _ours_left(before: set[Path]) -> list[Path]:
    """New cgroup subtrees whose owner is gone or is this test process: left by this test
    (a dead owner's subtree of another suite running alongside goes within seconds too)."""
    return [
        base
        for base, owner in cgroup_bases().items()
        if base not in before
        and (owner is None or owner == os.getpid() or not Path(f"/proc/{owner}").exists())
        and not base.name.endswith("-probe")
    ]


@pytest.fixture(autouse=True)
def no_leftover_processes(monkeypatch: pytest.MonkeyPatch):
    """No process and no cgroup of this test outlives it."""
    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG_VAR, tag)
    before = set(cgroup_bases())
    yield tag
    processes_gone = wait_until(lambda: not tagged_processes(tag), timeout=10)
    if not wait_until(lambda: not _ours_left(before), timeout=10):
        pytest.fail(f"test left cgroups behind: {_ours_left(before)}")
    if processes_gone:
        return
    leftovers = tagged_processes(tag)
    described = []
    for pid in leftovers:
        try:
            described.append(f"{pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()!r}")
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    pytest.fail(f"test left processes running: {described}")


@pytest.fixture(autouse=True)
def isolated_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Servers started by a test keep their files (and look for a crashed predecessor's
    leftovers) in the test's own directory, never in another suite's running next to it."""
    state = tmp_path / "state"
    monkeypatch.setenv("PROCESS_MCP_STATE_DIR", str(state))
    return state


def lock_holder(runtime_dir: Path) -> int | None:
    """The pid of the supervisor holding ``runtime_dir``'s lock, None when it is free."""
    lock = runtime_dir / "supervisor.lock"
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        try:
            return int(lock.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return -1
    finally:
        os.close(fd)


@pytest.fixture(autouse=True)
def isolated_supervisor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each test has its own supervisor runtime folder (socket and lock), so a server it
    starts meets a supervisor of this test only; that supervisor exits soon after its last
    client (``PROCESS_MCP_SUPERVISOR_IDLE``). It inherits the environment of the front-end
    that launched it, test tag included, so :func:`no_leftover_processes` sees it; this
    fixture also fails a test whose runtime folder is still locked at the end (a supervisor
    left behind, whatever its environment)."""
    runtime = tmp_path / "run"
    monkeypatch.setenv("PROCESS_MCP_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("PROCESS_MCP_SUPERVISOR_IDLE", "0.5")
    yield runtime
    if wait_until(lambda: lock_holder(runtime) is None, timeout=10):
        return
    holder = lock_holder(runtime)
    if holder and holder > 0:
        with contextlib.suppress(OSError):
            os.kill(holder, signal.SIGKILL)
    pytest.fail(f"test left a supervisor running: pid {holder} holds {runtime}")


STANDALONE_VARIABLE = "PROCESS_MCP_STANDALONE"


@pytest.fixture(params=["supervisor", "standalone"])
def frontend_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test against servers in both modes: front-end of a supervisor process
    (the default), and ``PROCESS_MCP_STANDALONE=1`` (the supervisor inside the server).
    Use with ``pytestmark = pytest.mark.usefixtures("frontend_mode")``."""
    monkeypatch.setenv(STANDALONE_VARIABLE, "1" if request.param == "standalone" else "0")
    return request.param


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", stop_grace=1.0, exit_drain_grace=0.5)


@pytest.fixture
async def manager(settings: Settings):
    manager = ProcessManager(settings)
    try:
        yield manager
    finally:
        await manager.shutdown()


@pytest.fixture
async def manager_with(settings: Settings):
    """``manager_with(stop_grace=0.3)``: a manager whose settings differ from the
    ``settings`` fixture's only in what is given; shut down after the test."""
    made: list[ProcessManager] = []

    def make(**overrides: float) -> ProcessManager:
        made.append(ProcessManager(dataclasses.replace(settings, **overrides)))
        return made[-1]

    try:
        yield make
    finally:
        for manager in made:
            await manager.shutdown()
