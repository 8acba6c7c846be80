"""The ``wait`` and ``wait_exits`` ops: a live record waited on through ``core/waiting.py``,
an id that left memory answered from the history (``retired.py``); tails and matched
lines masked as the asking session may read them (``rails.py``), cut lines masked first."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from process_mcp.core import ProcessManager, ProcessRecord
from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.waiting import WaitCondition, wait_for
from process_mcp.supervisor import retired
from process_mcp.supervisor.as_wire import record_doc
from process_mcp.supervisor.protocol import ops as op
from process_mcp.supervisor.protocol.documents import Entry
from process_mcp.supervisor.rails import CutMask, Rails, mask_wait, masked
from process_mcp.supervisor.ticks import progress_to as _progress_to

if TYPE_CHECKING:
    from process_mcp.supervisor.transport import Session


class WaitingService(Protocol):
    """What the waits use of the service (``service.py``'s ``ProcessService``)."""

    manager: ProcessManager
    rails: Rails

    def touch(self, session: Session, process_id: str) -> None: ...

    def rev_of(self, record: ProcessRecord) -> int: ...

    def entry(self, record: ProcessRecord) -> Entry: ...


async def wait(service: WaitingService, session: Session, request: op.Wait) -> op.WaitReply:
    if service.manager.find(request.id) is None:  # it left memory: it has ended
        run = await service.manager.past(request.id)  # raises UnknownProcess
        condition = any(v is not None for v in (request.pattern, request.port, request.url))
        cut = service.rails.cut_mask(session, None)
        reply = await retired.waited(service.manager, run, condition, request.tail_lines, cut)
        tail, redacted = masked(cut, reply.tail)
        redacted += 0 if cut is None else cut.count
        return dataclasses.replace(reply, tail=tail, redacted=redacted)
    service.touch(session, request.id)
    pattern = request.pattern
    condition = WaitCondition(
        pattern=None if pattern is None else LinePattern.compile(pattern, name="pattern"),
        port=request.port,
        url=request.url,
    )
    cut = service.rails.cut_mask(session, service.manager.find(request.id))
    outcome = await wait_for(
        service.manager,
        request.id,
        condition,
        request.timeout,
        progress=_progress_to(session, request.progress),
        tail_lines=request.tail_lines,
        mask=cut,
    )
    record = outcome.record
    tail, matched, redacted = mask_wait(cut, outcome)
    return op.WaitReply(
        record_doc(record),
        service.rev_of(record),
        outcome.met,
        outcome.reason,
        outcome.elapsed,
        tail,
        outcome.cursor,
        matched,
        outcome.matched_line_number,
        redacted,
    )


async def wait_exits(
    service: WaitingService, session: Session, request: op.WaitExits
) -> op.WaitExitsReply:
    """Ids that left memory have ended: answered from the history (``retired.py``)."""
    for process_id in request.ids:
        service.touch(session, process_id)
    progress = _progress_to(session, request.progress)
    cuts: dict[str, CutMask | None] = {}

    def mask_of(process_id: str) -> CutMask | None:
        cuts[process_id] = service.rails.cut_mask(session, service.manager.find(process_id))
        return cuts[process_id]

    reply = await retired.wait_exits(service.manager, request, progress, service.entry, mask_of)
    if not reply.tails:
        return reply
    tails = {}
    redacted = sum(cut.count for cut in cuts.values() if cut is not None)
    for process_id, lines in reply.tails.items():  # as this session may read them
        if process_id in cuts:  # the redactor its cut lines had
            tails[process_id], found = masked(cuts[process_id], lines)
        else:  # None: left memory (patterns only)
            record = service.manager.find(process_id)
            tails[process_id], found = service.rails.mask(session, record, lines)
        redacted += found
    return dataclasses.replace(reply, tails=tails, redacted=redacted)
