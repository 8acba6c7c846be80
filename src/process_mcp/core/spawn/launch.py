"""Turning a start request into a running child: checks first, then one ``fork_exec``.

No ``preexec_fn`` (it forces a full ``fork()``: 44-54 ms with a large heap instead of
under 1 ms with vfork) and no shell unless asked. ``start_new_session`` gives the child
its own session and process group, so pgid == pid and one ``killpg`` reaches its tree.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from pathlib import Path

from process_mcp.core.errors import StartFailed

# Anything that only a shell would understand.
_SHELL_SYNTAX = re.compile(r"\s|[|&;<>()$`*?~]")

DEFAULT_ENV = {"PYTHONUNBUFFERED": "1"}


def resolve_cwd(cwd: str | None) -> str:
    """The absolute, existing directory to start in (relative paths are the server's)."""
    path = Path(cwd).expanduser() if cwd else Path.cwd()
    path = path if path.is_absolute() else Path.cwd() / path
    if not path.exists():
        raise StartFailed(
            f"cwd {str(path)!r} does not exist ({os.strerror(errno.ENOENT)}); "
            "pass an existing directory"
        )
    if not path.is_dir():
        raise StartFailed(
            f"cwd {str(path)!r} is not a directory ({os.strerror(errno.ENOTDIR)}); "
            "pass the directory to run in"
        )
    return str(path.resolve())


def build_env(overlay: dict[str, str] | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment), with unbuffered Python by default,
    overlaid with ``overlay``. A supervisor passes the requesting front-end's environment as
    ``base``, so a child sees what it would have seen had the front-end spawned it."""
    env = {**(os.environ if base is None else base), **DEFAULT_ENV}
    for key, value in (overlay or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise StartFailed(
                f"env entry {key!r} is invalid: names must be non-empty without '=' or NUL, "
                "values without NUL"
            )
        env[key] = value
    return env


def check_argv(argv: list[str]) -> None:
    for position, arg in enumerate(argv):
        if "\0" in arg:
            where = "command" if position == 0 else f"args[{position - 1}]"
            raise StartFailed(
                f"{where} contains a NUL byte, which no program can receive; remove it"
            )


def start_session_leader(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    *,
    stdin: int = subprocess.DEVNULL,
    stdout: int = subprocess.PIPE,
    stderr: int = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new session and process group (pgid == pid).

    By default stdin is /dev/null and both outputs are piped (``wiring`` passes a pipe for
    stdin, or a terminal's fd for all three). Raises StartFailed, naming the program and
    the fix, when it cannot be executed."""
    check_argv(argv)
    try:
        return subprocess.Popen(
            argv,
            executable=_resolved(argv[0], env),
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
            bufsize=0,
        )
    except OSError as exc:
        raise StartFailed(_explain(exc, argv[0], cwd)) from None


_RESOLVED: dict[tuple[str, str], str] = {}


def _resolved(command: str, env: dict[str, str]) -> str | None:
    """``command`` looked up in the child's PATH, remembered per (command, PATH).

    ``Popen`` otherwise calls ``os.get_exec_path`` on every spawn, which installs and
    removes a warnings filter each time (~20-60 µs, as much as a tenth of a spawn). A
    remembered path is re-checked with one ``access`` call. None (let ``execvpe`` search,
    and report a missing program the usual way) for paths, misses, and a PATH with
    relative entries (those resolve against the child's cwd, not ours)."""
    if "/" in command:
        return None
    path = env.get("PATH", os.defpath)
    key = (command, path)
    found = _RESOLVED.get(key)
    if found is not None and os.access(found, os.X_OK):
        return found
    if any(not entry.startswith("/") for entry in path.split(os.pathsep)):
        return None
    found = shutil.which(command, path=path)
    if found is not None:
        _RESOLVED[key] = found
    return found


def _explain(exc: OSError, command: str, cwd: str) -> str:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    path = exc.filename if exc.filename is not None else command
    message = f"cannot start {command!r}: {reason} ({path})"
    if exc.errno == errno.ENOENT and path == command and _SHELL_SYNTAX.search(command):
        return (
            f"{message}. It looks like a shell command line: pass shell: true to run it "
            "through /bin/sh, or put the program in 'command' and each argument in 'args'"
        )
    if exc.errno == errno.ENOENT:
        return f"{message}. Check the spelling, give an absolute path, or fix PATH in 'env'"
    if exc.errno == errno.EACCES:
        return f"{message}. The file is not executable: chmod +x it, or run it via its interpreter"
    if exc.errno == errno.ENOEXEC:
        return f"{message}. The file has no valid format or #! line: run it via its interpreter"
    return message
