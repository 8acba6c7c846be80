"""Every ``PROCESS_MCP_*`` variable, parsed here and only here, in two groups.

* :class:`RunSettings` — per run: how one process is stopped and how much of its output is
  kept (``STOP_GRACE``, ``LOG_MAX_BYTES``, ``MAX_LINE_BYTES``). They belong to the run, not
  to the supervisor that happens to serve it, so they can travel with each start.
* :class:`SupervisorSettings` — supervisor-wide: where state and the socket live, the disk
  cap, containment, idle timeouts, the front-end's mode and log level.

A bad value raises :class:`SettingsError`, one line naming the variable, the value and
what is accepted; every entry point (the MCP server, the supervisor, the person's CLI)
prints it and exits with status 2 (:func:`exit_on_error`). An empty variable counts as
unset. This module imports only the stdlib: the person's CLI reads it on every command.

Not here: ``PROCESS_MCP_OWNER_<token>`` (an ownership mark the core puts in children's
environments, not a setting) and test-only variables (they stay in the tests).
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from process_mcp.core.carry import carried, init_names

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
_UNITS = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": 1024 * GIB}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(?:([KMGT])I?)?B?\s*", re.IGNORECASE)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
USAGE_STATUS = 2  # the exit status of a bad variable, as of a bad flag

PREFIX = "PROCESS_MCP_"
STATE_DIR = "PROCESS_MCP_STATE_DIR"
RUNTIME_DIR = "PROCESS_MCP_RUNTIME_DIR"
DISK_CAP = "PROCESS_MCP_DISK_CAP"
CGROUPS = "PROCESS_MCP_CGROUPS"
SUPERVISOR_IDLE = "PROCESS_MCP_SUPERVISOR_IDLE"
SUPERVISOR_HANDLER = "PROCESS_MCP_SUPERVISOR_HANDLER"
STANDALONE = "PROCESS_MCP_STANDALONE"
HTTP_SESSION_IDLE = "PROCESS_MCP_HTTP_SESSION_IDLE"
LOG_LEVEL = "PROCESS_MCP_LOG_LEVEL"
TOKEN = "PROCESS_MCP_TOKEN"
STOP_GRACE = "PROCESS_MCP_STOP_GRACE"
LOG_MAX_BYTES = "PROCESS_MCP_LOG_MAX_BYTES"
MAX_LINE_BYTES = "PROCESS_MCP_MAX_LINE_BYTES"
PLATFORM = "PROCESS_MCP_PLATFORM"
PLATFORMS = ("auto", "linux", "posix")
SUN_PATH_MAX = 103  # sun_path: 108 bytes with the NUL on Linux, 104 on macOS and the BSDs

Env = Mapping[str, str]


class SettingsError(ValueError):
    """A ``PROCESS_MCP_*`` variable with a value it cannot have; the message is one line
    naming the variable, the value and what is accepted."""


def _raw(env: Env | None, name: str) -> str | None:
    value = (os.environ if env is None else env).get(name)
    return None if value is None or value.strip() == "" else value


def parse_size(text: str) -> int:
    """Bytes from ``"1073741824"``, ``"512K"``, ``"1.5G"``, ``"2GiB"``, ``"100MB"`` (units are
    powers of 1024, case ignored). Raises ``ValueError`` on anything else."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


def env_number(
    env: Env | None, name: str, default: float, minimum: float = 0.0, *, positive: bool = False
) -> float:
    """A finite number ≥ ``minimum`` (``positive``: > 0, a number of seconds); ``default``
    when unset."""
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and (value > 0 if positive else value >= minimum):
        return value
    wanted = "a positive number of seconds" if positive else f"a number from {minimum:g} up"
    raise SettingsError(f"{name}={raw!r} is not {wanted}; unset it or give e.g. {default:g}")


def env_size(env: Env | None, name: str, default: int) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        return parse_size(raw)
    except ValueError:
        raise SettingsError(
            f"{name}={raw!r} is not a size; give bytes with an optional K, M, G or T suffix "
            "(powers of 1024), e.g. 512M or 1G, or unset it"
        ) from None


