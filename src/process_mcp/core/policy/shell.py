"""Every simple command a shell line would run, for the policy to check each one.

Best effort, used to *find* what is denied or asked, never to grant: a rule can only be
stricter for a shell line than for the same words as argv. The line is split on
``; | & && || |&``, newlines, ``( )`` subshells and ``{ }`` groups; the insides of
``$( )``, backticks, ``<( )`` and ``>( )`` (in or out of double quotes) are split the same
way, recursively; quotes and backslashes are removed as the shell would (``"sudo"`` is
``sudo``); comments are dropped; redirections and their targets are not arguments;
reserved words (``if then do ! time -p coproc``, ``function NAME``...) and leading
``NAME=value`` assignments are not the program. A word holding an expansion the shell
makes at run time keeps a ``$`` in it, so the evaluator can tell that the program is not
known in advance. ``words(line)`` is every word of a line, redirection targets and
here-strings included (what a shell reading its input may be fed); ``brace_expand`` is
bash's ``{a,b}`` and ``{a..b}`` expansion of a word.
"""

from __future__ import annotations

import itertools
import shlex

SUBSTITUTION = "$(...)"  # stands for a substitution's output inside a word
_RESERVED = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in"}
    | {"case", "esac", "!", "{", "}", "function", "select", "time", "coproc"}
)
_NAMED = frozenset({"function", "coproc"})  # followed by a name before the command
_MAX_DEPTH = 16


class ShellSyntax(ValueError):
    """The line cannot be split (an unclosed quote or substitution): refuse, never guess."""


def simple_commands(line: str, depth: int = 0) -> list[list[str]]:
    """The simple commands of ``line``, each as its words (see the module docstring).
    Raises :class:`ShellSyntax` for a line a shell would reject as incomplete."""
    if depth > _MAX_DEPTH:
        raise ShellSyntax("substitutions nested too deep")
    flat, inner = _lift_substitutions(line)
    commands = []
    for text in inner:
        commands.extend(simple_commands(text, depth + 1))
    return _split_flat(flat) + commands


def _lift_substitutions(line: str) -> tuple[str, list[str]]:
    """``line`` with every substitution replaced by ``SUBSTITUTION`` (quoted, so it stays
    one word's part), comments dropped and unquoted newlines made ``;``; and the insides."""
    out: list[str] = []
    inner: list[str] = []
    quote = ""
    i, n = 0, len(line)
    while i < n:
        char = line[i]
        if quote == "'":
            out.append(char)
            quote = "" if char == "'" else quote
            i += 1
            continue
        if char == "\\" and i + 1 < n:
            if line[i + 1] == "\n":  # a continued line
                i += 2
                continue
            out.append(line[i : i + 2])
            i += 2
            continue
        two = line[i : i + 2]
        if (two == "$(" and line[i : i + 3] != "$((") or (not quote and two in ("<(", ">(")):
            end = _closing_paren(line, i + 2)
            inner.append(line[i + 2 : end])
            out.append(f"'{SUBSTITUTION}'" if not quote else SUBSTITUTION)
            i = end + 1
            continue
        if char == "`":
            end = line.find("`", i + 1)
            if end < 0:
                raise ShellSyntax("unclosed backtick")
            inner.append(line[i + 1 : end].replace("\\`", "`"))
            out.append(f"'{SUBSTITUTION}'" if not quote else SUBSTITUTION)
            i = end + 1
            continue
        if quote == '"':
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (not out or out[-1][-1:] in " \t\n;&|()"):
            end = line.find("\n", i)
            i = n if end < 0 else end
            continue
        elif char == "\n":
            char = ";"
        out.append(char)
        i += 1
    if quote:
        raise ShellSyntax(f"unclosed {quote} quote")
    return "".join(out), inner


