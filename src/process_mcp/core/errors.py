"""Errors the core raises. Each message names the id, path or value at fault and says what to do,
because it is shown verbatim to a model that must correct its next call."""


class ProcessError(Exception):
    """Base class: a request the core refused, with a message fit for the caller."""


class UnknownProcess(ProcessError):
    def __init__(self, process_id: str, known: list[str]) -> None:
        hint = f"known ids: {', '.join(known)}" if known else "no process has been started yet"
        super().__init__(f"no process with id {process_id!r} ({hint}); call 'list' to see them")
        self.process_id = process_id


class StartFailed(ProcessError):
    """The command could not be started; no record was created."""


class ProcessRunning(ProcessError):
    """The operation needs an ended process."""


class InvalidRequest(ProcessError):
    """Arguments that are well-typed but cannot be honoured together."""


class PolicyRefused(ProcessError):
    """The person's policy refuses the command (or a limit it sets is reached); the text
    names the rule, its ``FILE:LINE``, the reason and the command as evaluated."""


class ApprovalRequired(ProcessError):
    """The policy asks the person first; ``request_id`` is what they approve."""

    def __init__(self, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.request_id = request_id or _request_id_in(message)


def _request_id_in(message: str) -> str:
    """The request id an approval text carries (``approval: "r-1a2b3c"``), '' if none."""
    import re

    match = re.search(r'approval: "(r-[0-9a-f]+)"', message)
    return match.group(1) if match else ""
