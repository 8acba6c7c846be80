"""Placing a command in its cgroup before it runs, with a plain ``Popen`` and no
``preexec_fn`` (which forces a full ``fork()`` and is not thread-safe).

:func:`wrap` (what the server uses): a launcher moves itself into the job's cgroup (one
write of ``0`` to its ``cgroup.procs``) and then execs the command, keeping the pid, so
Popen's child is the command as before. Every instruction of the command, hence every fork,
runs inside the cgroup. The launcher is ``cgroup_exec.c``, compiled with the machine's
``cc`` at first use into the state directory (static where libc.a exists), or else
``/bin/sh`` (``echo 0 > "$0/cgroup.procs" || exit 125; exec "$@"``). Either exits 125
with a message on stderr if the cgroup cannot be joined, so that failure is told apart
from the command's own codes; the compiled one also takes the program path apart from
``argv[0]`` (``Popen(executable=...)``) and exits 127 (not found) or 126 (other exec
failure) with a message.

Measured (``benchmarks/cgroup_spawn.py``, 2 cores): the supervisor is blocked no longer
than for a plain spawn (Popen returns once the launcher is exec'd: 0.35-0.44 ms vs 0.42).
The move itself waits for a kernel RCU grace period when spawns are spaced out, so the
command starts ~15 ms later then (back-to-back: +0.4 ms compiled, +1 ms sh); that wait is
in the launcher, never in the supervisor.

:func:`clone_argv` / :func:`read_report` (measured, not used yet): the compiled launcher
``clone3(CLONE_INTO_CGROUP | CLONE_PARENT)``s the command straight into the cgroup, so
there is no move and no wait (+0.8 ms end to end, spaced or not), but the command is then
a *sibling* of Popen's child: its pid comes back on a pipe and it is reaped by pid.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

logger = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("cgroup_exec.c")
JOIN_FAILED = 125
SH_JOIN = 'echo 0 > "$0/cgroup.procs" || exit 125; exec "$@"'
_COMPILE_TIMEOUT = 30.0


def helper_path(directory: Path) -> Path:
    """Where the launcher built from this version of the source lives in ``directory``."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    return directory / f"cgexec-{digest}"


def build_helper(directory: Path) -> Path | None:
    """The compiled launcher, building it on first use; None when there is no C compiler
    or the build fails (logged once per call: the caller then keeps the ``sh`` launcher).

    Built into a temporary name and renamed, so concurrent servers never run a half-written
    file; a static link is tried first (no dynamic loader at each spawn)."""
    target = helper_path(directory)
    if os.access(target, os.X_OK):
        return target
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        logger.info("no C compiler (cc): cgroup placement uses the /bin/sh launcher")
        return None
    directory.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    error = ""
    for extra in (["-static"], []):
        command = [compiler, "-O2", *extra, "-o", str(temporary), str(SOURCE)]
        try:
            done = subprocess.run(
                command, capture_output=True, timeout=_COMPILE_TIMEOUT, check=False, env=_env()
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = str(exc)
            continue
        if done.returncode == 0 and _works(temporary):
            os.replace(temporary, target)
            return target
        error = done.stderr.decode(errors="replace").strip()[-500:]
    with contextlib.suppress(OSError):
        temporary.unlink()
    logger.warning("cannot build the cgroup launcher (%s): using /bin/sh instead", error)
    return None


def _env() -> dict[str, str]:
    """The compiler's environment: PATH only, so that it carries no ownership mark of the
    server's (it is not a managed process, and no tree search should find it)."""
    return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}


def _works(helper: Path) -> bool:
    """The launcher runs here (``usage`` exits 2): not built for another libc or arch."""
    try:
        done = subprocess.run([str(helper)], capture_output=True, timeout=10, env=_env())
        return done.returncode == 2
    except (OSError, subprocess.TimeoutExpired):
        return False


def wrap(
    argv: list[str],
    cgroup: Path,
    *,
    helper: Path | None = None,
    executable: str | None = None,
) -> list[str]:
    """``argv`` as a command line that joins ``cgroup`` first, for ``Popen`` (with no
    ``executable=``: pass the resolved program here instead; the ``sh`` launcher cannot
    keep an ``argv[0]`` that differs from it, so it then runs ``executable`` as argv[0])."""
    if helper is not None:
        return [str(helper), "join", str(cgroup), executable or argv[0], *argv]
    command = [executable, *argv[1:]] if executable else argv
    return ["/bin/sh", "-c", SH_JOIN, str(cgroup), *command]


def clone_argv(
    helper: Path, argv: list[str], cgroup: Path, report_fd: int, executable: str | None = None
) -> list[str]:
    """The compiled launcher's clone mode, for ``Popen(..., pass_fds=(report_fd,))`` with
    ``start_new_session`` (the command calls ``setsid`` itself: pgid == its pid). Its
    Popen'd process exits 0 at once; the command is the caller's own child (CLONE_PARENT),
    whose pid :func:`read_report` returns. Kernels without CLONE_INTO_CGROUP (before 5.7)
    or a seccomp filter refusing it make it fall back to a move before exec."""
    return [str(helper), "clone", str(cgroup), str(report_fd), executable or argv[0], *argv]


def read_report(read_fd: int) -> tuple[int, OSError | None]:
    """The command's pid from the clone launcher's report, and the error that ended it
    before it ran, if any (the errno of a failed exec; of a failed join, then with
    ``filename`` ``"cgroup"``): it is our child either way and must be reaped. Blocks
    until the command has exec'd or failed (close the write end first). Raises ``OSError``
    if the launcher exited without a report (it could not clone: see its stderr)."""
    with os.fdopen(read_fd, "rb", closefd=False) as report:
        line = report.readline().split()
    if len(line) != 2:
        raise OSError(0, "the cgroup launcher exited without a report (see its stderr)")
    pid, code = int(line[0]), int(line[1])
    if code < 0:
        return pid, OSError(-code, os.strerror(-code), "cgroup")
    return pid, OSError(code, os.strerror(code)) if code else None


def python_wrap(argv: list[str], cgroup: Path, python: str) -> list[str]:
    """The same with a ``python -I -S`` launcher (measured; slower than both others)."""
    code = (
        "import os,sys\n"
        "fd=os.open(sys.argv[1]+'/cgroup.procs',os.O_WRONLY)\n"
        "os.write(fd,b'0')\n"
        "os.execvp(sys.argv[2],sys.argv[2:])"
    )
    return [python, "-I", "-S", "-c", code, str(cgroup), *argv]
