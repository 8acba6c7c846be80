"""Selecting what an agent reads from a log: cursor paging, tails, streams, grep with
context, and a byte budget that keeps the newest lines.

Everything here runs on a :class:`~process_mcp.core.logs.blocks.LogSnapshot`, so a long scan
may run in a worker thread. Per-line Python work is done only for blocks that hold a line
the answer returns; a regex is searched over whole decoded blocks. :func:`run_query` is the
one reader of a log: ``get-log``, the log resource and ``wait``'s pattern search all ask
it, through ``ProcessManager.read_log``.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from process_mcp.core.errors import InvalidRequest
from process_mcp.core.logs.answer import LogAnswerFields
from process_mcp.core.logs.blocks import Block, LogSnapshot
from process_mcp.core.logs.format import (
    CUT_MARKER_ROOM,
    STREAM_SELECT,
    STREAM_TAGS,
    LogLine,
    cut_marker,
    split_cut_marker,
)
from process_mcp.core.logs.pattern import LinePattern
from process_mcp.core.logs.search import TextBlock, text_blocks

DEFAULT_LIMIT = 1000
DEFAULT_MAX_BYTES = 64 * 1024
ANSWER_LINE_BYTES = 64 * 1024
MIN_CUT_ROOM = 1024  # below this, an older line that does not fit is left out, not cut
LineMask = Callable[[str], tuple[str, int]]  # a line masked, and how many secrets in it


@dataclass(frozen=True)
class LogQuery:
    """A validated ``get-log`` request. Constructing one raises
    InvalidRequest, naming the values at fault, for a combination that cannot be answered
    or a ``grep`` that does not compile.

    ``grep`` is a regex, or a :class:`LinePattern` compiled once by a caller that searches
    repeatedly (``wait``). ``scan_lines`` (with ``since`` only; not part of the tool's
    input) bounds how many stored lines one answer examines, to whole read blocks (at least
    that many unless the log ends first, at most one block more), so a caller can search a
    long log in steps and check a deadline between them. ``partial_quiet`` (not part of
    the tool's input either) leaves out a partial line that grew less than that many
    seconds ago: a ``wait`` then matches a line whole, not the piece a read happened to
    end on (``port \\d+$`` would match ``port 30`` of ``port 3000``), while a prompt,
    which stops growing, still counts. ``mask`` (not part of the tool's input: the
    supervisor's redaction, ``logs/redact.py``) masks a line that the answer must cut
    *before* it is cut, so no secret is ever shown in part; the answer's ``redacted``
    counts what it masked (the caller masks the lines that were not cut)."""

    last_lines: int | None = None
    since: int | None = None
    limit: int = DEFAULT_LIMIT
    stream: str = "all"
    grep: str | LinePattern | None = None
    context: int = 0
    max_bytes: int = DEFAULT_MAX_BYTES
    raw: bool = False
    scan_lines: int | None = None
    partial_quiet: float | None = None
    mask: Callable[[str], tuple[str, int]] | None = field(default=None, compare=False, repr=False)
    pattern: LinePattern | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.scan_lines is not None and (self.since is None or self.scan_lines < 1):
            raise ValueError(f"scan_lines ({self.scan_lines}) needs 'since' and must be >= 1")
        if self.since is not None and self.last_lines is not None:
            raise InvalidRequest(
                f"'since' ({self.since}) and 'lastLines' ({self.last_lines}) cannot be used "
                "together: use 'since' to read what is new after a line number, or 'lastLines' "
                "for the newest lines"
            )
        if self.stream not in STREAM_SELECT:
            raise InvalidRequest(
                f"stream {self.stream!r} is not one of {', '.join(map(repr, STREAM_SELECT))}"
            )
        if self.context and self.grep is None:
            raise InvalidRequest(
                f"'context' ({self.context}) only applies with 'grep'; add a 'grep' pattern "
                "or drop 'context'"
            )
        if isinstance(self.grep, LinePattern):
            object.__setattr__(self, "pattern", self.grep)
        elif self.grep is not None:
            object.__setattr__(self, "pattern", LinePattern.compile(self.grep))


@dataclass
class LogAnswer(LogAnswerFields):
    """What a query returns (its fields: :class:`LogAnswerFields`), and what a reader is
    told of it."""

    @property
    def lost_notice(self) -> str | None:
        """What to tell a reader when output could not be stored (None when all was)."""
        if not self.lost_bytes:
            return None
        return (
            f"{self.lost_bytes} bytes of output could not be stored ({self.lost_reason}), "
            "so lines are missing from this log; free space in the state dir "
            "(PROCESS_MCP_STATE_DIR) or lower PROCESS_MCP_LOG_MAX_BYTES"
        )

    @property
    def truncated(self) -> bool:
        """Whether a selected line was left out or cut to fit the answer's byte budget."""
        return self.omitted_lines > 0 or self.cut_in_answer > 0


# ---------------------------------------------------------------- byte budget
# Characters JSON writes escaped: a control character costs six bytes on the wire
# (``\\u0001``), so binary output would make an answer six times its budget.
_ESCAPED = re.compile(r'[\x00-\x1f"\\]')


def wire_size(text: str) -> int:
    """Bytes ``text`` takes as the content of a JSON string: its UTF-8 bytes, escapes
    included. What the budget counts, so ``maxBytes`` bounds what is sent (and what the
    server spends building it) whatever the output holds. Pure."""
    if _ESCAPED.search(text) is None:
        return len(text.encode())
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def _prefix_within(text: str, limit: int) -> str:
    """A prefix of ``text`` of at most ``limit`` wire bytes, never inside a character."""
    kept = text.encode()[:limit].decode(errors="ignore")
    while (size := wire_size(kept)) > limit:  # escapes: shrink in proportion, then check
        kept = kept[: len(kept) * limit // size]
    return kept


def cut_text(text: str, limit: int) -> tuple[str, bool]:
    """``(text, cut)``: ``text`` cut to at most ``limit`` bytes as sent (:func:`wire_size`;
    plus the marker), never inside a character, with a visible marker when ``cut`` that
    counts the UTF-8 bytes left out. A line stored cut keeps one marker, counting every
    byte missing from the line as written. Pure; raises nothing."""
    if wire_size(text) <= limit:
        return text, False
    body, stored_cut = split_cut_marker(text)
    kept = _prefix_within(body, max(limit - CUT_MARKER_ROOM, 0))
    return kept + cut_marker(len(body.encode()) - len(kept.encode()) + stored_cut), True


class Budget:
    """The answer's lines, oldest first, within ``max_bytes`` (each line counts its bytes
    as sent, :func:`wire_size`, plus one for its newline). Forward scans push newer lines
    and evict the oldest (``keep_oldest``: a page read with ``since`` refuses the line
    that does not fit instead, so the page ends at the last line it holds); tail scans
    push older lines until the budget is full.

    ``numbered`` (a grep answer, shown as ``grep -n -C``): each pushed line also counts its
    ``N:`` prefix, plus ``numbered`` bytes more (3 when there is context: a ``--`` line
    may precede it), so the formatted answer still fits ``max_bytes``."""

    def __init__(
        self,
        max_bytes: int,
        max_lines: int | None = None,
        numbered: int = -1,
        keep_oldest: bool = False,
        mask: LineMask | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.mask = mask
        self._masked: dict[int, int] = {}  # line number -> secrets masked before its cut
        self.max_lines = max_lines
        self.numbered = numbered
        self.keep_oldest = keep_oldest
        self.items: deque[tuple[int, str, int]] = deque()
        self.hits: set[int] = set()  # numbers of kept lines that matched a grep
        self.total = 0
        self.omitted = 0
        self.cut = 0
        self.full = False

    @property
    def masked(self) -> int:
        """Secrets masked in kept lines before they were cut."""
        return sum(self._masked.get(number, 0) for number, _, _ in self.items)

    def _fit(self, text: str, room: int, number: int) -> tuple[str, int]:
        limit = min(ANSWER_LINE_BYTES, max(room - 1, 0))
        if self.mask is not None and len(text) * 6 > limit and wire_size(text) > limit:
            text, found = self.mask(text)  # whole, then cut: never a secret in part
            if found:
                self._masked[number] = found
        text, cut = cut_text(text, limit)
        self.cut += cut
        return text, wire_size(text) + 1

    def push_newer(self, number: int, text: str, hit: bool = False) -> bool:
        """Add a line newer than all kept ones (``hit``: it matched a grep); on return the
        kept lines fit ``max_bytes`` and ``max_lines`` again (the oldest evicted, counted in
        ``omitted`` when for bytes). With ``keep_oldest``, a line that does not fit beside
        the kept ones is not added (False: the page is full); the first one always is
        (cut to fit if need be), so a page is never empty."""
        extra = len(str(number)) + 1 + self.numbered if self.numbered >= 0 else 0
        cut_before = self.cut
        text, size = self._fit(text, self.max_bytes - extra, number)
        size += extra
        if self.keep_oldest and self.items and self.total + size > self.max_bytes:
            self.cut = cut_before  # not sent after all
            self.full = True
            return False
        self.items.append((number, text, size))
        if hit:
            self.hits.add(number)
        self.total += size
        if self.max_lines is not None and len(self.items) > self.max_lines:
            self._evict()
        while self.total > self.max_bytes:
            self._evict()
            self.omitted += 1
        return True

    def _evict(self) -> None:
        number, _, size = self.items.popleft()
        self.total -= size
        self.hits.discard(number)

    def push_older(self, number: int, text: str) -> bool:
        """Add a line older than all kept ones; False (and nothing added) once full. A line
        too big for the room left is cut to fit when the room is worth it, then it is full."""
        room = self.max_bytes - self.total
        if self.full or (self.items and room < MIN_CUT_ROOM and len(text) + 1 > room):
            return False
        fitted, size = self._fit(text, room, number)
        if fitted is not text and wire_size(text) + 1 > room:
            self.full = True
        if size > room:
            return False
        self.items.appendleft((number, fitted, size))
        self.total += size
        return True


# ---------------------------------------------------------------- the query
def run_query(snapshot: LogSnapshot, query: LogQuery) -> LogAnswer:
    """Answer ``query`` from ``snapshot``; safe in a worker thread (it only reads the
    snapshot). On return, ``lines`` are the selected lines oldest first within
    ``query.max_bytes``, and ``next_cursor`` is the last stored line the answer covers (pass
    it back as ``since``). Lines the cap dropped since the snapshot are simply not in the
    answer (never an error); an OSError reading a segment otherwise propagates."""
    missed = 0
    if query.since is not None:
        start = query.since + 1
        if start < snapshot.first_line and snapshot.dropped_lines:
            missed = snapshot.first_line - start
        budget = Budget(
            query.max_bytes, numbered=_numbered(query), keep_oldest=True, mask=query.mask
        )
        cursor = _forward(snapshot, query, start, query.limit, budget)
        omitted = budget.omitted
    elif query.pattern is not None:
        budget = Budget(query.max_bytes, query.last_lines, _numbered(query), mask=query.mask)
        cursor = _forward(snapshot, query, snapshot.first_line, None, budget)
        omitted = budget.omitted
    else:
        budget = Budget(query.max_bytes, mask=query.mask)
        omitted = _tail(snapshot, query, budget)
        cursor = snapshot.last_line
    pending_numbers = {line.number for line in snapshot.pending}
    return LogAnswer(
        lines=[text for _, text, _ in budget.items],
        numbers=[number for number, _, _ in budget.items],
        next_cursor=cursor,
        total_lines=snapshot.last_line + len(snapshot.pending),
        omitted_lines=omitted,
        cut_in_answer=budget.cut,
        pending_lines=sum(number in pending_numbers for number, _, _ in budget.items),
        missed_lines=missed,
        dropped_bytes=snapshot.dropped_bytes,
        cut_lines=snapshot.cut_lines,
        first_stored=snapshot.first_line,
        last_stored=snapshot.last_line,
        hits=[number in budget.hits for number, _, _ in budget.items] if query.pattern else [],
        lost_bytes=snapshot.lost_bytes,
        lost_reason=snapshot.lost_reason,
        redacted=budget.masked,
    )


def _numbered(query: LogQuery) -> int:
    """``Budget``'s ``numbered`` for ``query``: -1 without a grep (lines as they are)."""
    if query.pattern is None:
        return -1
    return 3 if query.context else 0


def _pending_text(line: LogLine, raw: bool) -> tuple[str, str]:
    """(tag, cleaned text) of a provisional partial line."""
    tag = STREAM_TAGS[line.stream]
    block = TextBlock(Block(line.number, 1, tag + line.data + b"\n"), raw)
    return block.tag(0), block.line(0)


def _forward(
    snapshot: LogSnapshot, query: LogQuery, start: int, limit: int | None, budget: Budget
) -> int:
    """Push selected lines from ``start`` on; the cursor is the last line covered: the
    last one returned when ``limit`` or a full ``keep_oldest`` budget stopped the scan,
    the last line of the block that reached ``query.scan_lines``, else the last stored
    line. Provisional partial lines are returned (only by a scan that reached the end) but
    never covered by the cursor, so the completed line is read again once it ends."""
    tags = STREAM_SELECT[query.stream]
    selector = _GrepSelector(query.pattern, query.context, tags) if query.pattern else None
    selected = 0
    scanned, scan_lines = 0, query.scan_lines
    for block in text_blocks(snapshot, start, query.raw):
        chosen = selector.select(block) if selector else _all_of(block, tags)
        for number, text, hit in chosen:
            if not budget.push_newer(number, text, hit):
                return budget.items[-1][0]  # the page is full: it ends at its last line
            selected += 1
            if selected == limit:
                return number
        scanned += block.count
        last = block.first + block.count - 1
        if scan_lines is not None and scanned >= scan_lines and last < snapshot.last_line:
            return last  # a step of a longer search: a block boundary, no splitting cost
    quiet_before = None if query.partial_quiet is None else time.monotonic() - query.partial_quiet
    for line in snapshot.pending:
        if quiet_before is not None and line.grown_at > quiet_before:
            continue  # still growing: matched once it is whole or quiet
        tag, text = _pending_text(line, query.raw)
        selected = tag in tags and (query.pattern is None or query.pattern.search_text(text))
        if selected and not budget.push_newer(line.number, text, query.pattern is not None):
            break  # full: the partial lines come with the next page
    return snapshot.last_line


def _all_of(block: TextBlock, tags: str) -> Iterator[tuple[int, str, bool]]:
    for index in range(block.count):
        if block.keeps(index, tags):
            yield block.first + index, block.line(index), False


def _tail(snapshot: LogSnapshot, query: LogQuery, budget: Budget) -> int:
    """Fill ``budget`` with the newest selected lines, reading back from the end; returns
    how many selected lines the budget left out."""
    tags = STREAM_SELECT[query.stream]
    want = query.last_lines
    kept_pending = [p for p in snapshot.pending if _pending_text(p, query.raw)[0] in tags]
    available = snapshot.tag_lines(tags.encode()) + len(kept_pending)
    selected = available if want is None else min(want, available)
    taken = 0
    for line in reversed(kept_pending):
        text = _pending_text(line, query.raw)[1]
        if taken == selected or not budget.push_older(line.number, text):
            return selected - taken
        taken += 1
    for stored in snapshot.blocks_backward():
        block = TextBlock(stored, query.raw)
        first = block.first
        for index in range(block.count - 1, -1, -1):
            if not block.keeps(index, tags):
                continue
            if taken == selected or not budget.push_older(first + index, block.line(index)):
                return selected - taken
            taken += 1
    return max(selected - taken, 0)


class _GrepSelector:
    """Matching lines plus ``context`` lines of the selected streams around each, across
    block boundaries, each line once. Remembered context is (number, text), never a block,
    so memory stays at ``context`` lines."""

    def __init__(self, pattern: LinePattern, context: int, tags: str) -> None:
        self.pattern = pattern
        self.context = context
        self.tags = tags
        self.before: deque[tuple[int, str]] = deque(maxlen=max(context, 1))
        self.after = 0

    def select(self, block: TextBlock) -> Iterator[tuple[int, str, bool]]:
        """(number, text, matched) of each selected line of ``block``, in order."""
        matches = [i for i in block.matches(self.pattern) if block.keeps(i, self.tags)]
        if not self.context:
            for index in matches:
                yield block.first + index, block.line(index), True
            return
        if not matches and not self.after:
            self._remember_tail(block)
            return
        hits = set(matches)
        for index in range(block.count):
            if not block.keeps(index, self.tags):
                continue
            number, text = block.first + index, block.line(index)
            if index in hits:
                for before in self.before:
                    yield *before, False
                self.before.clear()
                yield number, text, True
                self.after = self.context
            elif self.after:
                self.after -= 1
                yield number, text, False
            else:
                self.before.append((number, text))

    def _remember_tail(self, block: TextBlock) -> None:
        found = []
        for index in range(block.count - 1, -1, -1):
            if len(found) == self.context:
                break
            if block.keeps(index, self.tags):
                found.append((block.first + index, block.line(index)))
        self.before.extend(reversed(found))
