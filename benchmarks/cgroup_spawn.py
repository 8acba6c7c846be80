"""What placing each spawn in its own cgroup costs: spawn + reap of ``true``, per launcher.

    uv run python benchmarks/cgroup_spawn.py [--spawns 400] [--gap-spawns 100]

Needs a writable cgroup v2 subtree (root, or a delegated one); everything it creates is
removed. Every cgroup row includes making the job's cgroup before the spawn and removing
it after the reap (what a managed tree costs). Rows:

* plain Popen — ``Popen(["true"], start_new_session=True)`` with two pipes (the baseline);
* sh join — ``/bin/sh -c 'echo 0 > "$0/cgroup.procs" || exit 125; exec "$@"'``;
* python join — ``python -I -S -c`` doing the same write, then ``execvp``;
* C join — the compiled ``cgroup_exec.c`` (static): write ``0``, then ``execv``;
* C clone3, own cgroup — the same, into the supervisor's own cgroup: the launcher's cost
  without any cgroup work (control);
* C clone3 — the same program with ``clone3(CLONE_INTO_CGROUP|CLONE_PARENT)``: no migration
  at all, but the job is a sibling of the Popen'd launcher, its pid comes back on a pipe
  and it is reaped by pid (not a ``Popen`` any more).

Columns: "supervisor" is the time until the supervisor holds the pid (Popen returned; for
clone3 also the pid read back), which is what blocks it; "total" is until the reap.
Measured back-to-back (interleaved rounds, random order), then with a 50 ms pause before
each spawn: spaced-out migrations wait for a kernel RCU grace period, which back-to-back
runs hide. First a check that each launcher really runs the command in the cgroup.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _harness import machine, percentile, table

from process_mcp.core.trees import cgroup_join, cgroups
from process_mcp.core.trees.cgroup_layout import Layout

ROUND = 50
Spawner = Callable[[list[str], Path | None], tuple[int, subprocess.Popen[bytes], int | None]]


def _popen(argv: list[str], **extra: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
        bufsize=0,
        **extra,  # type: ignore[arg-type]
    )


def clone_spawn(helper: Path, argv: list[str], cgroup: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The launcher's clone mode: returns the launcher's Popen and the job's pid."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        launcher = _popen(
            cgroup_join.clone_argv(helper, argv, cgroup, write_end), pass_fds=(write_end,)
        )
    finally:
        os.close(write_end)
    try:
        pid, error = cgroup_join.read_report(read_end)
    finally:
        os.close(read_end)
    if error is not None:
        os.waitpid(pid, 0)
        raise error
    return launcher, pid


def measure(kind: str, layout: Layout | None, helper: Path | None, key: str) -> tuple[float, float]:
    """(supervisor ms, total ms) for one spawn + reap of ``true``."""
    started = time.perf_counter()
    cgroup = layout.create_job(key) if layout is not None else None
    job_pid: int | None = None
    if kind == "plain":
        proc = _popen(["true"])
    elif kind == "sh":
        proc = _popen(cgroup_join.wrap(["true"], cgroup))  # type: ignore[arg-type]
    elif kind == "python":
        proc = _popen(cgroup_join.python_wrap(["true"], cgroup, sys.executable))  # type: ignore[arg-type]
    elif kind == "cjoin":
        proc = _popen(cgroup_join.wrap(["true"], cgroup, helper=helper, executable="/bin/true"))  # type: ignore[arg-type]
    elif kind == "clone":
        proc, job_pid = clone_spawn(helper, ["/bin/true"], cgroup)  # type: ignore[arg-type]
    else:  # the launcher's own cost: clone3 into the cgroup we are already in
        proc, job_pid = clone_spawn(helper, ["/bin/true"], layout.base.parent)  # type: ignore[arg-type,union-attr]
    ready = time.perf_counter()
    proc.wait()
    if job_pid is not None:
        os.waitpid(job_pid, 0)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    if cgroup is not None:
        os.rmdir(cgroup)
    ended = time.perf_counter()
    return (ready - started) * 1000, (ended - started) * 1000


def check(kind: str, layout: Layout, helper: Path) -> None:
    """The command must see itself in the job's cgroup."""
    cgroup = layout.create_job(f"check-{kind}")
    argv = ["/bin/cat", "/proc/self/cgroup"]
    if kind == "clone":
        proc, pid = clone_spawn(helper, argv, cgroup)
        out = proc.stdout.read() if proc.stdout else b""  # type: ignore[union-attr]
        proc.wait()
        os.waitpid(pid, 0)
    else:
        wrapped = {
            "sh": cgroup_join.wrap(argv, cgroup),
            "python": cgroup_join.python_wrap(argv, cgroup, sys.executable),
            "cjoin": cgroup_join.wrap(argv, cgroup, helper=helper),
        }[kind]
        out = subprocess.run(wrapped, capture_output=True, check=True).stdout
    line = next(x for x in out.decode().splitlines() if x.startswith("0::"))
    assert line.endswith(f"/jobs/check-{kind}"), (kind, line)
    os.rmdir(cgroup)


