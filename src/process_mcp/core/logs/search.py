"""Searching stored lines with a regular expression, block by block, at close to disk speed.

Two ways to find matching lines in a block, chosen per block:

* **Literal prefilter.** Most patterns an agent greps with contain a literal every match
  must contain (``error``, ``(123|456)789$`` needs ``789``; ``error|warning`` needs one of
  two). ``bytes.find``/``count`` locate it at memchr speed; only the lines holding it are
  decoded and checked with the regex. Used while candidates are rare in the block.
* **Whole-block search.** Otherwise the block is decoded once, the one-byte tags are
  stripped, and the MULTILINE regex runs over it; newlines are counted only between
  matches to turn positions back into line numbers.

Per-line Python work is thus paid only for lines that (may) match. :func:`search_lines`
is the primitive other features build on (e.g. waiting for a pattern from line N).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from process_mcp.core.errors import InvalidRequest
from process_mcp.core.logs.blocks import Block, LogSnapshot
from process_mcp.core.logs.clean import clean_block, decode_tagged, strip_tags

try:  # the stdlib's own regex parser, to find literals a match requires
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python < 3.11 layout
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

# Stored tags each stream selection keeps; server markers (restarts) belong to all.
STREAM_SELECT = {"all": "oem", "stdout": "om", "stderr": "em"}
# A candidate line costs ~1.5 µs, a whole-block search ~5 ns per byte: prefilter while
# candidates are rarer than one per this many bytes.
PREFILTER_BYTES_PER_CANDIDATE = 400
PREFILTER_SAMPLE = 64 * 1024  # candidates are first counted in this much of the block


@dataclass(frozen=True)
class LinePattern:
    """A user's regex, compiled for line search, with the literals any match must contain."""

    source: str
    regex: re.Pattern[str]
    literals: tuple[bytes, ...] | None
    tag_safe: bool
    line_start: re.Pattern[str] | None = None

    @classmethod
    def compile(cls, pattern: str, name: str = "grep") -> LinePattern:
        """Compile ``pattern``; an invalid one is an error naming the parameter ``name``."""
        try:
            regex = re.compile(pattern, re.MULTILINE)
        except re.error as exc:
            raise InvalidRequest(
                f"invalid regular expression in '{name}' {pattern!r}: {exc}. It is a Python "
                "'re' pattern: escape special characters like '(' or '[' with a backslash"
            ) from None
        parsed = _parse(regex)
        return cls(
            pattern,
            regex,
            required_literals(regex, parsed),
            parsed is not None and not _needs_line_start(list(parsed)),
            _line_start_form(pattern, parsed),
        )


def _line_start_form(pattern: str, parsed: list | None) -> re.Pattern[str] | None:
    """For ``^rest`` (and nothing else looking behind): ``\\n[oem](?:rest)``, which finds
    line starts in the tagged text without stripping tags, several times faster."""
    if parsed is None or not pattern.startswith("^") or "^" in pattern[1:]:
        return None  # another '^' may have been merged by the parser ('^a|^b' -> '^(a|b)')
    first_op, first_arg = parsed[0]
    if first_op is not sre_constants.AT or first_arg is not sre_constants.AT_BEGINNING:
        return None
    if _needs_line_start(parsed[1:]):
        return None
    try:
        return re.compile(f"\\n[oem](?:{pattern[1:]})", re.MULTILINE)
    except re.error:
        return None


def _parse(regex: re.Pattern[str]) -> list | None:
    try:
        return list(sre_parse.parse(regex.pattern, regex.flags))
    except Exception:  # a private parser: never let it break a search
        return None


_LINE_START_CODES = {
    sre_constants.AT_BEGINNING,
    sre_constants.AT_BEGINNING_LINE,
    sre_constants.AT_BEGINNING_STRING,
    sre_constants.AT_BOUNDARY,
    sre_constants.AT_NON_BOUNDARY,
}


def _needs_line_start(items: list) -> bool:
    """Whether the pattern looks at what precedes a position (``^``, ``\\b``, lookarounds):
    only such patterns can miss a line when the one-byte tags are left in the text."""
    for op, arg in items:
        if op is sre_constants.AT and arg in _LINE_START_CODES:
            return True
        if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            return True
        if any(_needs_line_start(list(sub)) for sub in _subpatterns(arg)):
            return True
    return False


