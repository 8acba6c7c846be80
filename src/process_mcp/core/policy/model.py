"""A loaded policy: the user file's, tightened by a project's, over the built-in floor."""

from __future__ import annotations

from dataclasses import dataclass, field

from process_mcp.core.policy.rules import BUILTIN, Decision, Floor, Rule


@dataclass(frozen=True)
class Limits:
    """``[limits]``: ``memory`` in bytes per tree, ``max_running`` per supervisor,
    ``per_session`` per MCP session; None is no limit. ``*_source`` is ``FILE:LINE``."""

    memory: int | None = None
    memory_text: str | None = None
    max_running: int | None = None
    per_session: int | None = None
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RedactPattern:
    id: str
    regex: str
    source: str = BUILTIN


@dataclass(frozen=True)
class RedactConfig:
    """``[redact]``: on unless the *user* file says ``enabled = false``; the patterns of
    both files are added to the built-in ones."""

    enabled: bool = True
    patterns: tuple[RedactPattern, ...] = ()


@dataclass(frozen=True)
class Setting:
    """A top-level decision (``default``, ``shell``) and where it was set."""

    value: Decision = "allow"
    source: str = BUILTIN


@dataclass(frozen=True)
class Policy:
    """What every check runs against. ``files`` are the files it was read from (none:
    the floor alone); ``warnings`` say what a project file asked for and did not get."""

    default: Setting = Setting()
    shell: Setting = Setting()
    roots: tuple[tuple[str, ...], ...] = ()  # every group must hold the cwd (user, project)
    roots_sources: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    floor: Floor = field(default_factory=Floor)
    limits: Limits = Limits()
    redact: RedactConfig = RedactConfig()
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


FLOOR_ONLY = Policy()
