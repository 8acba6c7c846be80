"""How a process is started beyond command/args/cwd/env (SPEC §7.4), kept for ``restart``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from process_mcp.core.errors import InvalidRequest
from process_mcp.core.limits import check_label, quote

StdinMode = Literal["null", "pipe"]
SHELL = "/bin/sh"


@dataclass(frozen=True)
class StartOptions:
    """``shell`` runs ``command`` through ``/bin/sh -c``; ``stdin`` "pipe" keeps stdin open for
    input; ``pty`` runs the process under a pseudo-terminal (stdin, stdout and stderr all on
    it, so input is always possible); ``timeout_seconds`` stops it after that long;
    ``label`` is a name unique among running processes."""

    shell: bool = False
    stdin: StdinMode = "null"
    pty: bool = False
    timeout_seconds: float | None = None
    label: str | None = None

    @property
    def accepts_input(self) -> bool:
        return self.pty or self.stdin == "pipe"

    def argv(self, command: str, args: list[str]) -> list[str]:
        """The argv to execute: ``command`` + ``args``, or the shell running ``command``."""
        if not self.shell:
            return [command, *args]
        if args:
            raise InvalidRequest(
                f"shell: true runs 'command' as one shell line, so 'args' must be empty "
                f"(got {quote(repr(args))}); put the arguments into the command line, e.g. "
                f"{quote(' '.join([command, *args]))}, or pass shell: false"
            )
        return [SHELL, "-c", command]

    def check(self) -> None:
        if self.timeout_seconds is not None and not self.timeout_seconds > 0:
            raise InvalidRequest(
                f"timeoutSeconds must be greater than 0 (got {self.timeout_seconds!r}); "
                "leave it out for no timeout"
            )
        if self.stdin not in ("null", "pipe"):
            raise InvalidRequest(f"stdin must be 'null' or 'pipe' (got {self.stdin!r})")
        if self.label is not None:
            check_label(self.label)


@dataclass(frozen=True)
class RestartChanges:
    """What a restart changes before it starts the process again; ``None`` keeps what it
    was started with. ``env`` replaces the overlay of the server's environment (pass the
    whole overlay you want); a relative ``cwd`` resolves against the caller's default
    folder, as at start."""

    args: list[str] | None = None
    cwd: str | None = None
    env: dict[str, str] | None = None
    stdin: StdinMode | None = None
    pty: bool | None = None
    timeout_seconds: float | None = None

    def options(self, current: StartOptions) -> StartOptions:
        """``current`` with the options this changes, checked (raises InvalidRequest)."""
        changed = replace(
            current,
            stdin=current.stdin if self.stdin is None else self.stdin,
            pty=current.pty if self.pty is None else self.pty,
            timeout_seconds=(
                current.timeout_seconds if self.timeout_seconds is None else self.timeout_seconds
            ),
        )
        changed.check()
        return changed
