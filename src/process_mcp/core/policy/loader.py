"""The policy of now: files re-read when they change, cached while they do not."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from process_mcp.core.policy.files import (
    PROJECT_FILE,
    PolicyError,
    read,
    tighten,
    user_policy,
    user_policy_path,
)
from process_mcp.core.policy.model import Policy

logger = logging.getLogger(__name__)
_Stamp = tuple[int, int] | None  # (mtime_ns, size), None: no file


def _stamp(path: Path) -> _Stamp:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError:
        return (-1, -1)  # unreadable: read() names the fault
    return (info.st_mtime_ns, info.st_size)


class PolicySource:
    """The person's file (read by the supervisor) plus, per default folder, a project's.

    ``current(folder)`` costs two ``stat`` calls when nothing changed. A broken file raises
    :class:`PolicyError` on every call until it is fixed or removed; each warning of a
    project file is logged once per change of the file."""

    def __init__(self, user_path: Path | None = None) -> None:
        self.user_path = user_path or user_policy_path()
        self._user: tuple[_Stamp, Policy | PolicyError] | None = None
        self._projects: dict[str, tuple[_Stamp, _Stamp, Policy | PolicyError]] = {}

    def user(self) -> Policy:
        stamp = _stamp(self.user_path)
        if self._user is None or self._user[0] != stamp:
            try:
                loaded: Policy | PolicyError = user_policy(
                    None if stamp is None else read(self.user_path)
                )
            except PolicyError as exc:
                loaded = exc
            self._user = (stamp, loaded)
        return _raise_or(self._user[1])

    def current(self, folder: str | None = None) -> Policy:
        """The policy for a session whose default folder is ``folder`` (None: the user's)."""
        base = self.user()
        if not folder:
            return base
        path = Path(folder) / PROJECT_FILE
        stamp = _stamp(path)
        user_stamp = self._user[0] if self._user else None
        cached = self._projects.get(str(path))
        if cached is None or cached[0] != stamp or cached[1] != user_stamp:
            try:
                loaded: Policy | PolicyError = base if stamp is None else tighten(base, read(path))
            except PolicyError as exc:
                loaded = exc
            if isinstance(loaded, Policy):
                for warning in loaded.warnings:
                    logger.warning("policy: %s", warning)
            if len(self._projects) > 256:
                self._projects.clear()
            self._projects[str(path)] = (stamp, user_stamp, loaded)
            cached = self._projects[str(path)]
        return _raise_or(cached[2])


def _raise_or(loaded: Policy | PolicyError) -> Policy:
    if isinstance(loaded, PolicyError):
        raise PolicyError(str(loaded))
    return loaded


def folder_of(cwd: str | None) -> str:
    return os.path.realpath(cwd or os.getcwd())
