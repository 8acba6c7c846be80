"""A user's regular expression, compiled for searching stored lines in linear time.

Patterns run on RE2 (``google-re2``): the time a search takes grows with the text, never
with what the pattern does, so no pattern (``(a+)+$`` on a line of ``a``s, the classic) can
stall a search, and a model's accidental pattern costs what any other one does. RE2 has no
back-references or look-arounds; such a pattern is refused with an error that names the
construct and what to write instead. RE2 searches bytes: a block is searched as stored (a
block that is not ASCII is first made valid UTF-8, invalid bytes reading as U+FFFD as in
the answer), so no search decodes text it does not return.

Besides the compiled regex, :meth:`LinePattern.compile` works out what lets ``search`` skip
most of a block: the literals every match must contain (``error``, ``(123|456)789$`` needs
``123789`` or ``456789``), whether the pattern may run over text that still holds the
one-byte line tags (it never looks behind a position), and for ``^rest`` a form that finds
line starts in the tagged text directly. The analysis reads the pattern with the standard
library's parser, which agrees with RE2 on the syntax both accept; a pattern where they may
read differently (POSIX classes ``[[:alpha:]]``, ``x{,3}``) or that only RE2 reads gets no
analysis. Anything the analysis cannot vouch for falls back to the plain search, so it only
ever makes a search faster, never different.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import re2

from process_mcp.core.errors import InvalidRequest
from process_mcp.core.logs.format import ALL_TAGS

try:  # the stdlib's own regex parser, to find literals a match requires
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python < 3.11 layout
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

MAX_LITERALS = 16  # more alternatives than this: no prefilter
QUOTED_PATTERN_CHARS = 200  # an error quotes at most this much of the pattern
# Syntax RE2 reads otherwise than the stdlib parser: no analysis for such a pattern.
_READ_DIFFERENTLY = ("[:", "{,")


class Searcher(Protocol):
    """A compiled RE2 pattern, as this module uses it (``re2`` ships no type stubs)."""

    def search(self, text: bytes | str, pos: int = ..., endpos: int = ...) -> object | None: ...


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refused pattern on stderr
    options.never_capture = True  # only where a match is counts: no submatch work
    return options


_OPTIONS = _options()
MULTILINE = "(?m)"  # prefixed to every pattern; never shown to the user (see _error_text)


def compile_re2(pattern: str) -> Searcher:
    """``pattern`` compiled by RE2 with ``^``/``$`` at line bounds (MULTILINE). Raises
    ``re2.error`` with RE2's own text when RE2 cannot run it."""
    return re2.compile(MULTILINE + pattern, _OPTIONS)  # type: ignore[no-any-return]


# What RE2 refuses that a Python or PCRE user writes, by the start of the fragment RE2's
# error quotes: (what it is, what to write instead).
_UNSUPPORTED: tuple[tuple[str, str, str], ...] = (
    ("invalid perl operator: (?<=", "a look-behind '(?<=...)'", "the text itself"),
    (
        "invalid perl operator: (?<!",
        "a negative look-behind '(?<!...)'",
        "the text itself, or grep for what you want and read the lines with 'context'",
    ),
    ("invalid perl operator: (?=", "a look-ahead '(?=...)'", "the text itself"),
    (
        "invalid perl operator: (?!",
        "a negative look-ahead '(?!...)'",
        "grep for what you want and filter by eye, or use a character class like '[^x]'",
    ),
    (
        "invalid perl operator: (?P",
        "a named back-reference '(?P=name)'",
        "the repeated text itself",
    ),
    ("invalid perl operator: (?>", "an atomic group '(?>...)'", "a plain group '(?:...)'"),
    ("invalid perl operator: (?(", "a conditional '(?(1)...)'", "an alternation 'a|b'"),
    ("bad repetition operator: *+", "a possessive quantifier '*+'", "'*'"),
    ("bad repetition operator: ++", "a possessive quantifier '++'", "'+'"),
    ("bad repetition operator: ?+", "a possessive quantifier '?+'", "'?'"),
    ("invalid escape sequence: \\Z", "'\\Z'", "'$' (end of line) or '\\z'"),
    (
        "invalid escape sequence: \\g",
        "a back-reference '\\g<...>'",
        "the repeated text itself",
    ),
    (
        "invalid repetition size",
        "a repeat count above 1000 (or {m,n} with m above n)",
        "a smaller count, or '+'",
    ),
    ("pattern too large", "a pattern whose compiled form is too large", "a shorter pattern"),
)


