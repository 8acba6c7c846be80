"""The stored log format, in one place: line tags, stream selections, the cut marker, the
sparse-index spacing and the read block sizes. Every other module of the log layer (and
anything outside it) takes these from here, so the format cannot drift between the writer
and its readers.

Layout. A log is a chain of segment files ``NNNNNN.seg``. Every stored line is
``<tag><bytes>\\n`` where the one-byte tag says where it came from: ``o`` stdout, ``e``
stderr, ``m`` a marker written by the server (a restart). Lines are numbered from 1 in
arrival order, for the life of the process.
"""

from __future__ import annotations

from dataclasses import dataclass

STDOUT_TAG = b"o"
STDERR_TAG = b"e"
MARKER_TAG = b"m"
STREAM_TAGS: dict[str, bytes] = {"stdout": STDOUT_TAG, "stderr": STDERR_TAG, "marker": MARKER_TAG}
ALL_TAGS = (STDOUT_TAG + STDERR_TAG + MARKER_TAG).decode()
# The tags (as text) each ``stream`` selection keeps; server markers belong to all of them.
STREAM_SELECT: dict[str, str] = {
    "all": ALL_TAGS,
    "stdout": (STDOUT_TAG + MARKER_TAG).decode(),
    "stderr": (STDERR_TAG + MARKER_TAG).decode(),
}

# Sparse index: one entry per write that starts at least this many lines or bytes after the
# previous entry (no Python object per line).
INDEX_EVERY_LINES = 1024
INDEX_EVERY_BYTES = 64 * 1024

# Read sizes: back from the end in fixed blocks; forward in blocks that start small (a page
# of 'since' reads little) and double up to FORWARD_BLOCK for a long scan.
TAIL_BLOCK = 64 * 1024
FIRST_FORWARD_BLOCK = 64 * 1024
FORWARD_BLOCK = 1024 * 1024


_CUT_OPEN = " …["
_CUT_CLOSE = " bytes cut]"
CUT_MARKER_ROOM = 32  # bytes an answer keeps free for the marker when it cuts a line


def cut_marker(cut: int) -> str:
    """The visible note appended to a line of which ``cut`` bytes were left out, both when a
    line is stored and when an answer cuts it (then counting both cuts: see
    :func:`split_cut_marker`)."""
    return f"{_CUT_OPEN}{cut}{_CUT_CLOSE}"


def split_cut_marker(text: str) -> tuple[str, int]:
    """``(text before its trailing cut marker, the bytes the marker says were cut)``, or
    ``(text, 0)`` when it ends with none. An answer that cuts a line stored cut replaces
    the stored marker with one counting both cuts, so the count is always what is missing
    from the line as written. Pure; raises nothing."""
    if not text.endswith(_CUT_CLOSE):
        return text, 0
    start = text.rfind(_CUT_OPEN, max(len(text) - CUT_MARKER_ROOM, 0))
    number = text[start + len(_CUT_OPEN) : -len(_CUT_CLOSE)] if start >= 0 else ""
    if not number.isdigit():
        return text, 0
    return text[:start], int(number)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line as stored: its number for the life of the process, its stream and its bytes;
    for a partial line, ``grown_at`` is when it last grew (``time.monotonic()``)."""

    number: int
    stream: str
    data: bytes
    grown_at: float = 0.0
