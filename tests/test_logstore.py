"""The on-disk log: numbering, interleaving, partial and long lines, the size cap."""

from __future__ import annotations

from pathlib import Path

from process_mcp.core.logs.format import STREAM_TAGS
from process_mcp.core.logs.query import LogAnswer, LogQuery, run_query
from process_mcp.core.logs.store import LogStore

TAG_STREAMS = {tag: name for name, tag in STREAM_TAGS.items()}


def store(tmp_path: Path, max_bytes: int = 1 << 20, max_line: int = 64) -> LogStore:
    return LogStore(tmp_path / "log", max_bytes, max_line)


def texts(lines) -> list[tuple[int, str, bytes]]:
    return [(line.number, line.stream, line.data) for line in lines]


def stored(log: LogStore) -> list[tuple[int, str, bytes]]:
    """Every stored line as (number, stream, exact bytes), read from a snapshot's blocks."""
    found = []
    for block in log.snapshot().blocks(1):
        lines = block.data.split(b"\n")[:-1]
        assert len(lines) == block.count
        for offset, line in enumerate(lines):
            found.append((block.first + offset, TAG_STREAMS[line[:1]], line[1:]))
    return found


def ask(log: LogStore, **query: object) -> LogAnswer:
    """The log as ``get-log`` answers it (``LogQuery`` fields as keywords)."""
    return run_query(log.snapshot(), LogQuery(**query))  # type: ignore[arg-type]


def test_lines_split_across_chunks_and_streams_keep_arrival_order(tmp_path: Path) -> None:
    log = store(tmp_path)
    log.append("stdout", b"hel")
    log.append("stderr", b"oops\nwar")
    log.append("stdout", b"lo\nwor")
    log.append("stdout", b"ld\n")
    log.append("stderr", b"ning\n")
    assert stored(log) == [
        (1, "stderr", b"oops"),
        (2, "stdout", b"hello"),
        (3, "stdout", b"world"),
        (4, "stderr", b"warning"),
    ]


def test_partial_line_is_pending_then_flushed_at_eof(tmp_path: Path) -> None:
    log = store(tmp_path)
    log.append("stdout", b"a\nname? ")
    assert texts(log.pending()) == [(2, "stdout", b"name? ")]
    log.end_stream("stdout")
    assert stored(log) == [(1, "stdout", b"a"), (2, "stdout", b"name? ")]
    assert log.pending() == []


def test_empty_lines_and_binary_are_kept(tmp_path: Path) -> None:
    log = store(tmp_path)
    log.append("stdout", b"\n\n\xff\xfe\x00x\n")
    assert stored(log) == [
        (1, "stdout", b""),
        (2, "stdout", b""),
        (3, "stdout", b"\xff\xfe\x00x"),
    ]


def test_long_lines_are_cut_with_a_marker(tmp_path: Path) -> None:
    log = store(tmp_path, max_line=64)
    log.append("stdout", b"short\n" + b"x" * 200 + b"\nafter\n")
    assert ask(log).lines == ["short", "x" * 64 + " …[136 bytes cut]", "after"]
    assert log.cut_lines == 1


def test_a_line_that_never_ends_is_held_cut_while_it_grows(tmp_path: Path) -> None:
    """Memory stays bounded: only ``max_line`` bytes of an unfinished line are kept."""
    log = store(tmp_path, max_line=64)
    for _ in range(100):  # a line that never ends, in many chunks
        log.append("stderr", b"y" * 1000)
    answer = ask(log)
    assert answer.lines == ["y" * 64 + " …[99936 bytes cut]"] and answer.pending_lines == 1
    log.append("stderr", b"tail\n")
    assert ask(log).lines == ["y" * 64 + " …[99940 bytes cut]"]
    assert log.cut_lines == 1


def test_tail_and_ranges(tmp_path: Path) -> None:
    log = store(tmp_path)
    log.append("stdout", b"".join(b"line %d\n" % i for i in range(1, 5001)))
    assert ask(log, last_lines=3).lines == ["line 4998", "line 4999", "line 5000"]
    page = ask(log, since=2499, limit=2)
    assert list(zip(page.numbers, page.lines, strict=True)) == [
        (2500, "line 2500"),
        (2501, "line 2501"),
    ]
    assert ask(log, last_lines=10_000, max_bytes=1 << 20).numbers[0] == 1


def test_cap_drops_oldest_segments_but_numbers_never_shift(tmp_path: Path) -> None:
    log = store(tmp_path, max_bytes=4096)
    for i in range(1, 2001):
        log.append("stdout", b"line %05d\n" % i)
    assert log.size <= 4096
    assert log.dropped_bytes > 0
    assert log.first_line > 1
    assert log.last_line == 2000
    first = ask(log, since=0, limit=1)
    assert first.numbers == [log.first_line]
    assert first.lines == [f"line {log.first_line:05d}"]
    assert stored(log)[0] == (log.first_line, "stdout", b"line %05d" % log.first_line)
    assert ask(log, last_lines=1).lines == ["line 02000"]
    assert log.dropped_bytes == (log.first_line - 1) * len(b"oline 00001\n")


def test_delete_removes_files(tmp_path: Path) -> None:
    log = store(tmp_path)
    log.append("stdout", b"x\n")
    log.delete()
    assert not (tmp_path / "log").exists()


def test_memory_per_log_stays_under_one_mib_whatever_is_written(tmp_path: Path) -> None:
    """32 MiB of short lines, long lines and a line that never ends: the store's own
    allocations (index, partial lines, counters) stay below 1 MiB."""
    import tracemalloc

    log = LogStore(tmp_path / "log", 8 << 20, 64 * 1024)
    short = b"".join(b"line %d\n" % i for i in range(7000))  # ~60 KiB, as a pipe read
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(400):
            log.append("stdout", short)
            log.append("stderr", b"z" * 20_000 if i % 2 else b"q" * 3 + b"\n")
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert log.total_bytes_written > 24 << 20 and log.dropped_bytes > 0
    assert after - before < 1 << 20