def env_flag(env: Env | None, name: str, default: bool) -> bool:
    raw = _raw(env, name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise SettingsError(
        f"{name}={raw!r} is not on or off; give 1, true, yes, on or 0, false, no, off, or unset it"
    )


def env_log_level(env: Env | None, name: str = LOG_LEVEL) -> str | None:
    """An upper-case logging level, or None when unset (each program has its default)."""
    raw = _raw(env, name)
    if raw is None:
        return None
    if raw.strip().upper() not in LOG_LEVELS:
        raise SettingsError(f"{name}={raw!r} is not a level: use one of {', '.join(LOG_LEVELS)}")
    return raw.strip().upper()


def state_dir(env: Env | None = None) -> Path:
    """``$PROCESS_MCP_STATE_DIR``, else ``$XDG_STATE_HOME/process-mcp``, else
    ``~/.local/state/process-mcp``: the one rule, for every front-end and the supervisor."""
    if explicit := _raw(env, STATE_DIR):
        return Path(explicit)
    xdg = _raw(env, "XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "process-mcp"


def env_platform(env: Env | None = None) -> str:
    """``PROCESS_MCP_PLATFORM`` resolved to the OS backend, ``"linux"`` or ``"posix"``
    (``auto``, the default: linux on Linux, posix elsewhere; ``linux`` only on Linux)."""
    raw = (_raw(env, PLATFORM) or "auto").strip().lower()
    if raw not in PLATFORMS:
        raise SettingsError(
            f"{PLATFORM}={raw!r} is not one of auto, linux, posix; "
            "unset it (auto: linux on Linux, posix elsewhere)"
        )
    on_linux = sys.platform.startswith("linux")
    if raw == "auto":
        return "linux" if on_linux else "posix"
    if raw == "linux" and not on_linux:
        raise SettingsError(
            f"{PLATFORM}=linux needs Linux, and this is {sys.platform}; set it to posix or auto"
        )
    return raw


def runtime_dir(state: Path, env: Env | None = None) -> Path:
    """``$PROCESS_MCP_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/process-mcp`` (if that folder
    exists), else ``<state dir>/run`` on linux and ``$TMPDIR/process-mcp-<uid>`` on posix
    (macOS gives each user a private ``$TMPDIR``; ``/tmp/process-mcp-<uid>`` when the socket
    there would pass ``sun_path``): the folder of the supervisor's socket and lock. It is
    made 0700 and must be ours (``ensure_private_dir``), so a shared ``/tmp`` cannot be
    used against us."""
    if explicit := _raw(env, RUNTIME_DIR):
        return Path(explicit)
    xdg = _raw(env, "XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "process-mcp"
    if env_platform(env) == "linux":
        return state / "run"
    name = f"process-mcp-{os.getuid()}"
    folder = Path(_raw(env, "TMPDIR") or "/tmp") / name
    if len(os.fsencode(folder / "supervisor.sock")) > SUN_PATH_MAX:
        folder = Path("/tmp") / name
    return folder


def take_token(env: dict[str, str] | None = None) -> str | None:
    """``PROCESS_MCP_TOKEN`` (the HTTP bearer token), removed from the environment as it is
    read so that no child, supervisor or sentinel inherits it."""
    found = (os.environ if env is None else env).pop(TOKEN, None)
    return found or None


@dataclass(frozen=True)
class RunSettings:
    """How one run is stopped and how much of its output is kept.

    ``stop_grace`` is the SIGTERM→SIGKILL delay (supervisord's ``stopwaitsecs``);
    ``log_max_bytes`` caps the run's on-disk log (oldest lines dropped first);
    ``max_line_bytes`` bounds one stored line so memory stays bounded whatever a child writes.
    """

    stop_grace: float = 5.0
    log_max_bytes: int = 64 * MIB
    max_line_bytes: int = 64 * KIB

    @classmethod
    def from_env(cls, env: Env | None = None) -> RunSettings:
        """From ``PROCESS_MCP_STOP_GRACE``, ``_LOG_MAX_BYTES``, ``_MAX_LINE_BYTES``; raises
        :class:`SettingsError` on a bad value."""
        return cls(
            stop_grace=env_number(env, STOP_GRACE, cls.stop_grace, 0.0),
            log_max_bytes=int(env_number(env, LOG_MAX_BYTES, cls.log_max_bytes, 4 * KIB)),
            max_line_bytes=int(env_number(env, MAX_LINE_BYTES, cls.max_line_bytes, 256)),
        )


@dataclass(frozen=True)
class SupervisorSettings:
    """What holds for every run a supervisor serves, and for the front-ends around it.

    ``state_dir`` holds the history, the logs and ``supervisor.log``; ``runtime_dir`` the
    socket and lock; ``disk_cap`` bounds the logs the history keeps across all runs (the
    oldest ended runs' logs go first, their records stay); ``cgroups`` false turns cgroup
    containment off; ``supervisor_idle`` is how long a supervisor without clients or work
    lives; ``standalone`` runs the supervisor inside the MCP server; ``http_session_idle``
    ends an HTTP session unheard from that long; ``log_level`` is None for each program's
    default; ``handler`` replaces the supervisor's service (transport tests only).
    """

    state_dir: Path
    runtime_dir: Path
    disk_cap: int = GIB
    cgroups: bool = True
    supervisor_idle: float = 600.0
    standalone: bool = False
    http_session_idle: float = 30 * 60.0
    log_level: str | None = None
    handler: str | None = None
    platform: str = field(default_factory=lambda: env_platform())  # the OS backend

    @classmethod
    def from_env(cls, env: Env | None = None) -> SupervisorSettings:
        """Every supervisor-wide variable; raises :class:`SettingsError` on a bad value."""
        state = state_dir(env)
        return cls(
            state_dir=state,
            runtime_dir=runtime_dir(state, env),
            disk_cap=env_size(env, DISK_CAP, cls.disk_cap),
            cgroups=env_flag(env, CGROUPS, True),
            supervisor_idle=env_number(env, SUPERVISOR_IDLE, cls.supervisor_idle, positive=True),
            standalone=env_flag(env, STANDALONE, False),
            http_session_idle=env_number(
                env, HTTP_SESSION_IDLE, cls.http_session_idle, positive=True
            ),
            log_level=env_log_level(env),
            handler=_raw(env, SUPERVISOR_HANDLER),
            platform=env_platform(env),
        )


@dataclass(frozen=True)
class Settings:
    """What one process manager needs, both groups flattened: ``state_dir`` and
    ``disk_cap`` are supervisor-wide; ``stop_grace``, ``log_max_bytes`` and
    ``max_line_bytes`` are the :class:`RunSettings` (:attr:`run`) of runs that bring none;
    ``exit_drain_grace`` (no variable) is how long output is awaited after the leader exits
    while a grandchild still holds the pipe; ``platform`` (supervisor-wide) is the OS
    backend, from the environment unless given."""

    state_dir: Path
    stop_grace: float = RunSettings.stop_grace
    log_max_bytes: int = RunSettings.log_max_bytes
    max_line_bytes: int = RunSettings.max_line_bytes
    exit_drain_grace: float = 2.0
    disk_cap: int = GIB
    platform: str = field(default_factory=lambda: env_platform())

    @property
    def run(self) -> RunSettings:
        """The per-run group: what a start that brings none of its own gets."""
        return RunSettings(**carried(self, init_names(RunSettings)))

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        """Both groups from the environment; raises :class:`SettingsError` on a bad value."""
        return cls.of(SupervisorSettings.from_env(env), RunSettings.from_env(env))

    @classmethod
    def of(cls, supervisor: SupervisorSettings, run: RunSettings) -> Settings:
        """The flat settings of both groups (``exit_drain_grace`` at its default)."""
        return cls(
            **carried(supervisor, ("state_dir", "disk_cap", "platform")),
            **carried(run, init_names(RunSettings)),
        )


def check_environment(env: Env | None = None) -> tuple[SupervisorSettings, RunSettings]:
    """Both groups, parsed at once so that a bad variable of either is found up front."""
    return SupervisorSettings.from_env(env), RunSettings.from_env(env)


@contextmanager
def exit_on_error(program: str = "process-mcp") -> Iterator[None]:
    """Around an entry point's parsing: a :class:`SettingsError` becomes one line on stderr
    (``program: message``) and exit status 2, never a traceback."""
    try:
        yield
    except SettingsError as exc:
        print(f"{program}: {exc}", file=sys.stderr, flush=True)
        sys.exit(USAGE_STATUS)