def _subpatterns(arg: object) -> Iterator[sre_parse.SubPattern]:
    if isinstance(arg, sre_parse.SubPattern):
        yield arg
    elif isinstance(arg, tuple | list):
        for item in arg:
            yield from _subpatterns(item)


def required_literals(regex: re.Pattern[str], parsed: list | None) -> tuple[bytes, ...] | None:
    """Literals of which every match contains at least one, or None when unknown.

    ``(123|456)789$`` gives ``123789``/``456789`` (rarer than ``789``), ``error|warn.*x``
    gives ``error``/``warn``; the most selective run of the pattern is kept."""
    if regex.flags & re.IGNORECASE or parsed is None:
        return None
    found = _literal_alternatives(parsed)
    if not found and len(parsed) == 1 and parsed[0][0] is sre_constants.BRANCH:
        per_branch = [_literal_alternatives(list(alt)) for alt in parsed[0][1][1]]
        if all(per_branch):
            found = [lit for alts in per_branch for lit in alts]
    if not found or len(found) > MAX_LITERALS:
        return None
    if any("\n" in lit or "\ufffd" in lit for lit in found):
        return None
    return tuple(lit.encode() for lit in found)


MAX_LITERALS = 16


def _literal_alternatives(items: list) -> list[str]:
    """The best set of strings one of which every match of ``items`` contains ([] if none)."""
    best: list[str] = []
    run = [""]
    for op, arg in [*items, (None, None)]:
        grown = _grow(run, op, arg)
        if grown is not None:
            run = grown
            continue
        if _selectivity(run) > _selectivity(best):
            best = run
        run = [""]
    return best


def _selectivity(alternatives: list[str]) -> int:
    return min(map(len, alternatives)) if alternatives else 0


def _grow(run: list[str], op: object, arg: object) -> list[str] | None:
    """``run`` extended by one pattern item, or None when the item is not literal text."""
    if op is sre_constants.LITERAL:
        return [text + chr(arg) for text in run]  # type: ignore[arg-type]
    alternatives = _pure_alternatives([(op, arg)])
    if alternatives is None or len(run) * len(alternatives) > MAX_LITERALS:
        return None
    return [text + alt for text in run for alt in alternatives]


def _pure_alternatives(items: list) -> list[str] | None:
    """The exact strings ``items`` can match when it is only literals, alternations of
    literals, groups of those or a class of plain characters; else None."""
    if all(op is sre_constants.LITERAL for op, _ in items):
        return ["".join(chr(arg) for _, arg in items)]
    if len(items) != 1:
        return None
    op, arg = items[0]
    if op is sre_constants.SUBPATTERN:
        if arg[1] & re.IGNORECASE:  # (?i:...): case varies, no exact literal
            return None
        return _pure_alternatives(list(arg[-1]))
    if op is sre_constants.BRANCH:
        alternatives = [_pure_alternatives(list(alt)) for alt in arg[1]]
        if any(alt is None for alt in alternatives):
            return None
        return [text for alt in alternatives for text in alt]  # type: ignore[union-attr]
    if op is sre_constants.IN and all(kind is sre_constants.LITERAL for kind, _ in arg):
        return [chr(code) for _, code in arg]
    return None


