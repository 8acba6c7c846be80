"""Masking secrets in the lines an agent reads (on by default; only the person's own
policy file can turn it off).

Layers, in order, each match replaced by ``[redacted:RULE]``:
1. the values (8 characters or more) of the run's environment variables whose names look
   secret (``SECRET_NAME``): ``echo $KEY`` and ``env`` dumps are caught whatever the
   value looks like; RULE is ``env:NAME``;
2. built-in token patterns (``BUILTIN_PATTERNS``: GitHub, AWS, Slack, OpenAI, Anthropic,
   Stripe, Google, JWTs, private-key blocks, ``Authorization: Bearer``, passwords in
   ``scheme://user:pass@``), run with RE2 so no line can make them slow;
3. the policy's own ``[redact] patterns``.

``Redactor.command`` masks a command line for the audit the same way, plus the value of
every ``NAME=value`` whose NAME looks secret.

Guarantees: it works on whole stored lines at answer time, so a secret the child wrote in
two pieces (two reads of the pipe) is one line here and is caught; the log on disk is
never changed. A private-key block is masked from its BEGIN line to its END line within
one answer (a body line read without its BEGIN line is masked only when it matches a
pattern). Cost: with no secret in the text, one substring test per secret value and one
RE2 scan of the joined lines (``has_any``), so an ordinary tail costs little more.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import re2

MIN_VALUE_CHARS = 8
SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|_KEY$|API_KEY|CREDENTIAL|PRIVATE|^DATABASE_URL$|_DSN$",
    re.IGNORECASE,
)
# (rule id, RE2 pattern). A pattern with a group masks only the group (the secret part).
BUILTIN_PATTERNS: tuple[tuple[str, str], ...] = (
    ("private-key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"),
    ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("aws-access-key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    ("slack-token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    ("anthropic-key", r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    ("stripe-key", r"\b[sr]k_live_[A-Za-z0-9]{16,}"),
    ("openai-key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("bearer", r"(?i)\bauthorization:\s*bearer\s+([A-Za-z0-9._~+/=-]{8,})"),
    ("url-password", r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@"),
)
_PEM_END = re2.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
# NAME=value in a shell line: the value quoted, or up to the next blank or operator.
_ASSIGNMENT = re.compile(r"""(?<![\w$])([A-Za-z_]\w*)=('[^']*'|"(?:[^"\\]|\\.)*"|[^\s;&|()<>]+)""")


def _compile(pattern: str) -> object:
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


@dataclass(frozen=True)
class _Rule:
    id: str
    regex: object  # a compiled RE2 pattern
    grouped: bool


_BUILTIN = tuple(_Rule(i, _compile(p), "(" in p.replace("(?", "")) for i, p in BUILTIN_PATTERNS)


class Redactor:
    """The masks for one run: its secret env values, the built-in patterns, the policy's.
    Build with :meth:`for_run`; :meth:`lines` masks a list of lines."""

    def __init__(self, values: list[tuple[str, str]], extra: Iterable[tuple[str, str]] = ()):
        self._values = sorted(values, key=lambda item: -len(item[1]))  # longest first
        extra_rules = tuple(_Rule(i, _compile(p), False) for i, p in extra)
        self._rules = _BUILTIN + extra_rules
        joined = "|".join(f"(?:{p})" for _, p in (*BUILTIN_PATTERNS, *extra))
        self._any = _compile(joined)

    @classmethod
    def for_run(
        cls, env: Mapping[str, str] | None, extra: Iterable[tuple[str, str]] = ()
    ) -> Redactor:
        values = [
            (name, value)
            for name, value in (env or {}).items()
            if len(value) >= MIN_VALUE_CHARS and SECRET_NAME.search(name)
        ]
        return cls(values, extra)

    def has_any(self, text: str) -> bool:
        """Whether ``text`` may hold something to mask (no false negatives)."""
        return any(value in text for _, value in self._values) or bool(self._any.search(text))

    def lines(self, lines: list[str]) -> tuple[list[str], int]:
        """``lines`` masked, and how many secrets were masked. One RE2 scan and one
        substring test per secret value over the joined lines find the lines to mask;
        only those are masked one by one."""
        if not lines:
            return lines, 0
        joined = "\n".join(lines)
        values = [item for item in self._values if item[1] in joined]
        hits = self._lines_with_matches(joined, lines) if self._any.search(joined) else set()
        if not values and not hits:
            return lines, 0
        masked, count, in_key = [], 0, False
        for index, line in enumerate(lines):
            if in_key:  # the block's body: counted once, with its BEGIN line
                masked.append("[redacted:private-key]")
                in_key = not _PEM_END.search(line)
                continue
            line, found = self._line(line, values, index in hits)
            count += found
            if "[redacted:private-key]" in line and not _PEM_END.search(line):
                in_key = True
            masked.append(line)
        return masked, count

    def _lines_with_matches(self, joined: str, lines: list[str]) -> set[int]:
        starts, offset = [], 0
        for line in lines:
            starts.append(offset)
            offset += len(line) + 1
        found = set()
        for match in self._any.finditer(joined):  # type: ignore[attr-defined]
            first = bisect.bisect_right(starts, match.start()) - 1
            last = bisect.bisect_right(starts, max(match.end() - 1, match.start())) - 1
            found.update(range(first, last + 1))
        return found

    def command(self, argv: list[str] | None = None, line: str | None = None) -> str:
        """A command as the audit keeps it (``argv``, or a shell ``line``): masked as
        output is, and the value of every ``NAME=value`` whose NAME looks secret
        (``env API_TOKEN=...``, ``DB_PASSWORD=... npm start``) masked too."""
        import shlex

        if argv is not None:
            words = [_masked_assignment(word) for word in argv]
            return self.line(shlex.join(words))[0]
        text = _ASSIGNMENT.sub(lambda m: _masked_assignment(m.group(0), m), line or "")
        return self.line(text)[0]

    def line(self, line: str) -> tuple[str, int]:
        """One line masked, and how many secrets were masked in it."""
        return self._line(line, self._values, bool(self._any.search(line)))

    def _line(self, line: str, values: list[tuple[str, str]], patterns: bool) -> tuple[str, int]:
        count = 0
        for name, value in values:
            if value in line:
                count += line.count(value)
                line = line.replace(value, f"[redacted:env:{name}]")
        if not patterns:
            return line, count
        for rule in self._rules:
            line, found = _mask(rule, line)
            count += found
        return line, count


def _masked_assignment(word: str, match: re.Match[str] | None = None) -> str:
    """``NAME=[redacted:env:NAME]`` for a ``NAME=value`` word whose NAME looks secret."""
    name, equals, value = word.partition("=")
    if match is not None:
        name, value = match.group(1), match.group(2)
    if not equals or not value or not name.isidentifier() or not SECRET_NAME.search(name):
        return word
    return f"{name}=[redacted:env:{name}]"


def _mask(rule: _Rule, line: str) -> tuple[str, int]:
    pieces, last, count = [], 0, 0
    for match in rule.regex.finditer(line):  # type: ignore[attr-defined]
        start, end = match.span(1) if rule.grouped and match.group(1) else match.span()
        if start < last or end <= start:
            continue
        pieces.append(line[last:start])
        pieces.append(f"[redacted:{rule.id}]")
        last = end
        count += 1
    if not count:
        return line, 0
    pieces.append(line[last:])
    return "".join(pieces), count
