"""Shared fixtures, and how the suite stays fast (``uv run pytest``: a few minutes on two cores).

Isolation, per test (autouse, so every new test has it):

* ``no_leftover_processes``: a unique tag in the environment (``PROCESS_MCP_TEST_TAG``),
  inherited by every process the test starts, directly or through a server or supervisor;
  the test fails if one is still alive afterwards, or if a cgroup it made is left.
* ``isolated_state_dir`` / ``isolated_supervisor``: the test's own state folder and
  supervisor runtime folder (socket, lock) under ``tmp_path``; the supervisor idles out
  0.5 s after its last client, and a runtime folder still locked at the end fails the test.

Because nothing is shared between tests but the read-only code, they may run in parallel
(``-n 2``, pytest-xdist; not yet the default). Every fixture above is per test, so it holds
in each worker. A fixture shared by a module or the session must not carry a test's tag or
folders (they are set per test): give it its own folders, as ``hostile/test_malformed_rpc.py``
does, and end what it starts.

Cheap harnesses first, each a real one (no mocks of the OS):

* the core: ``manager`` / ``manager_with(...)``, a :class:`ProcessManager` in this process;
* the MCP server: ``support.mcp_client()``, by default *in this process*, over JSON lines
  in memory: the server's own configuration, backend (supervisor or standalone) and stdio
  runner, without the 2.5 s of CPU a server process spends importing the SDK. Mark a test
  ``@pytest.mark.server_process`` when the process boundary is what it tests (the server's
  pid, signals, exit, environment); ``RawServer`` / ``HttpServer`` are always processes.
  ``PROCESS_MCP_TEST_SERVERS=subprocess uv run pytest`` runs every ``mcp_client`` as a real
  server process: the slow, thorough run.
* ``frontend_mode`` (``pytestmark = pytest.mark.usefixtures("frontend_mode")``): the test
  runs twice, against a front-end of a supervisor process and a standalone server.

Synchronise on events or deadlines (:func:`wait_until`, :func:`eventually`,
``support.wait_status``), never on bare sleeps, and assert no durations: the machine may
be loaded. Deadlines are generous (seconds), because a loaded machine is slow, not wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
import support

from process_mcp.core import ProcessManager, Settings, signals
from process_mcp.core.logs.query import LogQuery, run_query
from process_mcp.core.trees import cgroups
from process_mcp.supervisor.paths import SupervisorPaths

CGROUP_PARENT = cgroups.own_cgroup()  # where servers started by the tests put their cgroups

TAG_VAR = "PROCESS_MCP_TEST_TAG"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


ON_LINUX = os.path.isdir("/proc/self")
# Files that read /proc for their checks or test what only Linux gives (the subreaper's
# adopted orphans, cgroups): skipped elsewhere (macOS), where the posix backend's weaker
# guarantees are documented instead.
LINUX_ONLY_FILES = {
    "test_cgroup_containment.py",
    "test_cgroups.py",
    "test_tree_ownership.py",
    "test_e2e_server_exit.py",
    "test_supervisor_transport.py",
    "test_core_interactive.py",
    "test_token_handling.py",
    "test_trust.py",
}


# Files that test what the posix backend does not promise (docs/platforms.md, "what can
# escape"): pid hoppers that outrun its sweeps. Skipped wherever that backend runs,
# including PROCESS_MCP_PLATFORM=posix on Linux.
LINUX_BACKEND_FILES = {"test_hopper.py"}
POSIX_BACKEND = not ON_LINUX or os.environ.get("PROCESS_MCP_PLATFORM") == "posix"


def pytest_configure(config: pytest.Config) -> None:
    # What the server and the supervisor do at their start, for the managers tests run in
    # this process: a suite launched in the background ignores SIGINT, and a child of an
    # in-process manager would inherit that (Ctrl-C under a terminal would do nothing).
    signals.pass_no_ignored_signal_on()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    linux_only = pytest.mark.skip(reason="reads /proc or needs Linux (subreaper, cgroups)")
    escapes = pytest.mark.skip(reason="the posix backend does not promise it (platforms.md)")
    for item in items:
        if not ON_LINUX and item.path.name in LINUX_ONLY_FILES:
            item.add_marker(linux_only)
        elif POSIX_BACKEND and item.path.name in LINUX_BACKEND_FILES:
            item.add_marker(escapes)


def _psutil_oracle(keep: Callable[[object], bool]) -> list[int]:
    """Where there is no /proc (macOS): live processes ``keep`` accepts, by psutil."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            mine = process.pid == os.getpid()
            if not mine and process.status() != psutil.STATUS_ZOMBIE and keep(process):
                found.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return found


def tagged_processes(tag: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries ``tag``."""
    needle = f"{TAG_VAR}={tag}".encode()
    if not ON_LINUX:  # macOS hides the environment of restricted binaries: see group_pids
        return _psutil_oracle(lambda p: p.environ().get(TAG_VAR) == tag)  # type: ignore[attr-defined]
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
    if not ON_LINUX:
        return _psutil_oracle(lambda p: os.getpgid(p.pid) == pgid)  # type: ignore[attr-defined]
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
def isolated_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The person's policy file is looked up in the test's own config folder (none there:
    the built-in floor), never in the user's real one."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config / "process-mcp" / "policy.toml"


@pytest.fixture(autouse=True)
def isolated_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Servers started by a test keep their files (and look for a crashed predecessor's
    leftovers) in the test's own directory, never in another suite's running next to it."""
    state = tmp_path / "state"
    monkeypatch.setenv("PROCESS_MCP_STATE_DIR", str(state))
    return state


def lock_holder(runtime_dir: Path) -> int | None:
    """The pid of the supervisor holding ``runtime_dir``'s lock, None when it is free."""
    return SupervisorPaths(runtime_dir=runtime_dir, state_dir=runtime_dir).lock_holder()


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


@pytest.fixture(autouse=True)
def server_kind(request: pytest.FixtureRequest):
    """``support.mcp_client`` serves in-process unless the test is marked
    ``server_process`` (see ``support.py``); reset after each test."""
    support.use_server_processes(
        request.node.get_closest_marker(support.SERVER_PROCESS_MARK) is not None
    )
    yield
    support.use_server_processes(False)


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