def _closing_paren(line: str, start: int) -> int:
    """The index of the ``)`` closing a substitution whose inside starts at ``start``."""
    depth, quote, i = 1, "", start
    while i < len(line):
        char = line[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                quote = ""
        elif char == "\\":
            i += 1
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellSyntax("unclosed $( or <( substitution")


def _split_flat(flat: str) -> list[list[str]]:
    lexer = shlex.shlex(flat, posix=True, punctuation_chars=";&|()<>")
    lexer.commenters = ""
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise ShellSyntax(str(exc)) from None
    commands: list[list[str]] = []
    words: list[str] = []
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
            continue
        if token and set(token) <= set(";&|()<>"):
            if "<" in token or ">" in token:  # a redirection: its target is no argument
                if words and words[-1].isdigit():
                    words.pop()  # the fd of 2>file
                skip_next = not token.endswith("(")
                continue
            commands.append(words)
            words = []
            continue
        words.append(token)
    commands.append(words)
    return [program_first(words) for words in commands if program_first(words)]


def program_first(words: list[str]) -> list[str]:
    """``words`` without leading reserved words (with ``time``'s options and the NAME of
    ``function NAME`` / ``coproc NAME {``) and ``NAME=value`` assignments."""
    start = 0
    while start < len(words) and (words[start] in _RESERVED or _assignment(words[start])):
        word = words[start]
        start += 1
        if word == "time":
            while start < len(words) and words[start].startswith("-"):
                start += 1
        elif word in _NAMED and start < len(words):
            named = word == "function" or words[start + 1 : start + 2] in (["{"], ["("])
            start += 1 if named and words[start] not in _RESERVED else 0
    return words[start:]


def words(line: str) -> list[str]:
    """Every word of ``line`` (quotes removed), the targets of redirections and the
    insides of substitutions included; ``[]`` when the line cannot be split."""
    try:
        flat, inner = _lift_substitutions(line)
    except ShellSyntax:
        return []
    lexer = shlex.shlex(flat, posix=True, punctuation_chars=";&|()<>")
    lexer.commenters = ""
    lexer.whitespace_split = True
    try:
        found = [token for token in lexer if token and not set(token) <= set(";&|()<>")]
    except ValueError:
        return []
    for text in inner:
        found.extend(words(text))
    return found


_MAX_EXPANSIONS = 256


def brace_expand(word: str) -> list[str]:
    """``word`` as bash expands its braces (``su{do,}`` → ``sudo su``, ``{s..s}udo`` →
    ``sudo``), at most ``_MAX_EXPANSIONS`` words; ``[word]`` when it has none."""
    found = _braces(word)
    return found[:_MAX_EXPANSIONS] if found else [word]


def _braces(word: str) -> list[str]:
    for start, char in enumerate(word):
        if char != "{" or (start and word[start - 1] == "$"):
            continue
        depth, commas = 0, []
        for end in range(start, len(word)):
            if word[end] == "{":
                depth += 1
            elif word[end] == "}":
                depth -= 1
                if depth == 0:
                    break
            elif word[end] == "," and depth == 1:
                commas.append(end)
        else:
            return []
        body, head, tail = word[start + 1 : end], word[:start], word[end + 1 :]
        if commas:
            cuts = [start, *commas, end]
            choices = [word[a + 1 : b] for a, b in itertools.pairwise(cuts)]
        else:
            choices = _sequence(body)
            if choices is None:
                continue
        out: list[str] = []
        for choice in choices:
            for expanded in _braces(head + choice + tail) or [head + choice + tail]:
                out.append(expanded)
                if len(out) >= _MAX_EXPANSIONS:
                    return out
        return out
    return []


def _sequence(body: str) -> list[str] | None:
    """The words of ``{a..e}`` / ``{1..5}`` (a step, ``..2``, allowed), or None."""
    parts = body.split("..")
    if len(parts) not in (2, 3):
        return None
    first, last = parts[0], parts[1]
    step = abs(int(parts[2])) if len(parts) == 3 and parts[2].lstrip("-").isdigit() else 1
    step = step or 1
    if all(p.lstrip("-").isdigit() for p in (first, last)):
        a, b = int(first), int(last)
        numbers = range(a, b + 1, step) if a <= b else range(a, b - 1, -step)
        return [str(n) for n in numbers[:_MAX_EXPANSIONS]]
    if len(first) == 1 == len(last) and first.isalpha() and last.isalpha():
        a, b = ord(first), ord(last)
        codes = range(a, b + 1, step) if a <= b else range(a, b - 1, -step)
        return [chr(code) for code in codes]
    return None


def _assignment(word: str) -> bool:
    name, equals, _ = word.partition("=")
    return bool(equals) and name.isidentifier()


def join(argv: list[str] | tuple[str, ...]) -> str:
    """``argv`` as one line a person can read (and a shell would split back)."""
    return shlex.join(argv)
