"""Where the supervisor lives: a private runtime folder (socket + lock) and its log file.

The runtime folder is ``$PROCESS_MCP_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/process-mcp``,
else ``<state dir>/run``; the state dir (which holds ``supervisor.log``) is
``$PROCESS_MCP_STATE_DIR``, else ``$XDG_STATE_HOME/process-mcp``, else
``~/.local/state/process-mcp`` — the same rule as the core's settings.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

# sun_path holds 108 bytes with the terminating NUL on Linux (104 on the BSDs).
_SUN_PATH_MAX = 103


def default_state_dir() -> Path:
    if explicit := os.environ.get("PROCESS_MCP_STATE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "process-mcp"


def default_runtime_dir(state_dir: Path) -> Path:
    if explicit := os.environ.get("PROCESS_MCP_RUNTIME_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "process-mcp"
    return state_dir / "run"


class SupervisorPaths(NamedTuple):
    runtime_dir: Path
    state_dir: Path

    @classmethod
    def from_env(cls) -> SupervisorPaths:
        state = default_state_dir()
        return cls(runtime_dir=default_runtime_dir(state), state_dir=state)

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "supervisor.sock"

    @property
    def lock(self) -> Path:
        return self.runtime_dir / "supervisor.lock"

    @property
    def log(self) -> Path:
        return self.state_dir / "supervisor.log"

    def holder_pid(self) -> int | None:
        """The pid the lock file names (the running or last supervisor), for messages."""
        try:
            return int(self.lock.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 16384))
                text = handle.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"(no log: {exc.strerror})"
        return "\n".join(text.splitlines()[-lines:])


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) and leave it mode 0700, whatever the umask.

    Refuses a folder owned by another user or that is a symlink: someone else could then
    read the socket's traffic or plant their own socket.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"supervisor runtime folder {path} is not a plain folder")
    if info.st_uid != os.getuid():
        raise PermissionError(
            f"supervisor runtime folder {path} belongs to uid {info.st_uid}, not to us "
            f"(uid {os.getuid()}); set PROCESS_MCP_RUNTIME_DIR to a folder of your own"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


@contextlib.contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """An address for ``bind``/``connect`` to ``path``, even past the ``sun_path`` limit:
    a long path is reached through ``/proc/self/fd/<dir fd>/<name>`` (Linux), with the
    folder held open for the duration of the ``with`` block."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    if not os.path.isdir("/proc/self/fd"):
        raise OSError(
            f"socket path {path} is longer than {_SUN_PATH_MAX} bytes; "
            "set PROCESS_MCP_RUNTIME_DIR to a shorter folder"
        )
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
