"""One process's output log: on disk, line-numbered for life, bounded in bytes and in memory.

Layout. A chain of segment files in the process's own directory, each line stored as
``<tag><bytes>\\n`` (see ``format``). Tagging costs one ``bytes.replace`` per chunk, so
draining stays at memcpy speed and stdout/stderr keep their arrival order in a single file.

Numbering. Lines are numbered from 1 in arrival order. Each segment knows the number of
its first line, so when the size cap deletes the oldest segment no number ever shifts.

Memory. No Python object per line: each segment keeps a sparse index (one entry per
write that starts at least ``INDEX_EVERY_LINES`` lines or ``INDEX_EVERY_BYTES`` bytes after
the previous entry), and the partial line of each stream is held in memory up to
``max_line_bytes``; beyond that the line is cut and the cut is counted and marked.

Reading. This module only writes. Every reader takes a :meth:`LogStore.snapshot` and runs
a query on it (``blocks``, ``search``, ``query``); the process manager's ``read_log`` is the
one way the rest of the server reads a log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from process_mcp.core.logs.blocks import LogSnapshot, SegmentView
from process_mcp.core.logs.format import (
    INDEX_EVERY_BYTES,
    INDEX_EVERY_LINES,
    MARKER_TAG,
    STREAM_TAGS,
    LogLine,
    cut_marker,
)

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
logger = logging.getLogger(__name__)


@dataclass
class _Segment:
    path: Path
    first_line: int
    lines: int = 0
    size: int = 0
    index_lines: array = field(default_factory=lambda: array("q"))
    index_offsets: array = field(default_factory=lambda: array("q"))
    tag_lines: dict[int, int] = field(default_factory=dict)

    def maybe_index(self, line: int) -> None:
        """Record where ``line`` starts if the previous index entry is far enough behind."""
        if (
            not self.index_lines
            or line - self.index_lines[-1] >= INDEX_EVERY_LINES
            or self.size - self.index_offsets[-1] >= INDEX_EVERY_BYTES
        ):
            self.index_lines.append(line)
            self.index_offsets.append(self.size)


def _cut_marker(cut: int) -> bytes:
    return cut_marker(cut).encode()


class LogStore:
    """Append-only, size-capped, line-numbered log of one process (see module docstring)."""

    def __init__(self, directory: Path, max_bytes: int, max_line_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_line_bytes = max_line_bytes
        self._segment_max = max(max_bytes // 4, 1)
        self._segments: list[_Segment] = []
        self._next_segment = 0
        self._partial: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._partial_cut: dict[str, int] = {"stdout": 0, "stderr": 0}
        self._partial_at: dict[str, float] = {"stdout": 0.0, "stderr": 0.0}  # last growth
        self.last_line = 0
        self.dropped_bytes = 0
        self.dropped_lines = 0
        self.lost_bytes = 0
        self.lost_reason: str | None = None  # the first write error, e.g. "No space left"
        self.cut_lines = 0
        self.total_bytes_written = 0
        self._fd: int | None = None
        self._fd_path: Path | None = None

    # ----------------------------------------------------------------- facts
    @property
    def first_line(self) -> int:
        """Number of the oldest line still stored (``last_line + 1`` when none is)."""
        return self._segments[0].first_line if self._segments else self.last_line + 1

    @property
    def size(self) -> int:
        """Bytes stored on disk now (at most ``max_bytes`` plus one segment's growth)."""
        return sum(seg.size for seg in self._segments)

    # ---------------------------------------------------------------- writing
    def append(self, stream: str, data: bytes) -> None:
        """Store a chunk read from ``stream`` (``stdout`` or ``stderr``; another name is a
        KeyError, a programming error). On return every line the chunk completed is on disk
        with its final number, and the rest of the chunk waits as the stream's partial line.
        A failed write raises nothing: its bytes are counted in ``lost_bytes``, so draining
        never stops on a full disk."""
        if not data:
            return
        tag = STREAM_TAGS[stream]
        nl = data.find(b"\n")
        if nl < 0:
            self._grow_partial(stream, data)
            return
        head = b""
        if self._partial[stream] or self._partial_cut[stream]:
            self._grow_partial(stream, data[:nl])
            head = tag + self._take_partial(stream) + b"\n"
            data = data[nl + 1 :]
        last_nl = data.rfind(b"\n")
        parts, lines = self._encode(tag, data[:last_nl]) if last_nl >= 0 else ([], 0)
        if head:
            parts, lines = [head, *parts], lines + 1
        self._write_parts(parts, tag, lines)
        if last_nl + 1 < len(data):
            self._grow_partial(stream, data[last_nl + 1 :])

    def end_stream(self, stream: str) -> None:
        """EOF on ``stream``: on return its partial line, if any, is stored as a line (a
        final line without a newline is still a line). Raises nothing, like ``append``."""
        if self._partial[stream] or self._partial_cut[stream]:
            tag = STREAM_TAGS[stream]
            self._write(tag + self._take_partial(stream) + b"\n", tag)

    def note(self, text: str) -> None:
        """Write a marker line of the server's own (e.g. a restart). Both streams' partial
        lines are stored first, so the marker is numbered after everything received."""
        for stream in self._partial:
            self.end_stream(stream)
        tag = MARKER_TAG
        self._write(tag + text.encode().replace(b"\n", b" ") + b"\n", tag)

    def _grow_partial(self, stream: str, piece: bytes) -> None:
        partial = self._partial[stream]
        self._partial_at[stream] = time.monotonic()
        room = self.max_line_bytes - len(partial)
        if len(piece) <= room:
            partial += piece
        else:
            partial += piece[: max(room, 0)]
            self._partial_cut[stream] += len(piece) - max(room, 0)

    def _take_partial(self, stream: str) -> bytes:
        line = bytes(self._partial[stream])
        cut = self._partial_cut[stream]
        self._partial[stream].clear()
        self._partial_cut[stream] = 0
        if cut:
            self.cut_lines += 1
            line += _cut_marker(cut)
        return line

    def _encode(self, tag: bytes, text: bytes) -> tuple[list[bytes], int]:
        """Tag each line of ``text`` (complete lines, newline-separated, no final newline).
        Returns the pieces to write (written with one ``writev``, never joined) and the
        number of lines, known from the growth of the text so no pass counts them."""
        if len(text) > self.max_line_bytes and self._has_long_line(text):
            pieces = text.split(b"\n")
            joined = b"".join(tag + self._cut_line(p) + b"\n" for p in pieces)
            return [joined], len(pieces)  # one piece: writev takes at most IOV_MAX
        tagged = text.replace(b"\n", b"\n" + tag)
        return [tag, tagged, b"\n"], len(tagged) - len(text) + 1

    def _has_long_line(self, text: bytes) -> bool:
        """Whether any line exceeds the cap, in O(len/cap) ``rfind`` calls, not one per line."""
        limit, pos, end = self.max_line_bytes, 0, len(text)
        while end - pos > limit:
            nl = text.rfind(b"\n", pos, pos + limit + 1)
            if nl < 0:
                return True
            pos = nl + 1
        return False

    def _cut_line(self, line: bytes) -> bytes:
        if len(line) <= self.max_line_bytes:
            return line
        self.cut_lines += 1
        return line[: self.max_line_bytes] + _cut_marker(len(line) - self.max_line_bytes)

    def _write(self, block: bytes, tag: bytes) -> None:
        """Append complete lines that all came from the stream of ``tag``."""
        self._write_parts([block], tag, block.count(b"\n"))

    def _write_parts(self, parts: list[bytes], tag: bytes, lines: int) -> None:
        """Append ``lines`` complete lines, given as pieces, all from the stream of ``tag``."""
        size = sum(len(part) for part in parts)
        if not size:
            return
        segment = self._active_segment()
        try:
            self._write_all(segment, parts, size)
        except OSError as exc:
            # Never stop draining because the disk failed: the child would block on a
            # full pipe. Count what was lost so answers can say so.
            self._lost(size, exc, segment)
            return
        segment.maybe_index(self.last_line + 1)
        segment.size += size
        segment.lines += lines
        segment.tag_lines[tag[0]] = segment.tag_lines.get(tag[0], 0) + lines
        self.last_line += lines
        self.total_bytes_written += size
        self._enforce_cap()

    def _write_all(self, segment: _Segment, parts: list[bytes], size: int) -> None:
        """One ``writev`` to the active segment's file, kept open between writes (an open
        and a close per chunk cost more than the write itself for small chunks)."""
        if self._fd_path != segment.path:
            self._close_fd()
            try:
                self._fd = os.open(segment.path, _OPEN_FLAGS, 0o600)
            except FileNotFoundError:  # first output: the directory is made lazily, off
                # the start path (a mkdir costs more than the spawn on some filesystems)
                self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                self.directory.mkdir(mode=0o700, exist_ok=True)  # 0700 whatever the umask
                self._fd = os.open(segment.path, _OPEN_FLAGS, 0o600)
            self._fd_path = segment.path
        written = os.writev(self._fd, parts)
        if written < size:  # rare (disk full, signal): finish piece by piece
            rest = memoryview(b"".join(parts))[written:]
            while rest:
                rest = rest[os.write(self._fd, rest) :]

    def _lost(self, size: int, exc: OSError, segment: _Segment) -> None:
        """``size`` bytes of complete lines could not be stored: count them, cut off what
        part of them reached the file (line offsets must stay those of the index), and say
        so once on stderr (the server's log) for this process."""
        if self._fd is not None:
            with contextlib.suppress(OSError):  # else nothing was written: no offset is wrong
                os.ftruncate(self._fd, segment.size)
        self._close_fd()
        self.lost_bytes += size
        if self.lost_reason is None:
            self.lost_reason = exc.strerror or str(exc)
            logger.warning(
                "output of process %s cannot be stored in %s (%s): its log misses it from "
                "line %d on; the process keeps running",
                self.directory.name,
                self.directory,
                self.lost_reason,
                self.last_line + 1,
            )

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd, self._fd_path = None, None

    def close(self) -> None:
        """Release the open file (called when the process's output has ended; a later
        marker reopens it)."""
        self._close_fd()

    def _active_segment(self) -> _Segment:
        if not self._segments or self._segments[-1].size >= self._segment_max:
            path = self.directory / f"{self._next_segment:06d}.seg"
            self._next_segment += 1
            self._segments.append(_Segment(path=path, first_line=self.last_line + 1))
        return self._segments[-1]

    def _enforce_cap(self) -> None:
        while len(self._segments) > 1 and self.size > self.max_bytes:
            oldest = self._segments.pop(0)
            self.dropped_bytes += oldest.size
            self.dropped_lines += oldest.lines
            oldest.path.unlink(missing_ok=True)

    # ---------------------------------------------------------------- reading
    def pending(self) -> list[LogLine]:
        """Partial lines not yet ended by a newline (a prompt, a progress bar), stdout's
        first, numbered after the stored lines. Their numbers are provisional until the
        line ends. Reads only memory; raises nothing."""
        out = []
        for stream in ("stdout", "stderr"):
            if self._partial[stream] or self._partial_cut[stream]:
                data = bytes(self._partial[stream])
                if self._partial_cut[stream]:
                    data += _cut_marker(self._partial_cut[stream])
                number = self.last_line + len(out) + 1
                out.append(LogLine(number, stream, data, self._partial_at[stream]))
        return out

    def partial_grown_at(self) -> float | None:
        """When a partial line last grew (``time.monotonic()``), or None without one."""
        times = [self._partial_at[s] for s in self._partial if self._partial[s]]
        return max(times, default=None)

    def snapshot(self) -> LogSnapshot:
        """A consistent view of what is stored now, safe to read from another thread while
        this store keeps appending (see ``blocks``). Call it on the thread that appends;
        it reads only memory, in O(segments), and raises nothing."""
        views = tuple(
            SegmentView(
                seg.path,
                seg.first_line,
                seg.lines,
                seg.size,
                seg.index_lines,
                seg.index_offsets,
                dict(seg.tag_lines),
            )
            for seg in self._segments
        )
        return LogSnapshot(
            segments=views,
            first_line=self.first_line,
            last_line=self.last_line,
            pending=tuple(self.pending()),
            dropped_bytes=self.dropped_bytes,
            dropped_lines=self.dropped_lines,
            cut_lines=self.cut_lines,
            lost_bytes=self.lost_bytes,
            lost_reason=self.lost_reason,
        )

    def delete(self) -> None:
        """Remove every file of this log; on return the directory is gone (errors are
        ignored: a file already removed is no reason to fail)."""
        self.close()
        self._segments.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def drop_stored(self, directory: Path | None = None) -> None:
        """Forget every stored line as the size cap forgets old segments (numbers never
        shift; ``dropped_bytes`` and ``dropped_lines`` count them) and delete the files;
        lines written next go to ``directory`` (default: the same folder). For the history's
        disk cap, which deletes the whole log of an ended run. Raises nothing."""
        self.close()
        for segment in self._segments:
            self.dropped_bytes += segment.size
            self.dropped_lines += segment.lines
        self._segments.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
        if directory is not None:
            self.directory = directory
