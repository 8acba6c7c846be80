"""Reading the log of an ended run from its folder alone, e.g. one a previous supervisor wrote.

A live :class:`~process_mcp.core.logs.store.LogStore` keeps its segment index in memory;
after a restart only the ``NNNNNN.seg`` files remain. :func:`snapshot_from_disk` rebuilds a
:class:`~process_mcp.core.logs.blocks.LogSnapshot` from them in one sequential read (the
same sparse index the store keeps: an entry at least every ``INDEX_EVERY_BYTES``), so the
ordinary ``get-log`` query code (``run_query``) answers for a past run unchanged.

Numbering: lines keep the numbers they had while the process ran, provided the first kept
line's number is known (the history stores it when the run ends). Segment files sort by
name in writing order. Bytes after a segment's last newline (a write torn by a crash) are
not a line and are ignored.
"""

from __future__ import annotations

from array import array
from pathlib import Path

from process_mcp.core.logs.blocks import LogSnapshot, SegmentView
from process_mcp.core.logs.store import INDEX_EVERY_BYTES, STREAM_TAGS

_READ = max(INDEX_EVERY_BYTES, 64 * 1024)
_TAGS = tuple(tag[0] for tag in STREAM_TAGS.values())


def segment_files(directory: Path) -> list[Path]:
    """The folder's segment files in writing order (empty when the folder is gone)."""
    try:
        return sorted(path for path in directory.iterdir() if path.suffix == ".seg")
    except OSError:
        return []


def folder_bytes(directory: Path) -> int:
    """Bytes held by the folder's segment files (0 when it does not exist)."""
    total = 0
    for path in segment_files(directory):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def _scan_segment(path: Path, first_line: int) -> SegmentView | None:
    lines, size = 0, 0
    index_lines, index_offsets = array("q"), array("q")
    tag_lines: dict[int, int] = {}
    carry = b""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with handle:
        while True:
            block = handle.read(_READ)
            if not block:
                break
            data = carry + block
            end = data.rfind(b"\n") + 1
            carry = data[end:]
            if not end:
                continue  # a line longer than one read: keep gathering
            data = data[:end]
            # ``data`` starts at a line start with a known number: an index entry, as the
            # store would have made one at least every INDEX_EVERY_BYTES.
            index_lines.append(first_line + lines)
            index_offsets.append(size)
            for tag in _TAGS:
                count = data.count(b"\n" + bytes([tag])) + (data[0] == tag)
                if count:
                    tag_lines[tag] = tag_lines.get(tag, 0) + count
            lines += data.count(b"\n")
            size += len(data)
    if not lines:
        return None
    return SegmentView(path, first_line, lines, size, index_lines, index_offsets, tag_lines)


def snapshot_from_disk(
    directory: Path, first_line: int = 1, trimmed_bytes: int = 0, cut_lines: int = 0
) -> LogSnapshot:
    """A snapshot of the stored lines of the log in ``directory``, numbered from
    ``first_line``. O(log size) sequential reading: call it in a worker thread. A missing
    folder gives an empty snapshot (whose ``last_line`` is ``first_line - 1``)."""
    segments: list[SegmentView] = []
    number = first_line
    for path in segment_files(directory):
        view = _scan_segment(path, number)
        if view is not None:
            segments.append(view)
            number = view.end_line
    return LogSnapshot(
        segments=tuple(segments),
        first_line=first_line,
        last_line=number - 1,
        pending=(),
        dropped_bytes=trimmed_bytes,
        dropped_lines=first_line - 1,
        cut_lines=cut_lines,
    )
