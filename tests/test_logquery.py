"""Log queries on a real on-disk store: cursors, tails, streams, grep, budgets, cleaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from process_mcp.core.errors import InvalidRequest
from process_mcp.core.logs.query import LogQuery, run_query
from process_mcp.core.logs.search import search_lines
from process_mcp.core.logs.store import LogStore
from process_mcp.server.answers import grep_listing


def numbered(tmp_path: Path, count: int, max_bytes: int = 1 << 24) -> LogStore:
    log = LogStore(tmp_path / "log", max_bytes, 64 * 1024)
    for start in range(1, count + 1, 1000):  # chunks, as a pipe delivers them
        stop = min(start + 1000, count + 1)
        log.append("stdout", b"".join(b"line %d\n" % i for i in range(start, stop)))
    return log


def ask(log: LogStore, **kwargs):
    return run_query(log.snapshot(), LogQuery(**kwargs))


def budget_bytes(lines: list[str]) -> int:
    return sum(len(line.encode()) + 1 for line in lines)


def test_default_returns_everything_small(tmp_path: Path) -> None:
    answer = ask(numbered(tmp_path, 3))
    assert answer.lines == ["line 1", "line 2", "line 3"]
    assert answer.numbers == [1, 2, 3] and answer.next_cursor == 3 and not answer.truncated


def test_since_pages_oldest_first_and_cursor_reads_only_new(tmp_path: Path) -> None:
    log = numbered(tmp_path, 2500)
    page = ask(log, since=0, limit=1000)
    assert page.numbers[0] == 1 and page.numbers[-1] == 1000 and page.next_cursor == 1000
    page = ask(log, since=page.next_cursor, limit=1000)
    assert page.lines[0] == "line 1001" and page.next_cursor == 2000
    page = ask(log, since=page.next_cursor)
    assert page.numbers == list(range(2001, 2501)) and page.next_cursor == 2500
    assert ask(log, since=2500).lines == []
    log.append("stdout", b"new\n")
    assert ask(log, since=2500).lines == ["new"]


def test_since_never_skips_a_partial_line(tmp_path: Path) -> None:
    log = numbered(tmp_path, 2)
    log.append("stdout", b"progress 10%")
    first = ask(log, since=0)
    assert first.lines[-1] == "progress 10%" and first.pending_lines == 1
    assert first.next_cursor == 2  # the partial line is not covered
    log.append("stdout", b" done\n")
    second = ask(log, since=first.next_cursor)
    assert second.lines == ["progress 10% done"] and second.next_cursor == 3


def test_since_and_last_lines_together_is_an_error() -> None:
    with pytest.raises(InvalidRequest, match=r"'since' .* 'lastLines'"):
        LogQuery(since=1, last_lines=2)


def test_last_lines_reads_the_tail(tmp_path: Path) -> None:
    log = numbered(tmp_path, 100_000)
    answer = ask(log, last_lines=3)
    assert answer.lines == ["line 99998", "line 99999", "line 100000"]
    assert answer.next_cursor == 100_000 and answer.omitted_lines == 0


def test_default_max_bytes_keeps_the_newest_lines(tmp_path: Path) -> None:
    log = numbered(tmp_path, 100_000)
    answer = ask(log)
    assert answer.truncated and answer.lines[-1] == "line 100000"
    assert budget_bytes(answer.lines) <= 64 * 1024
    assert answer.omitted_lines == 100_000 - len(answer.lines)
    assert answer.numbers == list(range(100_001 - len(answer.lines), 100_001))


def test_max_bytes_on_since_ends_the_page_at_its_last_line(tmp_path: Path) -> None:
    log = numbered(tmp_path, 1000)
    answer = ask(log, since=0, limit=500, max_bytes=1000)
    assert answer.lines[0] == "line 1" and answer.next_cursor == answer.numbers[-1] < 500
    assert budget_bytes(answer.lines) <= 1000
    assert answer.omitted_lines == 0 and not answer.truncated  # nothing left out: page on


def follow_pages(log: LogStore, cursor: int = 0, **query) -> tuple[list[int], int]:
    """Every line number read by paging with ``since = nextCursor`` until the log ends."""
    seen: list[int] = []
    while True:
        page = ask(log, since=cursor, **query)
        seen += page.numbers
        assert page.next_cursor >= cursor
        if page.next_cursor == cursor or page.next_cursor >= page.last_stored:
            return seen, page.next_cursor
        assert page.next_cursor == page.numbers[-1]  # the last line actually returned
        cursor = page.next_cursor


def test_a_burst_paged_with_since_is_read_whole_each_line_once(tmp_path: Path) -> None:
    """5,000 lines of 120 bytes (all stored) read in pages of the default 64 KiB budget:
    before, each page kept its newest lines and the cursor passed the rest (2,705 of
    5,000 read)."""
    log = LogStore(tmp_path / "log", 1 << 24, 64 * 1024)
    body = b"x" * 113
    log.append("stdout", b"".join(b"%05d: %s\n" % (i, body) for i in range(1, 5001)))
    seen, cursor = follow_pages(log)
    assert seen == list(range(1, 5001)) and cursor == 5000
    seen, _ = follow_pages(log, 4500, limit=100_000, max_bytes=256)  # one line per page
    assert seen == list(range(4501, 5001))


def test_streams_are_filtered_and_interleaving_kept(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 20, 1024)
    log.append("stdout", b"o1\n")
    log.append("stderr", b"e1\n")
    log.append("stdout", b"o2\n")
    log.append("stderr", b"e2\n")
    assert ask(log).lines == ["o1", "e1", "o2", "e2"]
    assert ask(log, stream="stderr").numbers == [2, 4]
    assert ask(log, stream="stdout", last_lines=1).lines == ["o2"]
    assert ask(log, stream="stderr", since=2).lines == ["e2"]
    assert ask(log, stream="stdout", max_bytes=3).omitted_lines == 1


def test_grep_matches_with_context_across_blocks(tmp_path: Path) -> None:
    log = numbered(tmp_path, 300_000)  # several 1 MiB read blocks
    answer = ask(log, grep=r"^line 2000(00|01)$", context=2)
    assert answer.numbers == [199_998, 199_999, 200_000, 200_001, 200_002, 200_003]
    assert ask(log, grep="line 7$").lines == ["line 7"]
    assert ask(log, grep=r"^line \d{6}$", last_lines=2).lines == ["line 299999", "line 300000"]


def test_grep_context_at_block_boundaries_is_exact(tmp_path: Path) -> None:
    log = numbered(tmp_path, 200_000)
    blocks = list(log.snapshot().blocks(1))
    boundary = blocks[1][0]  # first line of the second block
    for target in (boundary - 1, boundary, boundary + 1):
        answer = ask(log, grep=f"^line {target}$", context=3)
        assert answer.numbers == list(range(target - 3, target + 4))
        assert answer.lines == [f"line {n}" for n in answer.numbers]


def test_grep_with_since_and_limit(tmp_path: Path) -> None:
    log = numbered(tmp_path, 10_000)
    answer = ask(log, grep="5$", since=100, limit=3)
    assert answer.numbers == [105, 115, 125] and answer.next_cursor == 125
    rest = ask(log, grep="5$", since=9990)
    assert rest.numbers == [9995] and rest.next_cursor == 10_000


def test_grep_with_stream_and_context(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 20, 1024)
    for i in range(10):
        log.append("stdout", b"out %d\n" % i)
        log.append("stderr", b"err %d\n" % i)
    answer = ask(log, grep="5", stream="stderr", context=1)
    assert answer.lines == ["err 4", "err 5", "err 6"]


def test_invalid_regex_is_quoted() -> None:
    with pytest.raises(InvalidRequest, match=r"invalid regular expression in 'grep' '\(unclosed'"):
        LogQuery(grep="(unclosed")


def test_invalid_regex_error_shows_the_pattern_as_typed() -> None:
    """RE2 quotes the pattern it compiled, with the internal '(?m)' in front: the error
    shows the user's pattern instead (and a '(?m)' the user typed stays)."""
    with pytest.raises(InvalidRequest) as refused:
        LogQuery(grep="(oops")
    assert "(?m)" not in str(refused.value) and "missing ): (oops." in str(refused.value)
    with pytest.raises(InvalidRequest, match=r"missing \): \(\?m\)\(x\."):
        LogQuery(grep="(?m)(x")


