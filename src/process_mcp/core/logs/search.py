"""Searching stored lines with a regular expression, block by block, at close to disk speed.

Two ways to find matching lines in a block, chosen per block:

* **Literal prefilter.** Most patterns an agent greps with contain a literal every match
  must contain (``error``, ``(123|456)789$`` needs ``789``; ``error|warning`` needs one of
  two). ``bytes.find``/``count`` locate it at memchr speed; only the lines holding it are
  decoded and checked with the regex. Used while candidates are rare in the block.
* **Whole-block search.** Otherwise the block is decoded once, the one-byte tags are
  stripped, and the MULTILINE regex runs over it; newlines are counted only between
  matches to turn positions back into line numbers.

Per-line Python work is thus paid only for lines that (may) match. The query engine
(``query``) selects lines with :meth:`TextBlock.matches`; :func:`search_lines` is the same
search as a plain iterator of matching lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from process_mcp.core.logs.blocks import Block, LogSnapshot
from process_mcp.core.logs.clean import clean_block, decode_tagged, strip_tags, strip_tags_bytes
from process_mcp.core.logs.format import ALL_TAGS, STREAM_SELECT
from process_mcp.core.logs.pattern import LinePattern, Searcher

# A candidate line costs ~1.5 µs, a whole-block search ~5 ns per byte: prefilter while
# candidates are rarer than one per this many bytes.
PREFILTER_BYTES_PER_CANDIDATE = 400
PREFILTER_SAMPLE = 64 * 1024  # candidates are first counted in this much of the block
NEWLINE = ord("\n")
MatchCheck = Callable[[int, object, int], tuple[bool, int]]  # (index, match, start) -> (hit, pos)


class TextBlock:
    """A block of stored lines, cleaned (unless raw); decoded lazily, line access lazily.

    Searches run on bytes (RE2 takes them as they are): ``searchable`` is the block as
    valid UTF-8, the block itself when it is ASCII. Only the lines an answer returns are
    decoded."""

    __slots__ = (
        "_body",
        "_known",
        "_lines",
        "_searchable",
        "_tagged",
        "_tags",
        "count",
        "data",
        "first",
        "mixed",
    )

    def __init__(self, block: Block, raw: bool) -> None:
        self.first = block.first
        self.count = block.count
        self.mixed = block.mixed
        self.data = block.data if raw else clean_block(block.data)
        self._tagged: str | None = None
        self._searchable: bytes | None = None
        self._body: bytes | None = None
        self._lines: list[str] | None = None
        self._tags: list[str] | None = None
        self._known: dict[int, tuple[str, str]] = {}

    @property
    def tagged(self) -> str:
        """The block as text, every line reading ``\\n<tag><text>`` (decoded once)."""
        if self._tagged is None:
            self._tagged = decode_tagged(self.data)
        return self._tagged

    @property
    def searchable(self) -> bytes:
        """The block as valid UTF-8 bytes, every line reading ``\\n<tag><text>``: invalid
        bytes become U+FFFD, as in the text an answer shows, so a pattern sees what the
        agent sees. An ASCII block is taken as it is (one C-level check)."""
        if self._searchable is None:
            data = self.data
            if not data.isascii():
                data = data.decode("utf-8", errors="replace").encode()
            self._searchable = b"\n" + data
        return self._searchable

    @property
    def body(self) -> bytes:
        """``searchable`` without tags, every line reading ``\\n<text>``."""
        if self._body is None:
            self._body = strip_tags_bytes(self.searchable, self.mixed)
        return self._body

    def line(self, index: int) -> str:
        """Text of the ``index``-th line of the block (0-based; IndexError past ``count``)."""
        if index in self._known:
            return self._known[index][1]
        if self._lines is None:
            self._lines = strip_tags(self.tagged, self.mixed)[1:-1].split("\n")
        return self._lines[index]

    def tag(self, index: int) -> str:
        """Tag of the ``index``-th line, one of ``ALL_TAGS`` (IndexError past ``count``)."""
        if index in self._known:
            return self._known[index][0]
        if self._tags is None:
            self._tags = [t[:1] for t in self.tagged[1:-1].split("\n")]
        return self._tags[index]

    def keeps(self, index: int, tags: str) -> bool:
        """Whether the ``index``-th line belongs to a selection (``STREAM_SELECT`` value)."""
        return len(tags) == len(ALL_TAGS) or self.tag(index) in tags

    def matches(self, pattern: LinePattern) -> Iterator[int]:
        """Indexes of lines whose text ``pattern`` finds a match in (each line searched on
        its own), each once, oldest first, whichever of the search strategies the block
        gets. Raises nothing."""
        if pattern.literals is not None:
            positions = self._candidates(pattern.literals)
            if positions is not None:
                return self._prefiltered(pattern, positions)
        if pattern.tag_safe:
            return self._searched_tagged(pattern.regex, pattern.plain)
        if pattern.line_start is not None:
            return self._searched_line_starts(pattern.line_start, pattern.regex)
        return self._searched(pattern.regex)

    def _candidates(self, literals: tuple[bytes, ...]) -> list[int] | None:
        """Sorted positions of the literals, or None once they are too many to be worth it."""
        data, positions = self.data, []
        sample = sum(data.count(literal, 0, PREFILTER_SAMPLE) for literal in literals)
        if sample * PREFILTER_BYTES_PER_CANDIDATE > min(len(data), PREFILTER_SAMPLE):
            return None
        most = len(data) // PREFILTER_BYTES_PER_CANDIDATE + 1
        for literal in literals:
            pos = data.find(literal)
            while pos >= 0:
                positions.append(pos)
                if len(positions) > most:
                    return None
                pos = data.find(literal, pos + 1)
        positions.sort()
        return positions

    def _prefiltered(self, pattern: LinePattern, positions: list[int]) -> Iterator[int]:
        data = self.data
        newlines, counted_to, line_end = 0, 0, -1
        for pos in positions:
            if pos <= line_end:
                continue  # another candidate on a line already checked
            start = data.rfind(b"\n", 0, pos) + 1
            line_end = data.find(b"\n", pos)
            newlines += data.count(b"\n", counted_to, start)
            counted_to = start
            line = data[start + 1 : line_end]
            if pattern.plain or pattern.search_line(line):
                self._known[newlines] = (chr(data[start]), line.decode(errors="replace"))
                yield newlines

    def _found(self, index: int, tag: int, line: bytes) -> None:
        self._known[index] = (chr(tag), line.decode())

    def _scan(
        self, searcher: Searcher, text: bytes, pos: int, lead: int, check: MatchCheck
    ) -> Iterator[int]:
        """The loop behind the regex strategies: ``searcher`` runs over ``text`` from
        ``pos``; a match's line index is the count of newlines before its start, less
        ``lead``; ``check(index, match, start)`` says whether that line counts and where
        the search goes on. Indexes come once each, oldest first; it stops past the last
        line of the block."""
        counted_to, newlines = 0, 0
        while True:
            found = searcher.search(text, pos)
            if found is None:
                return
            start = found.start()  # type: ignore[attr-defined]
            newlines += text.count(b"\n", counted_to, start)
            counted_to = start
            index = newlines - lead
            if index >= self.count:
                return
            hit, pos = check(index, found, start)
            if hit:
                yield index

    def _searched_tagged(self, regex: Searcher, plain: bool = False) -> Iterator[int]:
        """Search the text with its tags left in (saves a pass over the block): only a
        pattern that never looks behind a position qualifies, and a match that used a tag
        character is weeded out by checking its line alone (a literal without newlines
        can only have used one by starting at it)."""
        text = self.searchable

        def check(index: int, found: object, start: int) -> tuple[bool, int]:
            at_newline = text[start] == NEWLINE
            line_start = text.rfind(b"\n", 0, start if at_newline else start + 1)
            line_end = start if at_newline else text.find(b"\n", start)
            line = text[line_start + 2 : line_end]
            hit = (plain and start > line_start + 1) or regex.search(line) is not None
            if hit:
                self._found(index, text[line_start + 1], line)
            return hit, line_end + 1

        return self._scan(regex, text, 1, 1, check)

    def _searched_line_starts(self, line_start: Searcher, regex: Searcher) -> Iterator[int]:
        """Search the tagged text for ``\\n<tag>rest``: each match starts at the newline
        before its line (the newline at ``start`` opens line ``index``); the line alone is
        then checked with the user's pattern."""
        text = self.searchable

        def check(index: int, found: object, start: int) -> tuple[bool, int]:
            line_end = text.find(b"\n", start + 1)
            line = text[start + 2 : line_end]
            hit = regex.search(line) is not None
            if hit:
                self._found(index, text[start + 1], line)
            return hit, line_end

        return self._scan(line_start, text, 0, 0, check)

    def _searched(self, regex: Searcher) -> Iterator[int]:
        """Search the text without tags (it starts with a newline of its own); a match
        that ran past its line's end (a class like ``[^x]`` or ``\\s`` takes a newline)
        counts only if the line alone matches."""
        body = self.body

        def check(index: int, found: object, start: int) -> tuple[bool, int]:
            at_newline = body[start] == NEWLINE
            line_end = start if at_newline else body.find(b"\n", start)
            hit = (
                found.end() <= line_end  # type: ignore[attr-defined]
                or regex.search(body[body.rfind(b"\n", 0, line_end) + 1 : line_end]) is not None
            )
            return hit, line_end + 1

        return self._scan(regex, body, 1, 1, check)


def text_blocks(snapshot: LogSnapshot, start: int, raw: bool) -> Iterator[TextBlock]:
    """Stored lines numbered ``start`` (clamped to what is kept) onwards, as text blocks,
    oldest first. Errors as for ``LogSnapshot.blocks``."""
    for block in snapshot.blocks(start):
        yield TextBlock(block, raw)


def search_lines(
    snapshot: LogSnapshot,
    pattern: str | LinePattern,
    start: int = 1,
    stream: str = "all",
    raw: bool = False,
) -> Iterator[tuple[int, str]]:
    """Stored lines numbered ``start`` onwards (oldest first) that match ``pattern``, as
    ``(number, cleaned text)``, with the engine behind ``grep`` and pattern waits (the
    query layer selects with :meth:`TextBlock.matches` too). Raises InvalidRequest (quoting
    the pattern) when it does not compile."""
    compiled = LinePattern.compile(pattern) if isinstance(pattern, str) else pattern
    tags = STREAM_SELECT[stream]
    for block in text_blocks(snapshot, start, raw):
        for index in block.matches(compiled):
            if block.keeps(index, tags):
                yield block.first + index, block.line(index)
