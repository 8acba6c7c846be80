"""Reading a log in big blocks of whole lines, forward from a line number or back from the end.

Queries run on a :class:`LogSnapshot` taken on the event loop, so they can run in a worker
thread while the loop keeps appending: a snapshot only reads bytes that existed when it was
taken, and a segment the cap deletes meanwhile is either still readable through an open
file or skipped (its lines are then simply missing, never misnumbered).

A block is ``bytes`` holding complete stored lines (``<tag><text>\\n`` each) plus the number
of its first line. Working on blocks, not lines, keeps per-line Python work for the lines a
query actually returns.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from process_mcp.core.logs.format import (
    FIRST_FORWARD_BLOCK,
    FORWARD_BLOCK,
    STDOUT_TAG,
    TAIL_BLOCK,
    LogLine,
)


class Block(NamedTuple):
    """Complete stored lines: ``count`` of them, numbered from ``first``."""

    first: int
    count: int
    data: bytes
    mixed: bool = True  # False when every line is known to be stdout: cheaper tag stripping


@dataclass(frozen=True, slots=True)
class SegmentView:
    """A segment as it was at snapshot time."""

    path: Path
    first_line: int
    lines: int
    size: int
    index_lines: array
    index_offsets: array
    tag_lines: dict[int, int]

    @property
    def mixed(self) -> bool:
        """Whether lines other than stdout may be in this segment."""
        return any(tag != STDOUT_TAG[0] for tag in self.tag_lines)

    @property
    def end_line(self) -> int:
        """Number just past this segment's last line."""
        return self.first_line + self.lines


@dataclass(frozen=True, slots=True)
class LogSnapshot:
    """What a query may read: stored segments, provisional partial lines, and the counters."""

    segments: tuple[SegmentView, ...]
    first_line: int
    last_line: int
    pending: tuple[LogLine, ...]
    dropped_bytes: int
    dropped_lines: int
    cut_lines: int
    lost_bytes: int = 0  # output that could not be stored (disk full, unwritable)
    lost_reason: str | None = None

    def tag_lines(self, tags: bytes) -> int:
        """How many stored lines carry one of ``tags``: O(segments), no reading."""
        return sum(seg.tag_lines.get(t, 0) for seg in self.segments for t in tags)

    def blocks(self, start: int, stop: int | None = None) -> Iterator[Block]:
        """Blocks of stored lines numbered ``start`` (clamped to what is kept) up to ``stop``
        (exclusive; default: the end), oldest first, consecutive and without overlap. A
        segment the cap deleted since the snapshot is skipped (its lines are missing, never
        misnumbered); another OSError reading a segment propagates."""
        stop = self.last_line + 1 if stop is None else min(stop, self.last_line + 1)
        start = max(start, self.first_line)
        for segment in self.segments:
            if start >= stop:
                return
            if segment.end_line <= start:
                continue
            for block in _segment_blocks(segment, start, min(stop, segment.end_line)):
                yield block
                start = block.first + block.count

    def blocks_backward(self) -> Iterator[Block]:
        """Blocks of stored lines from the newest back to the oldest: reading the end of a
        huge log costs only what is read (seek from the end). Missing segments and errors
        as for :meth:`blocks`."""
        for segment in reversed(self.segments):
            yield from _segment_blocks_backward(segment)


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None  # dropped by the cap since the snapshot


def _skip_lines(block: bytes, count: int) -> int:
    """Offset just after the ``count``-th newline of ``block`` (len(block) if fewer)."""
    pos = 0
    for _ in range(count):
        nl = block.find(b"\n", pos)
        if nl < 0:
            return len(block)
        pos = nl + 1
    return pos


def _segment_blocks(segment: SegmentView, start: int, stop: int) -> Iterator[Block]:
    """Read whole ranges between sparse-index entries: every entry is a line start with a
    known number, so a block's first line and line count come free, without counting."""
    lines, offsets = segment.index_lines, segment.index_offsets
    usable = bisect_left(lines, segment.end_line)  # entries added after the snapshot: ignored
    i = max(bisect_right(lines, start, 0, usable) - 1, 0)
    handle = _open(segment.path)
    if handle is None or usable == 0:
        return
    target = FIRST_FORWARD_BLOCK
    with handle:
        while i < usable:
            j = max(bisect_left(offsets, offsets[i] + target, i + 1, usable), i + 1)
            begin, end = offsets[i], offsets[j] if j < usable else segment.size
            first, last = lines[i], lines[j] if j < usable else segment.end_line
            i, target = j, min(target * 2, FORWARD_BLOCK)
            if last <= start:
                continue
            handle.seek(begin)
            data = handle.read(end - begin)
            if len(data) < end - begin:
                return  # cannot happen for a snapshot, unless the file was replaced
            if first < start:
                data, first = data[_skip_lines(data, start - first) :], start
            if last > stop:
                data, last = data[: _skip_lines(data, stop - first)], stop
            if data:
                yield Block(first, last - first, data, segment.mixed)
            if last >= stop:
                return


def _segment_blocks_backward(segment: SegmentView) -> Iterator[Block]:
    handle = _open(segment.path)
    if handle is None:
        return
    with handle:
        end = segment.size
        next_first = segment.end_line
        carry = b""
        while end > 0:
            begin = max(end - TAIL_BLOCK, 0)
            handle.seek(begin)
            data = handle.read(end - begin) + carry
            end = begin
            if begin > 0:
                cut = data.find(b"\n") + 1
                if cut == 0:  # a line longer than the block: keep gathering
                    carry = data
                    continue
                carry, data = data[:cut], data[cut:]
            else:
                carry = b""
            count = data.count(b"\n")
            next_first -= count
            if data:
                yield Block(next_first, count, data, segment.mixed)
