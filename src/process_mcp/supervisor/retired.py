"""Answers for ids no live record holds: processes that ended and left the supervisor's
memory (after an hour, or beyond a thousand held), or ran under an earlier supervisor.

Their record and log are in the history, so ``status``, ``read_log``, ``wait`` and
``wait_exits`` by such an id still answer, the same shape as for a live record: an entry
whose ``rev`` is ``-1`` (older than anything a front-end's mirror holds, so the mirror reads
it without keeping it: a mirror never grows back what the supervisor let go).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from process_mcp.core import ProcessManager, ProcessRecord
from process_mcp.core.history import PastRun
from process_mcp.core.logs.query import LineMask, LogQuery
from process_mcp.core.waiting import TAIL_LINES, tail_text, wait_for_exits
from process_mcp.supervisor.protocol import ops as op
from process_mcp.supervisor.protocol.documents import Entry, RecordDoc

RETIRED_REV = -1


def past_record(run: PastRun) -> RecordDoc:
    """The run as a record (what a live record has that a run does not: at its default)."""
    return RecordDoc(
        id=run.process_id,
        pid=None,
        status=run.status,
        command=run.command,
        args=list(run.args),
        cwd=run.cwd,
        exit_code=run.exit_code,
        signal=run.signal,
        started_at=run.started_at,
        ended_at=run.ended_at,
        notify_on_exit=False,
        label=run.label,
        shell=False,
        stdin="null",
        pty=False,
        timeout_seconds=None,
        timed_out=False,
        restarts=max(run.run - 1, 0),
    )


def past_entry(run: PastRun) -> Entry:
    return Entry(past_record(run), RETIRED_REV)


async def waited(
    manager: ProcessManager,
    run: PastRun,
    has_condition: bool,
    tail_lines: int | None,
    mask: LineMask | None = None,
) -> op.WaitReply:
    """What ``wait`` answers for a run that has ended already: the end met when no
    condition was asked (else ``met: false, reason: exited``), with the tail asked for
    (default: none when met, ``TAIL_LINES`` otherwise) read from its log on disk."""
    met = not has_condition
    count = tail_lines if tail_lines is not None else (0 if met else TAIL_LINES)
    tail = await tail_text(manager, run.process_id, count, mask) if count > 0 else []
    last = await manager.read_log(run.process_id, LogQuery(last_lines=1, max_bytes=4096))
    return op.WaitReply(past_record(run), RETIRED_REV, met, "exited", 0.0, tail, last.last_stored)


async def wait_exits(
    manager: ProcessManager,
    request: op.WaitExits,
    progress: Any,
    entry: Callable[[ProcessRecord], Entry],
    mask_of: Callable[[str], LineMask | None] | None = None,
) -> op.WaitExitsReply:
    """``wait_exits`` where some ids may have left memory: those have ended (read from the
    history); the rest are waited for as ``core.waiting.wait_for_exits`` does (``any``:
    one ended already is enough). ``entry`` makes a live record's entry; ``mask_of(id)``
    masks a tail line too long for it before it is cut (``LogQuery.mask``)."""
    ids = list(dict.fromkeys(request.ids))
    past: dict[str, PastRun] = {}  # ids that left memory: ended, answered from history
    for process_id in ids:
        if manager.find(process_id) is None:
            past[process_id] = await manager.past(process_id)  # or UnknownProcess
    live = [process_id for process_id in ids if process_id not in past]
    if live and (request.all or not past):
        outcome = await wait_for_exits(
            manager,
            live,
            request.all,
            request.timeout,
            progress=progress,
        )
        met, reason, elapsed = outcome.met, outcome.reason, outcome.elapsed
        ended, running = outcome.ended, outcome.running
    else:
        met, reason, elapsed = True, "exited", 0.0  # one has ended already
        records = [record for i in live if (record := manager.find(i)) is not None]
        ended = [record for record in records if not record.running]
        running = [record for record in records if record.running]
    tails = {}
    if request.tail_lines:
        for process_id in [*(record.id for record in ended), *past]:
            mask = None if mask_of is None else mask_of(process_id)
            tails[process_id] = await tail_text(manager, process_id, request.tail_lines, mask)
    return op.WaitExitsReply(
        met,
        reason,
        elapsed,
        [
            *(entry(record) for record in ended),
            *(past_entry(run) for run in past.values()),
        ],
        [entry(record) for record in running],
        tails,
    )