def test_context_without_grep_is_an_error() -> None:
    with pytest.raises(InvalidRequest, match="'context'"):
        LogQuery(context=2)


def test_ansi_and_progress_are_cleaned_unless_raw(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 20, 1024)
    log.append("stdout", b"\x1b[31mred\x1b[0m text\n10%\r50%\r100%\ncrlf\r\n")
    log.append("stdout", b"\x1b]0;title\x07ok\n")
    assert ask(log).lines == ["red text", "100%", "crlf", "ok"]
    assert ask(log, raw=True).lines[:2] == ["\x1b[31mred\x1b[0m text", "10%\r50%\r100%"]
    assert ask(log, grep="^red text$").numbers == [1]


def test_charset_screen_and_c1_escapes_are_cleaned_too(tmp_path: Path) -> None:
    """ESC ( 0 (line drawing), ESC # 8 (fill the screen with E), ESC c (reset), ESC 7,
    the C1 CSI and OSC (U+009B, U+009D, in UTF-8) and an OSC 52 clipboard write: all
    removed unless raw; "ě" (whose UTF-8 ends in byte 0x9b) is left alone."""
    log = LogStore(tmp_path / "log", 1 << 20, 1024)
    written = "\x1b(0lqk\x1b(B \x1b#8\x1bc\x1b7ok\u009b2J \u009d2;t\u009c \x1b]52;c;eA==\x07ě\n"
    log.append("stdout", written.encode())
    assert ask(log).lines == ["lqk ok  ě"]
    assert ask(log, raw=True).lines == [written[:-1]]


