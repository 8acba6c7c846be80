"""What a start asks for: :class:`StartRequest` (the one object a start travels as, from
the MCP tool or the person's CLI through the supervisor to the manager) and its
:class:`StartOptions` (how the process runs, kept for ``restart``); :class:`RestartChanges`.

Standard library only (the person's CLI builds a StartRequest without an event loop). A
field's ``range`` metadata is the accepted range the supervisor's decoder checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from process_mcp.core.errors import InvalidRequest
from process_mcp.core.limits import check_label, quote
from process_mcp.core.settings import RunSettings

StdinMode = Literal["null", "pipe"]
SHELL = "/bin/sh"
RANGE = "process_mcp.range"  # field metadata: (lowest, highest) accepted, either may be None


@dataclass(frozen=True)
class StartOptions:
    """``shell`` runs ``command`` through ``/bin/sh -c``; ``stdin`` "pipe" keeps stdin open for
    input; ``pty`` runs the process under a pseudo-terminal (stdin, stdout and stderr all on
    it, so input is always possible); ``timeout_seconds`` stops it after that long;
    ``label`` is a name unique among running processes."""

    shell: bool = False
    stdin: StdinMode = "null"
    pty: bool = False
    timeout_seconds: float | None = field(default=None, metadata={RANGE: (0, None)})
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
    timeout_seconds: float | None = field(default=None, metadata={RANGE: (0, None)})

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


@dataclass(frozen=True)
class StartRequest:
    """One start, as asked: ``command`` with ``args`` (no shell unless ``options.shell``)
    in ``cwd`` — absolute, or relative to ``folder`` (the caller's default folder; None:
    the starting process's own) — with ``base_env`` (None: the starting process's
    environment) overlaid with ``env``. ``notify_on_exit`` asks for an exit notification;
    ``keep``: the process belongs to no session (it outlives the one that started it);
    ``reuse``: answer the running process with ``options.label`` instead, if there is one.

    Immutable: ``args`` becomes a tuple, and the mappings are copied, so a request can be
    handed from layer to layer and retried without anyone changing it underway."""

    command: str
    args: Sequence[str] = ()
    cwd: str | None = None
    env: Mapping[str, str] | None = None
    notify_on_exit: bool = False
    options: StartOptions = StartOptions()
    folder: str | None = None
    base_env: Mapping[str, str] | None = None
    keep: bool = False
    reuse: bool = False
    approval: str | None = None  # a request id the person approved (the policy asked)
    force: bool = False  # run despite a deny rule: honoured for the person's CLI only
    # How it is stopped and how much output is kept: the caller's per-run settings
    # (None: the starting process's own).
    run_settings: RunSettings | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))
        for name in ("env", "base_env"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, dict(value))
