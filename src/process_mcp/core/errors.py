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
