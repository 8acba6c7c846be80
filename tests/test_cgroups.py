"""cgroup v2 containment (``core/trees/cgroup*.py``): detection, the job layout, placement
before exec, and killing trees that no process-group or ownership-mark sweep can catch.

Tests that need a writable cgroup v2 subtree skip, saying why, where there is none; the
rest (parsing, the off switch) run everywhere. Every cgroup made here is removed, which
the ``layout`` fixture asserts."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import eventually, wait_until

from process_mcp.core.trees import cgroup_join, cgroups, proc
from process_mcp.core.trees.cgroup_layout import Layout, job_name, owner_tag, sweep
from process_mcp.core.trees.cgroup_watch import EmptyWatcher, wait_empty_async
from process_mcp.core.trees.subreaper import PR_SET_CHILD_SUBREAPER

PROBE = cgroups.detect({})
needs_cgroups = pytest.mark.skipif(
    not PROBE.available, reason=f"no writable cgroup v2 subtree here: {PROBE.reason}"
)

# Forks every 5 ms: each child setsid()s and its parent exits, so the tree never has a
# stable pid, group or session, and its members are re-parented as it goes.
HOPPER = """#!/bin/sh
sleep 0.005
setsid /bin/sh "$0" &
exit 0
"""


@pytest.fixture
def layout() -> Iterator[Layout]:
    assert PROBE.parent is not None
    made = Layout.create(PROBE, f"test-{uuid.uuid4().hex[:12]}")
    # An in-process manager of an earlier test made this process a subreaper: a hopper's
    # orphaned generations would come here as zombies by the thousand (slowing every /proc
    # scan until no scan sees a live one) and outlive the test. Let init take them.
    _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    try:
        yield made
    finally:
        closed = made.close(timeout=10)
        reap_adopted_zombies()
        assert closed and not made.base.exists(), f"cgroup {made.base} left behind"


_LIBC = ctypes.CDLL(None, use_errno=True)


def reap_adopted_zombies() -> None:
    """Reap what was re-parented to this process while it was a subreaper (every Popen of
    these tests is waited for before the layout closes)."""
    me = os.getpid()
    for info in proc.process_table():
        if info.ppid == me and info.zombie:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.pid, os.WNOHANG)


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    return cgroup_join.build_helper(tmp_path_factory.mktemp("bin"))


def launchers(helper: Path | None) -> list[Path | None]:
    return [None, helper] if helper is not None else [None]


def exited(pidfd: int) -> bool:
    return bool(select.select([pidfd], [], [], 0)[0])


def pidfds(pids: list[int]) -> list[int]:
    """pidfds for the pids still alive, so that checking them later never hits a reused pid."""
    held = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            held.append(os.pidfd_open(pid))
    return held


# --- everywhere -------------------------------------------------------------------------

MOUNTINFO = r"""25 1 0:23 / / rw - ext4 /dev/root rw
31 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
40 25 0:26 /user.slice /srv/with\040space/é rw - cgroup2 cgroup2 rw
41 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
"""


def test_find_mount_takes_the_mount_whose_root_holds_our_cgroup() -> None:
    found = cgroups.find_mount(MOUNTINFO, "/user.slice/app.scope")
    assert found == (Path("/srv/with space/é"), "app.scope")  # longest root, unescaped
    assert cgroups.find_mount(MOUNTINFO, "/system.slice/x") == (
        Path("/sys/fs/cgroup/unified"),
        "system.slice/x",
    )
    assert cgroups.find_mount(MOUNTINFO, "/") == (Path("/sys/fs/cgroup/unified"), "")
    v1_only = "41 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    assert cgroups.find_mount(v1_only, "/") is None


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_the_environment_variable_turns_cgroups_off(value: str) -> None:
    probe = cgroups.detect({cgroups.DISABLE_VAR: value})
    assert not probe.available and probe.parent is None
    assert cgroups.DISABLE_VAR in probe.reason


def test_job_names_are_safe_directory_names() -> None:
    assert job_name("web-1_a") == "web-1_a"
    assert job_name("cpu.stat") == "cpu_2estat"  # never an interface file
    assert job_name("../x") == "_2e_2e_2fx"
    with pytest.raises(ValueError):
        job_name("")


def test_without_a_compiler_the_sh_launcher_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang
    assert cgroup_join.build_helper(tmp_path / "bin") is None
    wrapped = cgroup_join.wrap(["prog", "a"], Path("/cg"), helper=None)
    assert wrapped == ["/bin/sh", "-c", cgroup_join.SH_JOIN, "/cg", "prog", "a"]


# --- with a writable cgroup v2 subtree ----------------------------------------------------


@needs_cgroups
def test_detection_finds_our_cgroup_and_leaves_no_probe() -> None:
    assert PROBE.parent is not None and PROBE.parent == cgroups.own_cgroup()
    assert not list(PROBE.parent.glob(f"{cgroups.BASE_PREFIX}*-probe"))


@needs_cgroups
def test_layout_and_jobs_are_created_tagged_and_removed(layout: Layout) -> None:
    assert layout.jobs.is_dir()
    assert os.getxattr(layout.base, cgroups.OWNER_XATTR).decode() == owner_tag()
    job = layout.create_job("web")
    assert job.is_dir() and job.parent == layout.jobs
    assert not cgroups.populated(job) and cgroups.members(job) == []
    assert layout.create_job("web") == job  # an empty leftover is reused
    assert layout.remove_job("web") and not job.exists()
    assert layout.remove_job("web")  # already gone: fine


@needs_cgroups
@pytest.mark.parametrize("use_helper", [False, True], ids=["sh", "compiled"])
def test_the_command_runs_inside_its_cgroup_from_its_first_instruction(
    layout: Layout, helper: Path | None, use_helper: bool
) -> None:
    if use_helper and helper is None:
        pytest.skip("no C compiler here: only the sh launcher exists")
    job = layout.create_job("placed")
    wrapped = cgroup_join.wrap(
        ["/bin/sh", "-c", 'echo "$$"; cat /proc/self/cgroup'],
        job,
        helper=helper if use_helper else None,
    )
    proc = subprocess.Popen(wrapped, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=10)
    first, *rest = out.decode().splitlines()
    assert int(first) == proc.pid  # the wrapper exec'd: same pid as Popen's child
    line = next(x for x in rest if x.startswith("0::"))
    assert line.endswith("/jobs/placed")
    assert proc.returncode == 0


@needs_cgroups
def test_a_cgroup_that_cannot_be_joined_exits_125_and_runs_nothing(
    layout: Layout, helper: Path | None, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    for launcher in launchers(helper):
        done = subprocess.run(
            cgroup_join.wrap(["touch", str(marker)], layout.jobs / "missing", helper=launcher),
            capture_output=True,
            timeout=10,
        )
        assert done.returncode == cgroup_join.JOIN_FAILED, done
        assert b"missing" in done.stderr or b"cgroup.procs" in done.stderr
        assert not marker.exists()


@needs_cgroups
def test_compiled_launcher_runs_the_program_it_is_given_and_reports_exec_failures(
    layout: Layout, helper: Path | None
) -> None:
    if helper is None:
        pytest.skip("no C compiler here")
    job = layout.create_job("exec")
    shown = subprocess.run(
        cgroup_join.wrap(
            ["shown-name", "-c", 'echo "$0"'], job, helper=helper, executable="/bin/sh"
        ),
        capture_output=True,
        timeout=10,
    )
    assert shown.stdout == b"shown-name\n"  # argv[0] kept apart from the program path
    missing = subprocess.run(
        cgroup_join.wrap(["/nonexistent/prog"], job, helper=helper), capture_output=True
    )
    assert missing.returncode == 127 and b"/nonexistent/prog" in missing.stderr


def start_hopper(job: Path, helper: Path | None, script: Path) -> None:
    script.write_text(HOPPER)
    proc = subprocess.Popen(cgroup_join.wrap(["/bin/sh", str(script)], job, helper=helper))
    proc.wait(timeout=10)  # the first generation is gone at once; its heirs hop on
    seen: set[int] = set()

    def hopped() -> bool:
        seen.update(cgroups.members(job))
        return len(seen) >= 10

    assert wait_until(hopped, timeout=10), f"the hopper did not run: {seen}"


def running_script(script: Path) -> list[int]:
    """Processes anywhere on the machine running ``script``."""
    found = []
    for name in os.listdir("/proc"):
        try:
            if (
                name.isdigit()
                and str(script).encode() in Path(f"/proc/{name}/cmdline").read_bytes()
            ):
                found.append(int(name))
        except OSError:
            pass
    return found


def no_process_runs(script: Path, during: float = 0.3) -> bool:
    """No process runs ``script`` in any of repeated scans over ``during`` seconds: one scan
    can miss a live hopper (a generation lasts 5 ms, a scan of /proc longer), many cannot."""
    deadline = time.monotonic() + during
    while time.monotonic() < deadline:
        if running_script(script):
            return False
    return True


@needs_cgroups
@pytest.mark.parametrize("use_kill_file", [True, False], ids=["cgroup.kill", "freeze"])
def test_a_pid_hopper_is_killed_with_its_cgroup(
    layout: Layout, helper: Path | None, tmp_path: Path, use_kill_file: bool
) -> None:
    job = layout.create_job("hopper")
    script = tmp_path / "hop.sh"
    start_hopper(job, helper, script)
    assert cgroups.members(job), "the hopper is not running"  # start_hopper saw it hop
    started = time.monotonic()
    cgroups.kill(job, use_kill_file=use_kill_file)
    assert cgroups.wait_empty(job, timeout=10), cgroups.members(job)
    elapsed = time.monotonic() - started
    assert not cgroups.populated(job) and cgroups.members(job) == []
    assert no_process_runs(script), "a hopper generation escaped the cgroup"
    assert elapsed < 5


@needs_cgroups
def test_an_env_cleared_setsid_escapee_is_killed_with_its_cgroup(
    layout: Layout, helper: Path | None
) -> None:
    job = layout.create_job("escapee")
    argv = ["env", "-i", "setsid", "/bin/sh", "-c", "/bin/sleep 987.654 >/dev/null & echo $!"]
    proc = subprocess.Popen(cgroup_join.wrap(argv, job, helper=helper), stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=10)
    escapee = int(out)
    held = pidfds([escapee])
    try:
        assert held, "the escapee did not start"
        environ = Path(f"/proc/{escapee}/environ").read_bytes()
        assert b"PROCESS_MCP" not in environ  # no mark: invisible to today's sweep
        assert os.getsid(escapee) != os.getsid(0) and escapee in cgroups.members(job)
        cgroups.kill(job)
        assert cgroups.wait_empty(job, timeout=10)
        assert exited(held[0])
    finally:
        for pidfd in held:
            os.close(pidfd)


@needs_cgroups
def test_one_write_to_jobs_kills_every_tree_as_the_sentinel_would(
    layout: Layout, helper: Path | None, tmp_path: Path
) -> None:
    hopper_job = layout.create_job("a")
    script = tmp_path / "hop.sh"
    start_hopper(hopper_job, helper, script)
    sleeper_job = layout.create_job("b")
    sleeper = subprocess.Popen(cgroup_join.wrap(["sleep", "300"], sleeper_job, helper=helper))
    assert wait_until(lambda: cgroups.members(sleeper_job) == [sleeper.pid], timeout=10)
    layout.kill_all()
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert cgroups.wait_empty(layout.jobs, timeout=10)
    assert no_process_runs(script)


@needs_cgroups
def test_term_reaches_every_member_and_usage_is_read(layout: Layout, helper: Path | None) -> None:
    job = layout.create_job("term")
    busy = (
        "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 300 & sleep 300 & exec sleep 300"
    )
    proc = subprocess.Popen(cgroup_join.wrap(["/bin/sh", "-c", busy], job, helper=helper))
    assert wait_until(lambda: len(cgroups.members(job)) == 3, timeout=20)
    used = cgroups.usage(job)
    assert len(used.pids) == 3 and used.cpu_usec is not None and used.cpu_usec > 1000
    assert used.memory_bytes is None or used.memory_bytes > 0
    assert cgroups.signal_members(job, signal.SIGTERM) == 3
    assert cgroups.wait_empty(job, timeout=10)
    assert proc.wait(timeout=10) == -signal.SIGTERM


@needs_cgroups
def test_sweep_ends_a_dead_owners_subtree_and_spares_a_live_one(
    layout: Layout, helper: Path | None
) -> None:
    # The owner lives until the orphan has joined: a supervisor starting in another
    # worker sweeps the same parent, and must not take the group before it is set up.
    owner = subprocess.Popen(["sleep", "300"])
    assert PROBE.parent is not None
    stale = Layout(PROBE.parent / f"{cgroups.BASE_PREFIX}test-stale-{uuid.uuid4().hex[:8]}")
    os.mkdir(stale.base)
    try:
        os.setxattr(stale.base, cgroups.OWNER_XATTR, owner_tag(owner.pid).encode())
        os.mkdir(stale.jobs)
        job = stale.create_job("left")
        orphan = subprocess.Popen(cgroup_join.wrap(["sleep", "300"], job, helper=helper))
        assert wait_until(lambda: cgroups.members(job) == [orphan.pid], timeout=10)
        layout.create_job("mine")
        assert stale.base not in sweep(PROBE.parent)  # its owner still runs
        assert cgroups.members(job) == [orphan.pid]
        owner.kill()
        owner.wait()
        sweep(PROBE.parent)  # ours, or one in another worker, removed it
        assert not stale.base.exists()
        assert orphan.wait(timeout=10) == -signal.SIGKILL
        assert layout.job("mine").is_dir()
    finally:
        owner.kill()
        owner.wait()
        if stale.base.exists():
            stale.close(timeout=10)


@needs_cgroups
@pytest.mark.anyio
async def test_the_watcher_tells_the_loop_when_a_tree_is_gone(
    layout: Layout, helper: Path | None
) -> None:
    job = layout.create_job("watched")
    proc = subprocess.Popen(cgroup_join.wrap(["sleep", "300"], job, helper=helper))
    try:
        assert wait_until(lambda: cgroups.populated(job), timeout=10)
        assert not await wait_empty_async(job, timeout=0.2)  # still running: times out
        emptied: list[str] = []
        watcher = EmptyWatcher()
        try:
            watcher.watch(job, lambda: emptied.append("gone"))
            assert not emptied
            cgroups.kill(job)
            assert await eventually(lambda: emptied, timeout=10)
            assert emptied == ["gone"] and not cgroups.populated(job)
        finally:
            watcher.close()
    finally:
        proc.kill()
        proc.wait()


@needs_cgroups
def test_clone_mode_starts_the_command_inside_as_our_own_child(
    layout: Layout, helper: Path | None
) -> None:
    if helper is None:
        pytest.skip("no C compiler here")
    job = layout.create_job("cloned")

    def clone(argv: list[str]) -> tuple[subprocess.Popen[bytes], int, OSError | None]:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            launcher = subprocess.Popen(
                cgroup_join.clone_argv(helper, argv, job, write_end),
                pass_fds=(write_end,),
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
        finally:
            os.close(write_end)
        try:
            pid, error = cgroup_join.read_report(read_end)
        finally:
            os.close(read_end)
        return launcher, pid, error

    launcher, pid, error = clone(["sh", "-c", 'cat /proc/self/cgroup; echo "$$"; exec sleep 300'])
    assert error is None and launcher.wait(timeout=10) == 0
    assert launcher.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].isdigit():  # the cgroup lines, then the shell's pid
        line = launcher.stdout.readline().decode().strip()
        assert line, f"output ended early: {lines}"
        lines.append(line)
    assert any(line.startswith("0::") and line.endswith("/jobs/cloned") for line in lines)
    assert int(lines[-1]) == pid
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid
    assert cgroups.members(job) == [pid]
    os.kill(pid, signal.SIGTERM)
    reaped, status = os.waitpid(pid, 0)  # our child, not the launcher's
    assert reaped == pid and os.WTERMSIG(status) == signal.SIGTERM
    launcher.stdout.close()

    launcher, pid, error = clone(["/nonexistent/prog"])
    assert isinstance(error, FileNotFoundError)
    assert os.waitpid(pid, 0)[0] == pid and launcher.wait(timeout=10) == 0
    launcher.stdout.close()  # type: ignore[union-attr]
