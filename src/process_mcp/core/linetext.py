"""Turning a stored log line into text a model can read.

Terminal output is full of colour codes and carriage-return progress updates that waste
context and break regular expressions (``\\x1b[32mready\\x1b[0m`` does not match
``^ready``). Waits match against, and resources show, the cleaned text.
"""

from __future__ import annotations

import re

# CSI (colours, cursor moves), OSC (titles, hyperlinks; ended by BEL or ST), and the
# remaining two-byte escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def clean_text(data: bytes) -> str:
    """Decode (invalid UTF-8 replaced), keep the final state of ``\\r`` updates, drop escapes."""
    text = data.decode("utf-8", errors="replace")
    if "\r" in text:
        parts = [part for part in text.split("\r") if part]
        text = parts[-1] if parts else ""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return text
