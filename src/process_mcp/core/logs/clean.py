"""Turning stored bytes into text an agent can read: ANSI escapes removed, carriage-return
progress collapsed to its final state, invalid UTF-8 replaced, tags stripped.

Everything works on whole blocks of tagged lines (``<tag><text>\\n``...) with C-level
``re``/``bytes``/``str`` calls, so cleaning a 1 MiB block costs about as much as copying it.
"""

from __future__ import annotations

import re

from process_mcp.core.logs.format import STDOUT_TAG

# CSI (colours, cursor moves), the string controls OSC/DCS/SOS/PM/APC (titles, hyperlinks,
# clipboard writes; ended by BEL or ST, else at the next ESC or newline), and the other
# escapes: nF with intermediates (ESC ( 0 line drawing, ESC # 8 screen fill), Fp (ESC 7),
# Fe, Fs (ESC c, a reset). C1 CSI and string controls are matched in their UTF-8 form
# (U+009B is b"\xc2\x9b"); a lone 0x9b byte is left alone: it is also a UTF-8
# continuation byte ("ě"), and decodes to U+FFFD otherwise. None of them may cross a
# newline, so line numbering is unaffected.
_ANSI = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]"
    rb"|\xc2\x9b[0-?]*[ -/]*[@-~]"
    rb"|(?:\x1b[\]PX^_]|\xc2[\x90\x98\x9d\x9e\x9f])"
    rb"(?:[^\x07\x1b\n\xc2]|\xc2(?!\x9c))*(?:\x07|\x1b\\|\xc2\x9c)?"
    rb"|\x1b[ -/]*[0-~]"
)
_C1_INTRODUCERS = (b"\xc2\x9b", b"\xc2\x9d", b"\xc2\x90", b"\xc2\x98", b"\xc2\x9e", b"\xc2\x9f")
# A stored line (tag kept in group 1) that contains a carriage return.
_CR_LINE = re.compile(rb"(?m)^(.)([^\n]*\r[^\n]*)$")
_TAGS = re.compile(r"\n[^\n]")
_TAGS_BYTES = re.compile(rb"\n[^\n]")
_STDOUT_LINE_START = "\n" + STDOUT_TAG.decode()


def _final_state(match: re.Match[bytes]) -> bytes:
    """What a terminal shows last for ``10%\\r50%\\r100%``: the last non-empty update.
    A trailing ``\\r`` (CRLF output) leaves the text before it."""
    parts = [part for part in match.group(2).split(b"\r") if part]
    return match.group(1) + (parts[-1] if parts else b"")


def clean_block(block: bytes) -> bytes:
    """Strip ANSI escapes and collapse ``\\r`` updates in a block of tagged lines. On
    return the block holds as many lines, with the same tags, in the same order (nothing
    removed crosses a newline). Pure; raises nothing."""
    if b"\x1b" in block or (b"\xc2" in block and any(c in block for c in _C1_INTRODUCERS)):
        block = _ANSI.sub(b"", block)
    if b"\r" in block:
        block = _CR_LINE.sub(_final_state, block)
    return block


def decode_tagged(block: bytes) -> str:
    """The block as text, with a leading newline so that every line, the first included,
    reads ``\\n<tag><text>``. Invalid UTF-8 becomes U+FFFD, never an error."""
    return "\n" + block.decode("utf-8", errors="replace")


def strip_tags(tagged: str, mixed: bool = True) -> str:
    """Remove the one-character tag after each newline (keeps the leading newline). Pure;
    raises nothing.

    A block known to hold stdout lines only (``mixed`` false) takes one ``str.replace``;
    replacing tag by tag would be wrong for mixed blocks (a stdout line whose text starts
    with ``e`` would lose that letter), so those take one regex pass."""
    if not mixed:
        return tagged.replace(_STDOUT_LINE_START, "\n")
    return _TAGS.sub("\n", tagged)


def strip_tags_bytes(tagged: bytes, mixed: bool = True) -> bytes:
    """:func:`strip_tags` for a block kept as bytes (what RE2 searches)."""
    if not mixed:
        return tagged.replace(b"\n" + STDOUT_TAG, b"\n")
    return _TAGS_BYTES.sub(b"\n", tagged)