def describe_refusal(pattern: str, name: str, error: str) -> str:
    """The error for a pattern RE2 refused: it quotes (at most ``QUOTED_PATTERN_CHARS`` of)
    the pattern, names the construct when it is one RE2 does not support, and says what to
    write instead. Pure."""
    quoted = repr(
        pattern if len(pattern) <= QUOTED_PATTERN_CHARS else pattern[:QUOTED_PATTERN_CHARS] + "..."
    )
    head = f"invalid regular expression in '{name}' {quoted}"
    if re.match(r"invalid escape sequence: \\[1-9]", error):
        return (
            f"{head}: back-references like '\\1' are not supported (patterns run on RE2, "
            "in linear time, so none can freeze the server); use the repeated text itself, "
            "e.g. '(ab)ab' for '(ab)\\1'"
        )
    for prefix, construct, instead in _UNSUPPORTED:
        if error.startswith(prefix.replace("\\\\", "\\")):
            return (
                f"{head}: {construct} is not supported (patterns run on RE2, in linear time, "
                f"so none can freeze the server); use {instead}"
            )
    return (
        f"{head}: {error}. It is an RE2 pattern (Python 're' syntax without back-references "
        "or look-arounds): escape special characters like '(' or '[' with a backslash"
    )


@dataclass(frozen=True)
class LinePattern:
    """A user's regex, compiled for line search, with the literals any match must contain."""

    source: str
    regex: Searcher
    literals: tuple[bytes, ...] | None
    tag_safe: bool
    line_start: Searcher | None = None
    plain: bool = False  # the pattern is one literal: a line holding it matches, no regex

    @classmethod
    def compile(cls, pattern: str, name: str = "grep") -> LinePattern:
        """Compile ``pattern`` with RE2 (MULTILINE, so ``^``/``$`` are line bounds). Raises
        InvalidRequest quoting the pattern and naming the parameter ``name`` when RE2 cannot
        run it (see :func:`describe_refusal`); on return ``literals``, ``tag_safe`` and
        ``line_start`` only ever narrow where the regex is run, never what it matches."""
        try:
            regex = compile_re2(pattern)
        except re2.error as exc:
            raise InvalidRequest(describe_refusal(pattern, name, _error_text(exc))) from None
        reading = _parse(pattern)
        return cls(
            pattern,
            regex,
            required_literals(reading),
            reading is not None and not _needs_line_start(reading.items),
            _line_start_form(pattern, reading),
            reading is not None
            and not reading.ignore_case
            and all(op is sre_constants.LITERAL for op, _ in reading.items),
        )

    def search_text(self, text: str) -> bool:
        """Whether the pattern matches somewhere in one line of text."""
        return self.regex.search(text.encode()) is not None

    def search_line(self, line: bytes) -> bool:
        """Whether the pattern matches somewhere in one stored line (bytes; invalid UTF-8
        reads as U+FFFD, as in the text an answer shows)."""
        if not line.isascii():
            line = line.decode("utf-8", errors="replace").encode()
        return self.regex.search(line) is not None


def _error_text(exc: re2.error) -> str:
    """RE2's message, quoting the pattern as the user typed it: RE2 quotes the pattern it
    compiled, which starts with the internal ``(?m)``."""
    detail = exc.args[0] if exc.args else ""
    text = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    return text.replace(": " + MULTILINE, ": ", 1)


def _line_start_form(pattern: str, reading: _Reading | None) -> Searcher | None:
    """For ``^rest`` (and nothing else looking behind): ``\\n<any tag>(?:rest)``, which finds
    line starts in the tagged text without stripping tags, several times faster."""
    if reading is None or not pattern.startswith("^") or "^" in pattern[1:]:
        return None  # another '^' may have been merged by the parser ('^a|^b' -> '^(a|b)')
    parsed = reading.items
    first_op, first_arg = parsed[0]
    if first_op is not sre_constants.AT or first_arg is not sre_constants.AT_BEGINNING:
        return None
    if _needs_line_start(parsed[1:]):
        return None
    try:
        return compile_re2(f"\\n[{ALL_TAGS}](?:{pattern[1:]})")
    except re2.error:
        return None


@dataclass(frozen=True)
class _Reading:
    items: list
    ignore_case: bool  # (?i) for the whole pattern


def _parse(pattern: str) -> _Reading | None:
    """The stdlib parser's reading of ``pattern`` (already accepted by RE2), or None where
    the two may read it differently or the stdlib cannot read it."""
    if any(text in pattern for text in _READ_DIFFERENTLY):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "possible nested set": not for stderr
            parsed = sre_parse.parse(pattern, re.MULTILINE)
    except Exception:  # a private parser, or RE2-only syntax: never let it break a search
        return None
    return _Reading(list(parsed), bool(parsed.state.flags & re.IGNORECASE))


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


def required_literals(reading: _Reading | None) -> tuple[bytes, ...] | None:
    """Literals of which every match contains at least one, or None when unknown.

    ``(123|456)789$`` gives ``123789``/``456789`` (rarer than ``789``), ``error|warn.*x``
    gives ``error``/``warn``; the most selective run of the pattern is kept. None for a
    pattern :func:`_parse` gave no reading of (case-insensitive ones included), or more
    than MAX_LITERALS alternatives. Raises nothing."""
    if reading is None or reading.ignore_case:
        return None
    parsed = reading.items
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
