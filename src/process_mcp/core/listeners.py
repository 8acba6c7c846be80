"""Who hears of what happens to processes: one fan-out for the manager's three happenings.

Every happening flows one way — child → drain → log store → listeners — so a wait, a
resource subscription or an exit notice never polls. Listeners run on the event loop, on
the hot path of draining for output, so they must be cheap and must not raise.
"""

from __future__ import annotations

from collections.abc import Callable

from process_mcp.core.records import ProcessRecord

ExitListener = Callable[[ProcessRecord], None]
OutputListener = Callable[[str], None]
RecordsListener = Callable[[], None]
ForgetListener = Callable[[str], None]


class Listeners:
    """Exit, output and record-table listeners, called in the order they were added."""

    def __init__(self) -> None:
        self._exit: list[ExitListener] = []
        self._output: dict[object, OutputListener] = {}
        self._records: list[RecordsListener] = []
        self._forgotten: list[ForgetListener] = []

    def on_exit(self, listener: ExitListener) -> None:
        """``listener(record)`` runs once per run, after its output has been captured."""
        self._exit.append(listener)

    def on_output(self, listener: OutputListener) -> Callable[[], None]:
        """``listener(process_id)`` runs after each chunk of output reaches the log.

        Returns a callable that removes the listener (idempotent)."""
        token = object()
        self._output[token] = listener
        return lambda: self._output.pop(token, None) and None

    def on_records(self, listener: RecordsListener) -> None:
        """``listener()`` runs when a record is added (start) or forgotten (remove)."""
        self._records.append(listener)

    def on_forgotten(self, listener: ForgetListener) -> None:
        """``listener(process_id)`` runs when an ended process leaves memory for the
        history (its id then answers from there); not for ``remove``."""
        self._forgotten.append(listener)

    def exited(self, record: ProcessRecord) -> None:
        for listener in list(self._exit):
            listener(record)

    def output(self, process_id: str) -> None:
        for listener in list(self._output.values()):
            listener(process_id)

    def records_changed(self) -> None:
        for listener in list(self._records):
            listener()

    def forgotten(self, process_id: str) -> None:
        for listener in list(self._forgotten):
            listener(process_id)
