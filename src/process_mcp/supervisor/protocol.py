"""The supervisor's wire format: one JSON object per line, over a Unix stream socket.

Framing is newline-only: a message is UTF-8 JSON followed by ``b"\\n"``. :func:`encode`
writes ASCII-only JSON (``ensure_ascii``), where every control character inside a string is
escaped, so no newline byte can occur inside a message; a reader therefore splits on
``b"\\n"`` and nothing else, whatever sizes the reads come in.

A line longer than ``max_bytes`` (newline excluded) is never buffered whole: the reader
skips it up to its newline and reports :class:`Oversize`, so the stream stays in sync and
memory stays bounded by about twice the limit.

Messages, told apart by their keys (examples)::

    client → {"hello": {"protocol": 1, "version": "0.1.0", "kind": "mcp-stdio", "pid": 42,
                        "replace_if_idle": true}}
    server → {"welcome": {"protocol": 1, "version": "0.1.0", "pid": 7, "session": "s3",
                          "max_message_bytes": 8388608}}
    server → {"refused": {"code": "version_mismatch", "message": "...", "protocol": 1,
                          "version": "0.2.0", "pid": 7, "retiring": false}}
    client → {"id": 5, "op": "wait", "args": {"id": "web"}}
    client → {"cancel": 5}
    server → {"id": 5, "ok": {"status": "exited"}}
    server → {"id": 6, "error": {"code": "not_found", "message": "no process 'x'"}}
    server → {"event": "exited", "seq": 12, "data": {"id": "web"}}

Requests are multiplexed: answers come in completion order, matched by ``id``; events are
pushed between them, numbered by a per-connection ``seq`` starting at 1. Messages are
``NamedTuple`` classes (cheap to define: the supervisor's start-up is paid on an agent's
first call).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import asyncio

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_ID_HEAD = re.compile(rb'^\{"id":(\d{1,18})[,}]')


class ProtocolError(Exception):
    """A message that cannot be sent or understood; ``code`` is stable, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MessageTooLarge(ProtocolError):
    def __init__(self, size: int, limit: int, what: str = "message") -> None:
        super().__init__(
            "message_too_large",
            f"{what} of {size} bytes exceeds the supervisor's {limit}-byte message limit; "
            "ask for less at once (page with offset/limit, or a smaller tail)",
        )
        self.size = size
        self.limit = limit


class RequestError(Exception):
    """Raised by a handler to answer a request with ``{"error": {code, message}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Hello(NamedTuple):
    version: str
    kind: str
    pid: int
    protocol: int = PROTOCOL_VERSION
    replace_if_idle: bool = False


class Welcome(NamedTuple):
    version: str
    pid: int
    session: str
    max_message_bytes: int
    protocol: int = PROTOCOL_VERSION


class Refused(NamedTuple):
    code: str
    message: str
    version: str | None = None
    pid: int | None = None
    protocol: int | None = None
    retiring: bool = False


class Request(NamedTuple):
    id: int
    op: str
    args: dict[str, Any]


class Cancel(NamedTuple):
    id: int


class ErrorInfo(NamedTuple):
    code: str
    message: str


class Response(NamedTuple):
    id: int | None
    ok: Any = None
    error: ErrorInfo | None = None


class Event(NamedTuple):
    event: str
    seq: int
    data: dict[str, Any]


Message = Hello | Welcome | Refused | Request | Cancel | Response | Event


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


def to_wire(message: Message) -> dict[str, Any]:
    """The JSON object for a message (``id`` first, so an oversize request's head names it)."""
    match message:
        case Request(id=id_, op=op, args=args):
            return {"id": id_, "op": op, "args": args}
        case Response(id=id_, error=None, ok=ok):
            return {"id": id_, "ok": ok}
        case Response(id=id_, error=ErrorInfo(code=code, message=text)):
            return {"id": id_, "error": {"code": code, "message": text}}
        case Event(event=name, seq=seq, data=data):
            return {"event": name, "seq": seq, "data": data}
        case Cancel(id=id_):
            return {"cancel": id_}
        case Hello() | Welcome() | Refused():
            key = type(message).__name__.lower()
            return {key: message._asdict()}
    raise TypeError(f"not a protocol message: {message!r}")


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("bad_message", f"{what} must be an integer, got {value!r}")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError("bad_message", f"{what} must be a string, got {value!r}")
    return value


def _fields(cls: type, body: Any, key: str) -> Any:
    if not isinstance(body, dict):
        raise ProtocolError("bad_message", f"'{key}' must be an object, got {body!r}")
    known = cls._fields  # type: ignore[attr-defined]
    try:
        return cls(**{k: v for k, v in body.items() if k in known})
    except TypeError as exc:
        raise ProtocolError("bad_message", f"bad '{key}': {exc}") from None


def decode(line: bytes) -> Message:
    """Parse one line (newline optional). Unknown extra keys inside hello/welcome/refused
    are ignored, so a later minor revision may add fields without breaking older peers."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_message", f"not a JSON line: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_message", f"a message must be a JSON object, got {obj!r:.80}")
    if "op" in obj:
        args = obj.get("args", {})
        if not isinstance(args, dict):
            raise ProtocolError("bad_message", f"'args' must be an object, got {args!r:.80}")
        return Request(_int(obj.get("id"), "request 'id'"), _str(obj["op"], "'op'"), args)
    if "event" in obj:
        data = obj.get("data", {})
        if not isinstance(data, dict):
            raise ProtocolError("bad_message", f"event 'data' must be an object: {data!r:.80}")
        return Event(_str(obj["event"], "'event'"), _int(obj.get("seq"), "'seq'"), data)
    if "error" in obj and "id" in obj:
        error = obj["error"]
        if not isinstance(error, dict):
            raise ProtocolError("bad_message", f"'error' must be an object: {error!r:.80}")
        id_ = None if obj["id"] is None else _int(obj["id"], "response 'id'")
        info = ErrorInfo(str(error.get("code", "error")), str(error.get("message", "")))
        return Response(id_, error=info)
    if "ok" in obj and "id" in obj:
        return Response(_int(obj["id"], "response 'id'"), ok=obj["ok"])
    if "cancel" in obj:
        return Cancel(_int(obj["cancel"], "'cancel'"))
    if "hello" in obj:
        hello: Hello = _fields(Hello, obj["hello"], "hello")
        _str(hello.version, "hello 'version'")
        _str(hello.kind, "hello 'kind'")
        _int(hello.pid, "hello 'pid'")
        _int(hello.protocol, "hello 'protocol'")
        return hello
    for key, cls in (("welcome", Welcome), ("refused", Refused)):
        if key in obj:
            return _fields(cls, obj[key], key)
    raise ProtocolError("bad_message", f"unknown message kind with keys {sorted(obj)[:8]}")


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
