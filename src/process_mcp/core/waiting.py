"""Waiting for a process to become ready, or to end, in one call.

An agent that starts a dev server needs one answer: "ready" or "died, here is why".
:func:`wait_for` blocks until the first of these happens:

* a log line matches ``pattern`` (searched from the start of the log, so a line written
  before the call still counts), scanned incrementally as output arrives, by ``get-log``'s
  own grep through ``ProcessManager.read_log``;
* a process of the tree listens on TCP ``port``;
* an HTTP GET of ``url`` answers with a status below 500;
* the process ends (with no condition given, that is the condition; otherwise the wait
  fails at once with ``reason="exited"`` instead of running into the timeout);
* the timeout passes.

``met`` is true only when the condition holds at the answer: a pattern, port or url wait
on a process that has ended by then is ``met: false, reason: "exited"``, even when its
line matched (the matched line is still reported): a prompt printed by a process that
already crashed cannot be answered. :func:`wait_for_exits` waits for the first (``any``)
or every (``all``) one of several processes to end.

Output wakes the wait (no polling of the log); ports and URLs are probed a few times a
second. Cancelling the awaiting task ends the wait and leaves the process alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from process_mcp.core.errors import UnknownProcess
from process_mcp.core.facts.ports import tree_listens_on
from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.logs.query import ANSWER_LINE_BYTES, LineMask, LogQuery
from process_mcp.core.manager import ProcessManager
from process_mcp.core.records import ProcessRecord

TAIL_LINES = 20  # tail lines of an answer not met, or whose process crashed (else 0)
MAX_TAIL_LINES = 1000
DEFAULT_TIMEOUT = 30.0  # seconds a wait lasts unless told otherwise
MAX_TIMEOUT = 600.0
SCAN_BATCH = 200_000  # stored lines one search step examines; the deadline is checked between
# Room for the answer's lines at get-log's per-line cap: one stored match, or the (at most
# two) partial lines, are never left out or cut further by the byte budget.
MATCH_BYTES = 2 * (ANSWER_LINE_BYTES + 1)
PORT_INTERVAL = 0.2
URL_INTERVAL = 0.25
URL_ATTEMPT_TIMEOUT = 2.0
PARTIAL_QUIET = 0.2  # seconds a partial line must not grow before a pattern may match it

ProgressFn = Callable[[float, str], Awaitable[None]]


@dataclass(frozen=True)
class WaitCondition:
    """What to wait for; all ``None`` means "until the process ends"."""

    pattern: LinePattern | None = None
    port: int | None = None
    url: str | None = None

    def describe(self) -> str:
        parts = []
        if self.pattern is not None:
            parts.append(f"a line matching {self.pattern.source!r}")
        if self.port is not None:
            parts.append(f"TCP port {self.port} listening")
        if self.url is not None:
            parts.append(f"{self.url} answering")
        return " or ".join(parts) or "the process to end"


@dataclass
class WaitOutcome:
    """How a wait ended. ``cursor`` is the number of the last complete line of the log at
    the answer (pass it to ``get-log`` as ``since`` to read what comes next)."""

    record: ProcessRecord
    met: bool
    reason: str  # "pattern" | "port" | "url" | "exited" | "timeout"
    elapsed: float
    tail: list[str]
    cursor: int
    matched_line: str | None = None
    matched_line_number: int | None = None
    redacted: int = 0  # secrets masked in ``tail`` and ``matched_line``


@dataclass
class ExitsOutcome:
    """How a wait for several processes ended: ``ended`` and ``running`` hold their
    records at the answer, each in the order asked."""

    met: bool
    reason: str  # "exited" | "timeout"
    elapsed: float
    ended: list[ProcessRecord]
    running: list[ProcessRecord]
    redacted: int = 0  # secrets masked in the tails


def default_tail(met: bool, record: ProcessRecord) -> int:
    """Lines of tail a wait answer carries unless asked: ``TAIL_LINES`` when the condition
    is not met or the process crashed (ended by a signal or a non-zero exit), else 0."""
    failed = record.signal is not None or record.exit_code not in (0, None)
    return TAIL_LINES if not met or (failed and not record.running) else 0


async def find_match(
    manager: ProcessManager,
    process_id: str,
    pattern: LinePattern,
    after: int,
    scan_lines: int = SCAN_BATCH,
    mask: LineMask | None = None,
) -> tuple[tuple[int, str] | None, int, bool]:
    """The first line numbered above ``after`` whose cleaned text matches ``pattern``.

    Asks ``read_log`` with ``get-log``'s own grep (so a wait and a grep always agree),
    examining at most ``scan_lines`` stored lines; a partial line not yet ended by a
    newline counts once every stored line was examined and it has not grown for
    ``PARTIAL_QUIET`` seconds (a prompt; not the piece a read happened to end on).
    Returns ``((number, text) or None, cursor, more)``: ``cursor`` is the last stored line
    examined, to pass back as ``after``, and ``more`` says stored lines after it remain.
    ``mask`` masks a line too long for the answer before it is cut (``LogQuery.mask``).
    Raises nothing: a process removed meanwhile has nothing left to match,
    ``(None, after, False)``.
    """
    query = LogQuery(
        since=after,
        grep=pattern,
        limit=1,
        max_bytes=MATCH_BYTES,
        scan_lines=scan_lines,
        partial_quiet=PARTIAL_QUIET,
        mask=mask,
    )
    try:
        answer = await manager.read_log(process_id, query)
    except UnknownProcess:
        return None, after, False
    line = (answer.numbers[0], answer.lines[0]) if answer.lines else None
    return line, answer.next_cursor, answer.next_cursor < answer.last_stored


async def tail_text(
    manager: ProcessManager,
    process_id: str,
    count: int = TAIL_LINES,
    mask: LineMask | None = None,
) -> list[str]:
    """The newest ``count`` lines (a final line without newline included), cleaned:
    ``get-log``'s tail query with room for every line at its per-line cap, plus a last
    line saying so when output could not be stored (that line even when ``count`` is 0:
    a loss is never silent); ``mask`` masks a line too long for it before it is cut
    (``LogQuery.mask``). Raises nothing: ``[]`` for a process removed meanwhile."""
    shown = max(count, 1)
    query = LogQuery(last_lines=shown, max_bytes=shown * (ANSWER_LINE_BYTES + 1), mask=mask)
    try:
        answer = await manager.read_log(process_id, query)
    except UnknownProcess:
        return []
    lines = answer.lines if count > 0 else []
    notice = answer.lost_notice  # the tail may not be the end of what it wrote
    return lines if notice is None else [*lines, f"[process-mcp: {notice}]"]


@dataclass
class _Probe:
    interval: float
    next_at: float = 0.0
    task: asyncio.Task[bool] | None = field(default=None, repr=False)


async def wait_for(
    manager: ProcessManager,
    process_id: str,
    condition: WaitCondition,
    timeout: float,
    progress: ProgressFn | None = None,
    progress_interval: float = 1.0,
    tail_lines: int | None = None,
    mask: LineMask | None = None,
) -> WaitOutcome:
    """Block until ``condition`` is met, the process ends, or ``timeout`` seconds pass.

    The outcome's ``tail`` holds the newest ``tail_lines`` lines (default: ``TAIL_LINES``
    when not met or when the process ended with a non-zero exit or a signal, met or not,
    so a crash brings its reason; else none); ``mask`` masks a line too long for the
    tail or the matched line before it is cut. Raises UnknownProcess for an unknown id;
    cancelling the awaiting task ends the wait and leaves the process alone."""
    record = manager.get(process_id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    wake = asyncio.Event()
    waiting_for_pattern = condition.pattern is not None

    def on_output(pid: str) -> None:
        if pid == process_id and waiting_for_pattern:
            wake.set()

    remove_listener = manager.add_output_listener(on_output)
    ended = asyncio.ensure_future(manager.wait_ended(process_id))
    ended.add_done_callback(lambda _: wake.set())
    probes: dict[str, _Probe] = {}
    if condition.port is not None:
        probes["port"] = _Probe(PORT_INTERVAL)
    if condition.url is not None:
        probes["url"] = _Probe(URL_INTERVAL)
    cursor = 0  # the scan starts at the oldest line still stored
    scanned_at = started  # when the last pattern scan began
    next_progress = started + progress_interval

    async def outcome(met: bool, reason: str, line: tuple[int, str] | None = None) -> WaitOutcome:
        if met and condition != WaitCondition() and not record.running:
            met, reason = False, "exited"  # it held, but the process is gone: not met now
        count = tail_lines if tail_lines is not None else default_tail(met, record)
        known = manager.find(process_id) is not None
        if count > 0 or (known and manager.log(process_id).lost_bytes):
            tail = await tail_text(manager, process_id, count, mask)  # a loss is never silent
        else:
            tail = []
        cursor = manager.log(process_id).last_line if known else 0
        return WaitOutcome(
            record=record,
            met=met,
            reason=reason,
            elapsed=round(loop.time() - started, 3),
            tail=tail,
            cursor=cursor,
            matched_line=line[1] if line is not None else None,
            matched_line_number=line[0] if line is not None else None,
        )

    try:
        while True:
            has_ended = not record.running  # read before the scan: it then sees every line
            wake.clear()
            if ended.done() and record.running:  # restarted meanwhile: watch the new run
                ended = asyncio.ensure_future(manager.wait_ended(process_id))
                ended.add_done_callback(lambda _: wake.set())
            if condition.pattern is not None:
                scanned_at = loop.time()
                line, cursor, more = await find_match(
                    manager, process_id, condition.pattern, cursor, mask=mask
                )
                while line is None and more and loop.time() < deadline:
                    # A long log (or a flood outrunning the scan): search it in steps, and
                    # never let scanning push the answer past the timeout.
                    line, cursor, more = await find_match(
                        manager, process_id, condition.pattern, cursor, mask=mask
                    )
                if line is not None:
                    return await outcome(True, "pattern", line)
            for name, probe in probes.items():
                if probe.task is not None and probe.task.done():
                    hit = not probe.task.cancelled() and probe.task.exception() is None
                    if hit and probe.task.result() and record.running:
                        return await outcome(True, name)
                    probe.task = None
            if has_ended:
                return await outcome(condition == WaitCondition(), "exited")
            if not record.running:  # ended during the scan: scan again, it then sees every line
                continue
            now = loop.time()
            if now >= deadline:
                return await outcome(False, "timeout")
            for name, probe in probes.items():
                if probe.task is None and now >= probe.next_at:
                    probe.next_at = now + probe.interval
                    probe.task = asyncio.ensure_future(
                        _probe(name, record, condition, min(URL_ATTEMPT_TIMEOUT, deadline - now))
                    )
                    probe.task.add_done_callback(lambda _: wake.set())
            if progress is not None and now >= next_progress:
                next_progress = now + progress_interval
                waited = round(now - started, 3)
                await progress(
                    waited,
                    f"waiting for {condition.describe()} ({waited:.0f} s of {timeout:g} s)",
                )
            wakers = [deadline]
            if progress is not None:
                wakers.append(next_progress)
            wakers.extend(p.next_at for p in probes.values() if p.task is None)
            if waiting_for_pattern:
                wakers.append(_partial_settles(manager, process_id, scanned_at))
            delay = max(min(wakers) - loop.time(), 0.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wake.wait()
    finally:
        remove_listener()
        ended.cancel()
        for probe in probes.values():
            if probe.task is not None:
                probe.task.cancel()


def _partial_settles(manager: ProcessManager, process_id: str, scanned_at: float) -> float:
    """When the process's partial line will have been quiet for ``PARTIAL_QUIET``, so a
    pattern wait scans again then; ``inf`` without one, or when it was quiet already at
    the last scan (begun at ``scanned_at``), which saw it. ``loop.time()`` is
    ``time.monotonic()``, the clock the log store stamps growth with."""
    if manager.find(process_id) is None:
        return math.inf
    grown = manager.log(process_id).partial_grown_at()
    if grown is None or grown + PARTIAL_QUIET <= scanned_at:
        return math.inf
    return grown + PARTIAL_QUIET


async def _probe(
    name: str, record: ProcessRecord, condition: WaitCondition, timeout: float
) -> bool:
    if name == "port":
        assert condition.port is not None and record.pid is not None
        return tree_listens_on(record.pid, condition.port)
    assert condition.url is not None
    from process_mcp.core.facts.httpprobe import probe_url  # urllib: only for url waits

    status = await asyncio.to_thread(probe_url, condition.url, max(timeout, 0.1))
    return status is not None and status < 500


async def wait_for_exits(
    manager: ProcessManager,
    process_ids: list[str],
    every: bool,
    timeout: float,
    progress: ProgressFn | None = None,
    progress_interval: float = 1.0,
) -> ExitsOutcome:
    """Block until the first of ``process_ids`` has ended (``every``: all of them), or
    ``timeout`` seconds pass. Already ended processes count at once; a process restarted
    meanwhile counts once its new run ends. Raises UnknownProcess for an unknown id,
    before waiting; cancelling the awaiting task leaves every process alone."""
    records = [manager.get(process_id) for process_id in dict.fromkeys(process_ids)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    next_progress = started + progress_interval
    waiters: dict[str, asyncio.Future[ProcessRecord]] = {}
    what = f"{'all' if every else 'any'} of {len(records)} processes to end"
    try:
        while True:
            ended = [record for record in records if not record.running]
            running = [record for record in records if record.running]
            if (not running) if every else bool(ended):
                return ExitsOutcome(True, "exited", round(loop.time() - started, 3), ended, running)
            now = loop.time()
            if now >= deadline:
                return ExitsOutcome(False, "timeout", round(now - started, 3), ended, running)
            if progress is not None and now >= next_progress:
                next_progress = now + progress_interval
                waited = round(now - started, 3)
                await progress(waited, f"waiting for {what} ({waited:.0f} s of {timeout:g} s)")
            for record in running:
                waiter = waiters.get(record.id)
                if waiter is None or waiter.done():  # done but running: restarted meanwhile
                    waiters[record.id] = asyncio.ensure_future(manager.wait_ended(record.id))
            until = min(deadline, next_progress) if progress is not None else deadline
            pending = [waiters[record.id] for record in running]
            await asyncio.wait(
                pending, timeout=max(until - now, 0.0), return_when="FIRST_COMPLETED"
            )
    finally:
        for waiter in waiters.values():
            waiter.cancel()