def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 20, 1024)
    log.append("stdout", b"ok\xff\xfe\n")
    assert ask(log).lines == ["ok\ufffd\ufffd"]
    assert ask(log, grep="ok").lines == ["ok\ufffd\ufffd"]


def test_numbers_survive_the_cap_and_since_into_dropped_data(tmp_path: Path) -> None:
    log = numbered(tmp_path, 50_000, max_bytes=64 * 1024)
    snapshot = log.snapshot()
    assert snapshot.first_line > 1 and log.dropped_bytes > 0
    answer = ask(log, since=10, limit=5)
    assert answer.missed_lines == snapshot.first_line - 11
    assert answer.numbers[0] == snapshot.first_line
    assert answer.lines[0] == f"line {snapshot.first_line}"
    assert ask(log, last_lines=1).lines == ["line 50000"]
    assert ask(log, grep="^line 50000$").numbers == [50_000]
    assert ask(log, grep="^line 1$").lines == []


def test_long_line_cut_in_answer_with_marker(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 24, 1 << 20)  # stored whole (1 MiB line cap)
    log.append("stdout", b"y" * 200_000 + b"\nend\n")
    answer = ask(log, max_bytes=1 << 20)
    assert answer.lines[0].endswith("bytes cut]") and len(answer.lines[0]) <= 64 * 1024
    assert answer.lines[1] == "end" and answer.truncated


def test_search_lines_from_a_line_number(tmp_path: Path) -> None:
    log = numbered(tmp_path, 1000)
    found = list(search_lines(log.snapshot(), r"^line 1\d\d$", start=150))
    assert found[0] == (150, "line 150") and found[-1] == (199, "line 199")


def test_noisy_build_followed_with_since_and_grep_stays_under_max_bytes(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 24, 64 * 1024)
    cursor, seen, numbers = 0, [], []
    for round_ in range(5):
        log.append("stdout", b"".join(b"warning: noisy %d-%d\n" % (round_, i) for i in range(3000)))
        log.append("stderr", b"error: " + b"z" * 5000 + b"\n")
        while True:  # page until this round's output is read
            answer = ask(log, since=cursor, grep="warning|error", max_bytes=4096, limit=10_000)
            assert budget_bytes(answer.lines) <= 4096
            assert answer.next_cursor > cursor or not answer.lines
            seen += answer.lines
            numbers += answer.numbers
            if answer.next_cursor == cursor or answer.next_cursor >= answer.last_stored:
                break
            cursor = answer.next_cursor
        cursor = answer.next_cursor
    assert sum(line.startswith("error: ") for line in seen) == 5
    assert sum(line.startswith("warning: ") for line in seen) == 5 * 3000
    assert numbers == list(range(1, 5 * 3001 + 1))  # every line, each once, in order


