"""Where the supervisor lives: a private runtime folder (socket + lock) and its log file.

Both folders follow the rules of :mod:`process_mcp.core.settings` (``state_dir``,
``runtime_dir``): the state dir holds ``supervisor.log``, the runtime folder the socket and
lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from process_mcp.core import platform, settings
from process_mcp.core.platform import unixsock


class SupervisorPaths(NamedTuple):
    runtime_dir: Path
    state_dir: Path

    @classmethod
    def from_env(cls) -> SupervisorPaths:
        state = settings.state_dir()
        return cls(runtime_dir=settings.runtime_dir(state), state_dir=state)

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

    def lock_holder(self) -> int | None:
        """The pid of the supervisor holding the lock now; None when the lock is free, -1
        when it is held but the file names no pid yet (being written). Tried without
        blocking, and without taking the lock: a free lock is released at once."""
        try:
            fd = os.open(self.lock, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pid = self.holder_pid()
            return -1 if pid is None else pid
        finally:
            os.close(fd)

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
    """An address for ``bind``/``connect`` to ``path``, even past the ``sun_path`` limit
    where the OS backend can reach it (see ``unixsock.socket_address``)."""
    with unixsock.socket_address(path, platform.name()) as address:
        yield address