class TextBlock:
    """A block of stored lines, cleaned (unless raw); decoded lazily, line access lazily."""

    __slots__ = ("_body", "_known", "_lines", "_tagged", "_tags", "count", "data", "first", "mixed")

    def __init__(self, block: Block, raw: bool) -> None:
        self.first = block.first
        self.count = block.count
        self.mixed = block.mixed
        self.data = block.data if raw else clean_block(block.data)
        self._tagged: str | None = None
        self._body: str | None = None
        self._lines: list[str] | None = None
        self._tags: list[str] | None = None
        self._known: dict[int, tuple[str, str]] = {}

    @property
    def tagged(self) -> str:
        if self._tagged is None:
            self._tagged = decode_tagged(self.data)
        return self._tagged

    @property
    def body(self) -> str:
        if self._body is None:
            self._body = strip_tags(self.tagged, self.mixed)
        return self._body

    def line(self, index: int) -> str:
        if index in self._known:
            return self._known[index][1]
        if self._lines is None:
            self._lines = self.body[1:-1].split("\n")
        return self._lines[index]

    def tag(self, index: int) -> str:
        if index in self._known:
            return self._known[index][0]
        if self._tags is None:
            self._tags = [t[:1] for t in self.tagged[1:-1].split("\n")]
        return self._tags[index]

    def keeps(self, index: int, tags: str) -> bool:
        return len(tags) == 3 or self.tag(index) in tags

    def matches(self, pattern: LinePattern) -> Iterator[int]:
        """Indexes of lines with a match, each once, oldest first."""
        if pattern.literals is not None:
            positions = self._candidates(pattern.literals)
            if positions is not None:
                return self._prefiltered(pattern.regex, positions)
        if pattern.tag_safe:
            return self._searched_tagged(pattern.regex)
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

    def _prefiltered(self, regex: re.Pattern[str], positions: list[int]) -> Iterator[int]:
        data = self.data
        newlines, counted_to, line_end = 0, 0, -1
        for pos in positions:
            if pos <= line_end:
                continue  # another candidate on a line already checked
            start = data.rfind(b"\n", 0, pos) + 1
            line_end = data.find(b"\n", pos)
            newlines += data.count(b"\n", counted_to, start)
            counted_to = start
            text = data[start + 1 : line_end].decode("utf-8", errors="replace")
            if regex.search(text):
                self._known[newlines] = (chr(data[start]), text)
                yield newlines

    def _searched_tagged(self, regex: re.Pattern[str]) -> Iterator[int]:
        """Search the text with its tags left in (saves a pass over the block): only a
        pattern that never looks behind a position qualifies, and a match that used a tag
        character is weeded out by checking its line alone."""
        text, pos, counted_to, newlines = self.tagged, 1, 0, 0
        while True:
            found = regex.search(text, pos)
            if found is None:
                return
            start = found.start()
            newlines += text.count("\n", counted_to, start)
            counted_to = start
            index = newlines - 1
            if index >= self.count:
                return
            line_start = text.rfind("\n", 0, start + 1 if text[start] != "\n" else start)
            line_end = start if text[start] == "\n" else text.find("\n", start)
            line = text[line_start + 2 : line_end]
            if regex.search(line):
                self._known[index] = (text[line_start + 1], line)
                yield index
            pos = line_end + 1

    def _searched_line_starts(
        self, line_start: re.Pattern[str], regex: re.Pattern[str]
    ) -> Iterator[int]:
        """Search the tagged text for ``\\n<tag>rest``: each match starts at the newline
        before its line; the line alone is then checked with the user's pattern."""
        text, pos, counted_to, newlines = self.tagged, 0, 0, 0
        while True:
            found = line_start.search(text, pos)
            if found is None:
                return
            start = found.start()
            newlines += text.count("\n", counted_to, start)
            counted_to = start
            index = newlines  # the newline at ``start`` opens line ``index``
            if index >= self.count:
                return
            line_end = text.find("\n", start + 1)
            line = text[start + 2 : line_end]
            if regex.search(line):
                self._known[index] = (text[start + 1], line)
                yield index
            pos = line_end

    def _searched(self, regex: re.Pattern[str]) -> Iterator[int]:
        body, pos, counted_to, newlines = self.body, 1, 0, 0
        while True:
            found = regex.search(body, pos)
            if found is None:
                return
            start = found.start()
            newlines += body.count("\n", counted_to, start)
            counted_to = start
            index = newlines - 1  # the body starts with a newline of its own
            if index >= self.count:
                return
            yield index
            line_end = start if body[start] == "\n" else body.find("\n", start)
            pos = line_end + 1


def text_blocks(snapshot: LogSnapshot, start: int, raw: bool) -> Iterator[TextBlock]:
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
    ``(number, cleaned text)``: the primitive behind ``grep`` and pattern waits. Raises
    InvalidRequest (quoting the pattern) when it does not compile."""
    compiled = LinePattern.compile(pattern) if isinstance(pattern, str) else pattern
    tags = STREAM_SELECT[stream]
    for block in text_blocks(snapshot, start, raw):
        for index in block.matches(compiled):
            if block.keeps(index, tags):
                yield block.first + index, block.line(index)
