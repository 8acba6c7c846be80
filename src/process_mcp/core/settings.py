"""Tunables, read once from the environment so a user can set them in the client's config."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
_UNITS = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": 1024 * GIB}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(?:([KMGT])I?)?B?\s*", re.IGNORECASE)


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


def parse_size(text: str) -> int:
    """Bytes from ``"1073741824"``, ``"512K"``, ``"1.5G"``, ``"2GiB"``, ``"100MB"`` (units are
    powers of 1024, case ignored). Raises ``ValueError`` on anything else."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


def _env_size(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse_size(raw)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not a size; give bytes with an optional K, M, G or T suffix "
            "(powers of 1024), e.g. 512M or 1G, or unset it"
        ) from None


@dataclass(frozen=True)
class Settings:
    """Where logs live and how long things may take.

    ``stop_grace`` is the SIGTERM→SIGKILL delay (supervisord's ``stopwaitsecs``);
    ``log_max_bytes`` caps each process's on-disk log (oldest lines dropped first);
    ``max_line_bytes`` bounds one stored line so memory stays bounded whatever a child writes;
    ``exit_drain_grace`` is how long output is awaited after the leader exits while a
    grandchild still holds the pipe;
    ``disk_cap`` bounds the logs kept by the history across all runs (``PROCESS_MCP_DISK_CAP``;
    the oldest ended runs' logs are dropped first, their records kept).
    """

    state_dir: Path
    stop_grace: float = 5.0
    log_max_bytes: int = 64 * MIB
    max_line_bytes: int = 64 * KIB
    exit_drain_grace: float = 2.0
    disk_cap: int = GIB

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            state_dir=_default_state_dir(),
            stop_grace=_env_number("PROCESS_MCP_STOP_GRACE", 5.0, 0.0),
            log_max_bytes=int(_env_number("PROCESS_MCP_LOG_MAX_BYTES", 64 * MIB, 4 * KIB)),
            max_line_bytes=int(_env_number("PROCESS_MCP_MAX_LINE_BYTES", 64 * KIB, 256)),
            disk_cap=_env_size("PROCESS_MCP_DISK_CAP", GIB),
        )
