"""Talking to a running process: its stdin and its process group.

Both check first that the run can still hear it, and say why not with the fix, so the
manager only looks up the record and its current run.
"""

from __future__ import annotations

from process_mcp.core.errors import InvalidRequest
from process_mcp.core.records import ProcessRecord
from process_mcp.core.run import Run
from process_mcp.core.signals import SIGNALS, terminal_signals
from process_mcp.core.spawn.stdin import InputReceipt
from process_mcp.core.trees import proc


def write_input(record: ProcessRecord, run: Run | None, text: str, eof: bool) -> InputReceipt:
    """Write ``text`` to the run's stdin (then close it when ``eof``); see ``send_input``."""
    process_id = record.id
    if not record.options.accepts_input:
        raise InvalidRequest(
            f"process {process_id!r} was started with stdin 'null', so it has no input to "
            "write to; start it again with stdin: 'pipe' (or pty: true) to send input"
        )
    if not record.running or run is None or run.stdin is None:
        raise InvalidRequest(
            f"process {process_id!r} has ended (status {record.status.value}), so nothing "
            f"reads its input; call 'restart' with id {process_id!r} to run it again"
        )
    if record.options.pty:
        record.signals_sent.update(terminal_signals(text))
    try:
        run.stdin.write(text.encode(), eof=eof)
    except InvalidRequest as exc:
        raise InvalidRequest(f"process {process_id!r}: {exc}") from None
    return run.stdin.receipt()


def send_group_signal(record: ProcessRecord, run: Run | None, name: str) -> None:
    """Send ``name`` to the run's process group, remembered as ours; see ``send_signal``."""
    process_id = record.id
    if name not in SIGNALS:
        raise InvalidRequest(f"signal {name!r} is not allowed; use one of {', '.join(SIGNALS)}")
    if not record.running or run is None:
        raise InvalidRequest(
            f"process {process_id!r} has already ended (status {record.status.value}); "
            "there is nothing to signal"
        )
    number = SIGNALS[name]
    record.signals_sent.add(number)
    proc.signal_group(run.pgid, number)
