"""Every cap on what a client may ask, in one place.

Each limit bounds what one request can make the server hold or do, so that no client,
careless or hostile, can freeze it or grow its memory without bound. The tool schemas and
descriptions quote these constants; the core checks them again (in bytes where the schema
can only count characters), so any front-end gets the same limits. Every refusal names the
parameter, its size and the limit, and never echoes the oversized value itself.
"""

from __future__ import annotations

import unicodedata

from process_mcp.core.errors import InvalidRequest

KIB = 1024
MIB = 1024 * KIB

MAX_COMMAND_BYTES = 64 * KIB
"""``command``: a program name or one shell line."""
MAX_ARGS = 4096
"""``args`` items: every later ``list`` answer carries them."""
MAX_ARGS_BYTES = 1 * MIB
"""``args`` in all (UTF-8 bytes)."""
MAX_ENV_BYTES = 1 * MIB
"""``env`` in all: each ``NAME=value`` in UTF-8, plus one byte."""
MAX_LABEL_CHARS = 200
"""``label``: a name shown in every ``list``."""
MAX_PROCESSES = 10_000
"""Processes running at once (ended ones leave memory for the history: core/retention.py)."""
MAX_SESSION_PROCESSES = 2_500
"""Processes one supervisor session may have running at once: no session can use up
``MAX_PROCESSES`` and lock the others out."""
MAX_ANSWER_BYTES = 1 * MIB
"""``get-log`` ``maxBytes``: the largest answer one call can ask for."""
MAX_SUBSCRIPTIONS = 1000
"""``resources/subscribe`` per client session."""
MAX_PATTERN_CHARS = 4096
"""``grep`` and ``wait`` patterns."""
QUOTE_CHARS = 200
"""An error quotes at most this many characters of a value it refuses."""


def quote(value: str, most: int = QUOTE_CHARS) -> str:
    """``repr(value)``, cut to ``most`` characters with a note of the rest: an error about
    a huge value must not be huge itself. Pure."""
    if len(value) <= most:
        return repr(value)
    return f"{value[:most]!r}... ({len(value)} characters)"


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def check_start(command: str, args: list[str], env: dict[str, str] | None) -> None:
    """Raise InvalidRequest, naming the parameter, its size and the limit, when a ``start``
    request exceeds a size cap (the label is checked by ``StartOptions.check``; NUL bytes
    and bad variable names by ``spawn/launch.py``). Pure."""
    size = _utf8_size(command)
    if size > MAX_COMMAND_BYTES:
        raise InvalidRequest(
            f"'command' is {size} bytes, more than the limit of {MAX_COMMAND_BYTES}; run a "
            "script file instead of a huge command line"
        )
    if len(args) > MAX_ARGS:
        raise InvalidRequest(
            f"'args' has {len(args)} items, more than the limit of {MAX_ARGS}; pass them in "
            "a file (or through 'send-input') instead, or split the work"
        )
    total = sum(_utf8_size(arg) for arg in args)
    if total > MAX_ARGS_BYTES:
        raise InvalidRequest(
            f"'args' are {total} bytes in all, more than the limit of {MAX_ARGS_BYTES}; pass "
            "big data through a file or 'send-input' instead"
        )
    total = sum(_utf8_size(name) + _utf8_size(value) + 2 for name, value in (env or {}).items())
    if total > MAX_ENV_BYTES:
        raise InvalidRequest(
            f"'env' is {total} bytes in all, more than the limit of {MAX_ENV_BYTES}; pass "
            "big data through a file instead"
        )


LABEL_REFUSED_CATEGORIES = {
    "Cc": "control character",
    "Cf": "format character",  # bidi overrides (U+202E), zero width (U+200B): spoofing
    "Zl": "line separator",
    "Zp": "paragraph separator",
    "Cs": "surrogate",
}


def check_label(label: str) -> None:
    """Raise InvalidRequest when ``label`` is blank, longer than ``MAX_LABEL_CHARS`` or
    holds a control, format or separator character (it is shown in every ``list``, often
    in a terminal, where U+202E or U+200B would make it read as another one): the error
    names the character and its position. Pure."""
    if len(label) > MAX_LABEL_CHARS:
        raise InvalidRequest(
            f"label is {len(label)} characters, more than the limit of {MAX_LABEL_CHARS}"
        )
    if not label.strip():
        raise InvalidRequest("label must not be blank; leave it out for no label")
    if label.isprintable():
        return
    for position, char in enumerate(label, start=1):
        kind = LABEL_REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind is not None:
            name = unicodedata.name(char, "")
            raise InvalidRequest(
                f"label {quote(label)} contains the {kind} U+{ord(char):04X}"
                f"{f' ({name})' if name else ''} at character {position}; use printable "
                "characters only"
            )
