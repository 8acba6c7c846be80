"""The supervisor's wire format: one JSON object per line, over a Unix stream socket.

Framing is newline-only: a message is UTF-8 JSON followed by ``b"\\n"``. :func:`encode`
writes ASCII-only JSON (``ensure_ascii``), where every control character inside a string is
escaped, so no newline byte can occur inside a message; a reader therefore splits on
``b"\\n"`` and nothing else, whatever sizes the reads come in.

A line longer than ``max_bytes`` (newline excluded) is never buffered whole: the reader
skips it up to its newline and reports :class:`Oversize`, so the stream stays in sync and
memory stays bounded by about twice the limit.

The messages themselves are in :mod:`~process_mcp.supervisor.protocol.envelope`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import asyncio

PROTOCOL_VERSION = 2  # 2: typed ops, snake_case throughout, checked at decode
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_ID_HEAD = re.compile(rb'^\{"id":(\d{1,18})[,}]')


class CodedError(Exception):
    """An error the wire carries as ``{code, message}``: ``code`` is stable (what a program
    tests), ``message`` says why (what a person reads; also the exception's text)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ProtocolError(CodedError):
    """A message that cannot be sent or understood; ``code`` is stable, ``message`` says why."""


class MessageTooLarge(ProtocolError):
    def __init__(self, size: int, limit: int, what: str = "message") -> None:
        super().__init__(
            "message_too_large",
            f"{what} of {size} bytes exceeds the supervisor's {limit}-byte message limit; "
            "ask for less at once (page with offset/limit, or a smaller tail)",
        )
        self.size = size
        self.limit = limit


class RequestError(CodedError):
    """Raised by a handler to answer a request with ``{"error": {code, message}}`` (not a
    :class:`ProtocolError`: the request was understood, and refused)."""


class Oversize(NamedTuple):
    """A line over the limit, already skipped; ``id`` when its head shows a request id."""

    size: int
    id: int | None


def encode(message: dict[str, Any], max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """One wire line. Raises :class:`MessageTooLarge` (nothing sent) over ``max_bytes`` and
    :class:`ProtocolError` for values JSON cannot carry (NaN, non-JSON types)."""
    try:
        data = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise ProtocolError("bad_message", f"message cannot be encoded as JSON: {exc}") from None
    if len(data) > max_bytes:
        raise MessageTooLarge(len(data), max_bytes)
    return data + b"\n"


async def read_line(reader: asyncio.StreamReader, max_bytes: int) -> bytes | Oversize | None:
    """The next line without its newline, :class:`Oversize` for a skipped long line, or
    ``None`` at end of stream (a trailing partial line is dropped: its sender is gone).

    ``reader`` must have been made with ``limit=max_bytes`` (``open_unix_connection`` /
    ``start_unix_server`` take ``limit``), which is what bounds the buffer.
    """
    import asyncio  # here, not at the top: the person's CLI encodes and decodes without it

    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        head = await reader.read(exc.consumed)
        size = len(head)
        while True:
            try:
                size += len(await reader.readuntil(b"\n")) - 1
                break
            except asyncio.LimitOverrunError as more:
                size += len(await reader.read(more.consumed))
            except asyncio.IncompleteReadError:
                return None
        match = _ID_HEAD.match(head)
        return Oversize(size, int(match.group(1)) if match else None)
    if len(line) - 1 > max_bytes:  # a reader made with a larger limit than ours
        match = _ID_HEAD.match(line)
        return Oversize(len(line) - 1, int(match.group(1)) if match else None)
    return line[:-1]