@pytest.mark.parametrize(
    "pattern",
    [
        "ok",
        "^ok",
        "^e",
        "rror",
        "e",
        "^$",
        r"\bword",
        "(foo|bar)baz$",
        "oo|ee",
        "(?i)ERROR",
        "k$",
        "(?i:e)rror",
        "[fw]o",
        "(ok|)k",
        "err(or|xx)|wor.*x",
        "^(e|o)",
        "^oo",
        "^[a-z]+$",
        r"^(o)o",
        "^$|^k",
        r"k\s+e",
        "[^z]*rror",
        "eok",
        "oops",
        "ee",
    ],
)
def test_grep_paths_agree_with_a_line_by_line_search(tmp_path: Path, pattern: str) -> None:
    """The prefilter, the tagged search and the whole-block search must all find exactly
    the lines a naive per-line ``re.search`` finds, whatever the tags and line contents."""
    import re

    texts = [
        "ok",
        "error",
        "eok",
        "oops",
        "",
        "mword",
        "word x",
        "foobaz",
        "ee",
        "k",
        "Error",
        "ERror",
    ]
    log = LogStore(tmp_path / "log", 1 << 24, 1024)
    expected = []
    number = 0
    for round_ in range(3000):  # > 1 MiB, so several blocks and prefilter samples
        stream = "stderr" if round_ % 3 == 0 else "stdout"
        log.append(stream, b"".join(t.encode() + b"\n" for t in texts))
        for text in texts:
            number += 1
            if re.search(pattern, text):
                expected.append(number)
    found = [n for n, _ in search_lines(log.snapshot(), pattern)]
    assert found == expected
    answer = ask(log, grep=pattern, max_bytes=16 * 1024 * 1024)
    assert answer.numbers == expected


def test_grep_in_a_stdout_only_log_uses_the_fast_strip_correctly(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 24, 1024)
    log.append("stdout", b"ok\noops\neek\nmm\n" * 1000)
    assert len(ask(log, grep="^o", max_bytes=1 << 20).lines) == 2000
    assert ask(log, grep="^eek$", last_lines=1).numbers == [3999]


def test_cleaning_keeps_non_ascii_text(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 20, 1024)
    log.append("stdout", "Děkuji ✓ \x1b[1mžluťoučký\x1b[0m kůň\n".encode())
    assert ask(log).lines == ["Děkuji ✓ žluťoučký kůň"]


def test_raw_grep_searches_the_text_as_written(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 20, 1024)
    log.append("stdout", b"\x1b[31merror\x1b[0m one\nplain error two\n")
    assert ask(log, grep=r"^error").numbers == [1]
    assert ask(log, grep=r"^error", raw=True).numbers == []
    assert ask(log, grep=r"\x1b\[31m", raw=True).lines == ["\x1b[31merror\x1b[0m one"]


def test_since_stream_grep_context_and_budget_together(tmp_path: Path) -> None:
    log = LogStore(tmp_path / "log", 1 << 20, 1024)
    for i in range(1, 201):
        log.append("stdout", b"out %d\n" % i)
        log.append("stderr", b"err %d%s\n" % (i, b" FAIL" if i % 50 == 0 else b""))
    # line 150 is 'err 75': matches at err 100, 150, 200, one stderr line around each
    full = ask(log, since=150, stream="stderr", grep="FAIL", context=1)
    assert [line.split(" FAIL")[0] for line in full.lines] == [
        f"err {i}" for i in (99, 100, 101, 149, 150, 151, 199, 200)
    ]
    assert full.numbers[-1] == 400 and full.next_cursor == 400
    # The budget counts the grep -n -C form: "398-err 199", "400:err 200 FAIL", and room
    # for a "--" line before each.
    # A page read with since ends at its last line ("198-err 99", "200:err 100 FAIL", and
    # room for a "--" line before each); the next one starts after it.
    cut = ask(log, since=150, stream="stderr", grep="FAIL", context=1, max_bytes=35)
    assert cut.lines == ["err 99", "err 100 FAIL"] and cut.numbers == [198, 200]
    assert cut.next_cursor == 200 and cut.omitted_lines == 0
    assert budget_bytes(grep_listing(cut, separate=True)) <= 35
    matches, cursor = [], 150
    while cursor < 400:
        page = ask(log, since=cursor, stream="stderr", grep="FAIL", context=1, max_bytes=35)
        assert budget_bytes(grep_listing(page, separate=True)) <= 35
        matches += [n for n, hit in zip(page.numbers, page.hits, strict=True) if hit]
        cursor = page.next_cursor
    assert matches == [200, 300, 400]  # every match once
