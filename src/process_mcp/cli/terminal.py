"""The one filter between what agents control and the person's terminal.

Every command, argument, folder, label, error message and log line the person's commands
print was written by someone else: an agent, or a program an agent ran. A terminal obeys
the control characters in it: ``ESC ] 2 ; … ESC \\`` sets its title, ``ESC [ 2 J`` wipes
the screen, OSC 52 writes the clipboard, ``ESC ( 0`` turns letters into line drawing, and
U+202E (right-to-left override) or U+200B (zero width space) make a command read as
another one. So:

* :func:`visible` shows every control and format character (Unicode categories Cc, Cf,
  plus the line and paragraph separators and lone surrogates) as an escape a person can
  read (``\\x1b``, ``\\u202e``): nothing in a record cell reaches the terminal as a
  control. Every table cell, ``top`` row and message goes through it.
* :func:`log_line` is the same for a log line, after removing escape sequences (7-bit and
  C1 CSI, OSC and the other string controls, nF/Fp/Fs escapes such as ``ESC ( 0``,
  ``ESC # 8`` and ``ESC c``), keeping SGR colours only when asked (a terminal). ``logs
  --raw`` bypasses it on purpose.

Pure functions, no imports beyond the standard library: ``ps`` must stay quick.
"""

from __future__ import annotations

import re
import unicodedata

HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
"""What a terminal may obey or draw as nothing: controls, format (bidi, zero width),
line/paragraph separators, surrogates (undecodable bytes kept by ``surrogateescape``)."""

_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}

# Escape sequences, as text (a log line decoded from UTF-8: a C1 control is one code point).
_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase
    r"|\x9b[0-?]*[ -/]*[@-~]"  # C1 CSI
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # strings
    r"|\x1b[ -/]*[0-~]"  # nF (ESC ( 0, ESC # 8), Fp (ESC 7), Fe, Fs (ESC c)
)
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
SGR_RESET = "\x1b[0m"


def escape_char(char: str) -> str:
    """``char`` as a person can read it: ``\\t``, ``\\x1b``, ``\\u202e``, ``\\U000e0001``."""
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def hidden(char: str) -> bool:
    """Whether a terminal could obey ``char`` or draw it as nothing."""
    return unicodedata.category(char) in HIDDEN_CATEGORIES


def visible(text: str, keep: str = "") -> str:
    """``text`` with every hidden character (:func:`hidden`) but those in ``keep`` shown as
    an escape. Printable text is returned as it is (one C-level check). Pure."""
    if text.isprintable():
        return text
    return "".join(
        escape_char(char) if char not in keep and not char.isprintable() and hidden(char) else char
        for char in text
    )


def log_line(text: str, colours: bool = False) -> str:
    """A log line fit for a terminal: escape sequences removed (SGR colours kept when
    ``colours``), carriage-return updates collapsed to their final state, then every
    hidden character but tab shown as an escape (:func:`visible`). Pure."""
    if "\x1b" in text or not text.isprintable():
        text = _SEQUENCE.sub(_keep_sgr if colours else "", text)
        if "\r" in text:
            parts = [part for part in text.split("\r") if part]
            text = parts[-1] if parts else ""
        if colours and "\x1b" in text:
            pieces = _SGR.split(text)
            sgrs = _SGR.findall(text)
            shown = [visible(piece, keep="\t") for piece in pieces]
            return "".join(p + s for p, s in zip(shown, [*sgrs, ""], strict=True))
    return visible(text, keep="\t")


def _keep_sgr(match: re.Match[str]) -> str:
    sequence = match.group(0)
    return sequence if _SGR.fullmatch(sequence) else ""
