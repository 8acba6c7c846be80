"""A user's regular expression, compiled for searching stored lines.

Besides the compiled regex, :meth:`LinePattern.compile` works out what lets ``search`` skip
most of a block: the literals every match must contain (``error``, ``(123|456)789$`` needs
``123789`` or ``456789``), whether the pattern may run over text that still holds the
one-byte line tags (it never looks behind a position), and for ``^rest`` a form that finds
line starts in the tagged text directly. Anything the analysis cannot vouch for falls back
to the plain search, so it only ever makes a search faster, never different.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from process_mcp.core.errors import InvalidRequest
from process_mcp.core.logs.format import ALL_TAGS

try:  # the stdlib's own regex parser, to find literals a match requires
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python < 3.11 layout
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

MAX_LITERALS = 16  # more alternatives than this: no prefilter


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
        """Compile ``pattern`` (MULTILINE, so ``^``/``$`` are line bounds). Raises
        InvalidRequest quoting the pattern and naming the parameter ``name`` when it does
        not compile; on return ``literals``, ``tag_safe`` and ``line_start`` only ever
        narrow where the regex is run, never what it matches."""
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
    """For ``^rest`` (and nothing else looking behind): ``\\n<any tag>(?:rest)``, which finds
    line starts in the tagged text without stripping tags, several times faster."""
    if parsed is None or not pattern.startswith("^") or "^" in pattern[1:]:
        return None  # another '^' may have been merged by the parser ('^a|^b' -> '^(a|b)')
    first_op, first_arg = parsed[0]
    if first_op is not sre_constants.AT or first_arg is not sre_constants.AT_BEGINNING:
        return None
    if _needs_line_start(parsed[1:]):
        return None
    try:
        return re.compile(f"\\n[{ALL_TAGS}](?:{pattern[1:]})", re.MULTILINE)
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
    gives ``error``/``warn``; the most selective run of the pattern is kept. None for a
    case-insensitive pattern, one the parser could not read, or more than MAX_LITERALS
    alternatives. Raises nothing."""
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
