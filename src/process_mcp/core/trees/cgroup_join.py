"""Placing a command in its cgroup before it runs, with a plain ``Popen`` and no
``preexec_fn`` (which forces a full ``fork()`` and is not thread-safe).

The command is wrapped: a launcher moves itself into the job's cgroup (one write of ``0``
to its ``cgroup.procs``) and then execs the command, keeping the pid. Every instruction of
the command, and so every fork, runs inside the cgroup. The launcher is

* ``cgroup_exec.c``, compiled with the machine's ``cc`` at first use into the state
  directory (static where libc.a exists): ~0.4 ms over a plain spawn;
* otherwise ``/bin/sh`` (``echo 0 > "$0/cgroup.procs" && exec "$@"``): ~0.6 ms more.

Either exits 125 with a message on stderr if the cgroup cannot be joined, so that failure
is told apart from the command's own codes. The compiled launcher also takes the program
path separately from ``argv[0]``, as ``Popen(executable=...)`` does; it exits 127 (not
found) or 126 (any other exec failure) with a message on stderr.

The move itself can stall for a kernel RCU grace period (10-20 ms here when spawns are
spaced out) while migrating; that stall is in the launcher, after ``Popen`` has returned,
so the supervisor is never blocked by it. See ``benchmarks/cgroup_spawn.py``.
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
                command, capture_output=True, timeout=_COMPILE_TIMEOUT, check=False
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


def _works(helper: Path) -> bool:
    """The launcher runs here (``usage`` exits 2): not built for another libc or arch."""
    try:
        return subprocess.run([str(helper)], capture_output=True, timeout=10).returncode == 2
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


def python_wrap(argv: list[str], cgroup: Path, python: str) -> list[str]:
    """The same with a ``python -I -S`` launcher (measured; slower than both others)."""
    code = (
        "import os,sys\n"
        "fd=os.open(sys.argv[1]+'/cgroup.procs',os.O_WRONLY)\n"
        "os.write(fd,b'0')\n"
        "os.execvp(sys.argv[2],sys.argv[2:])"
    )
    return [python, "-I", "-S", "-c", code, str(cgroup), *argv]
