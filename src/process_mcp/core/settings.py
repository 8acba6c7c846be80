"""Tunables, read once from the environment so a user can set them in the client's config."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB


def _default_state_dir() -> Path:
    if explicit := os.environ.get("PROCESS_MCP_STATE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "process-mcp"


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not a number; unset it or give e.g. {default:g}"
        ) from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} is below the minimum {minimum:g}")
    return value


@dataclass(frozen=True)
class Settings:
    """Where logs live and how long things may take.

    ``stop_grace`` is the SIGTERM→SIGKILL delay (supervisord's ``stopwaitsecs``);
    ``log_max_bytes`` caps each process's on-disk log (oldest lines dropped first);
    ``max_line_bytes`` bounds one stored line so memory stays bounded whatever a child writes;
    ``exit_drain_grace`` is how long output is awaited after the leader exits while a
    grandchild still holds the pipe.
    """

    state_dir: Path
    stop_grace: float = 5.0
    log_max_bytes: int = 64 * MIB
    max_line_bytes: int = 64 * KIB
    exit_drain_grace: float = 2.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            state_dir=_default_state_dir(),
            stop_grace=_env_number("PROCESS_MCP_STOP_GRACE", 5.0, 0.0),
            log_max_bytes=int(_env_number("PROCESS_MCP_LOG_MAX_BYTES", 64 * MIB, 4 * KIB)),
            max_line_bytes=int(_env_number("PROCESS_MCP_MAX_LINE_BYTES", 64 * KIB, 256)),
        )
