"""The one OS seam: everything that differs between Linux and other POSIX systems.

Two backends implement :class:`~process_mcp.core.platform.backend.Backend`:

* ``linux`` (``linux.py``): ``/proc``, pidfds, the child subreaper, cgroup v2 where it can
  be written; the fastest and the tightest containment.
* ``posix`` (``posix.py``): POSIX calls and psutil only (macOS, the BSDs, and Linux when
  ``PROCESS_MCP_PLATFORM=posix``, which is how it is tested without a Mac).

``PROCESS_MCP_PLATFORM`` (``auto`` | ``linux`` | ``posix``, parsed in ``core/settings.py``)
picks one for the whole process; the manager selects it from its settings. Code above
``core/`` never asks which one runs. Importing this package is cheap (no psutil): the
backends load on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from process_mcp.core.settings import env_platform

if TYPE_CHECKING:
    from process_mcp.core.platform.backend import Backend
    from process_mcp.core.spawn.reaping import ExitStatus

LINUX = "linux"
POSIX = "posix"

_current: Backend | None = None


def name() -> str:
    """The selected backend's name; before any selection, what the environment says.
    Cheap (no backend is loaded). Raises ValueError on a bad ``PROCESS_MCP_PLATFORM``."""
    return _current.name if _current is not None else env_platform()


def select(platform: str) -> Backend:
    """Make ``platform`` (``"linux"`` or ``"posix"``) the backend of this process and
    return it. Raises ValueError on another name."""
    global _current
    if _current is not None and _current.name == platform:
        return _current
    if platform == LINUX:
        from process_mcp.core.platform.linux import LinuxBackend

        _current = LinuxBackend()
    elif platform == POSIX:
        from process_mcp.core.platform.posix import PosixBackend

        _current = PosixBackend()
    else:
        raise ValueError(f"unknown platform {platform!r}: use linux or posix")
    return _current


def backend() -> Backend:
    """The backend of this process (selected from the environment on first use)."""
    return _current if _current is not None else select(env_platform())


def watch_exit(pid: int, on_exit: Callable[[ExitStatus], None]) -> Callable[[], None]:
    """Call ``on_exit`` once ``pid`` (our child) has exited and been reaped, by the
    selected backend's way. Returns a function that stops watching (idempotent)."""
    return backend().watch_exit(pid, on_exit)