def run(spawns: int, gap_spawns: int) -> None:
    probe = cgroups.detect()
    if not probe.available:
        sys.exit(f"cgroup v2 is not writable here: {probe.reason}")
    layout = Layout.create(probe, f"bench-{os.getpid()}")
    names = {
        "plain": "plain Popen (baseline)",
        "sh": "sh join",
        "python": "python -I -S join",
        "cjoin": "C join (static)",
        "clone": "C clone3 INTO_CGROUP",
        "own": "C clone3, own cgroup (control)",
    }
    try:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            helper = cgroup_join.build_helper(Path(scratch))
            print(f"launcher build: {(time.perf_counter() - started) * 1000:.0f} ms")
            assert helper is not None, "no C compiler: cannot measure the C rows"
            for kind in ("sh", "python", "cjoin", "clone"):
                check(kind, layout, helper)
            print(f"{machine()}; {probe.reason}")
            counter = [0]

            def once(kind: str) -> tuple[float, float]:
                counter[0] += 1
                return measure(kind, None if kind == "plain" else layout, helper, str(counter[0]))

            for kind in names:  # warm-up
                for _ in range(10):
                    once(kind)
            for label, count, gap in (
                ("back-to-back", spawns, 0.0),
                ("50 ms gaps", gap_spawns, 0.05),
            ):
                samples: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
                order = list(names)
                for _ in range(max(1, count // ROUND)):
                    random.shuffle(order)
                    for kind in order:
                        for _ in range(ROUND):
                            if gap:
                                time.sleep(gap)
                            samples[kind].append(once(kind))
                report(label, names, samples)
    finally:
        layout.close()


def report(
    label: str, names: dict[str, str], samples: dict[str, list[tuple[float, float]]]
) -> None:
    base = statistics.median(total for _, total in samples["plain"])
    rows = []
    for kind, values in samples.items():
        supervisor = [s for s, _ in values]
        total = [t for _, t in values]
        rows.append(
            [
                names[kind],
                len(values),
                f"{statistics.median(supervisor):.2f}",
                f"{statistics.median(total):.2f}",
                f"{statistics.fmean(total):.2f}",
                f"{percentile(total, 0.9):.2f}",
                f"{statistics.median(total) / base:.2f}x",
            ]
        )
    print(f"\nspawn + reap of `true`, {label}")
    headers = ["launcher", "n", "supervisor ms", "total median", "mean", "p90", "vs plain"]
    print(table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spawns", type=int, default=400, help="back-to-back, per launcher")
    parser.add_argument("--gap-spawns", type=int, default=100, help="with 50 ms gaps")
    args = parser.parse_args()
    run(args.spawns, args.gap_spawns)


if __name__ == "__main__":
    main()
