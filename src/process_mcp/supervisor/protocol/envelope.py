"""The envelope: what every line on the supervisor socket is, told apart by its keys.

Examples (one JSON object per line; snake_case keys throughout)::

    client → {"hello": {"protocol": 2, "version": "0.1.0", "kind": "mcp-stdio", "pid": 42,
                        "replace_if_idle": true}}
    server → {"welcome": {"protocol": 2, "version": "0.1.0", "pid": 7, "session": "s3",
                          "max_message_bytes": 8388608}}
    server → {"refused": {"code": "version_mismatch", "message": "...", "protocol": 2,
                          "version": "0.2.0", "pid": 7, "retiring": false}}
    client → {"id": 5, "op": "wait", "args": {"id": "web", "timeout": 30}}
    client → {"cancel": 5}
    server → {"id": 5, "ok": {"record": {...}, "rev": 9, "met": true, ...}}
    server → {"id": 6, "error": {"code": "UnknownProcess", "message": "no process 'x'"}}
    server → {"event": "exited", "seq": 12, "data": {"record": {...}, "rev": 10}}

Requests are multiplexed: answers come in completion order, matched by ``id``; events are
pushed between them, numbered by a per-connection ``seq`` starting at 1. What ``args``,
``ok`` and ``data`` hold per op and event is typed in :mod:`.ops` and :mod:`.events`.

**The handshake is read by every version.** ``hello`` and ``refused`` keep the keys of
protocol 1 (all of them; ``replace_if_idle`` among them), and unknown keys inside
``hello``/``welcome``/``refused`` are ignored, so an idle supervisor of an older protocol
still understands a newer front-end's hello and steps down for it, and an older front-end
still reads a newer supervisor's refusal. Every other message is same-version only (the
handshake made sure of it) and decoded strictly: an unknown key is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from process_mcp.supervisor.protocol.codec import decode_object, encode_value
from process_mcp.supervisor.protocol.framing import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    encode,
)


@dataclass(frozen=True)
class Hello:
    version: str
    kind: str
    pid: int
    protocol: int = PROTOCOL_VERSION
    replace_if_idle: bool = False


@dataclass(frozen=True)
class Welcome:
    version: str
    pid: int
    session: str
    max_message_bytes: int
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Refused:
    code: str
    message: str
    version: str | None = None
    pid: int | None = None
    protocol: int | None = None
    retiring: bool = False


@dataclass(frozen=True)
class Request:
    id: int
    op: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Cancel:
    id: int


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str


@dataclass(frozen=True)
class Response:
    id: int | None
    ok: Any = None
    error: ErrorInfo | None = None


@dataclass(frozen=True)
class Event:
    event: str
    seq: int
    data: dict[str, Any]


Message = Hello | Welcome | Refused | Request | Cancel | Response | Event
_HANDSHAKE: dict[str, type[Hello] | type[Welcome] | type[Refused]] = {
    "hello": Hello,
    "welcome": Welcome,
    "refused": Refused,
}


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
            return {type(message).__name__.lower(): encode_value(message)}
    raise TypeError(f"not a protocol message: {message!r}")


def wire_line(message: Message, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """A message as the line that carries it (:func:`to_wire`, then ``framing.encode``);
    the one way every sender writes one. Raises as ``encode``: ``MessageTooLarge``
    (nothing to send) over ``max_bytes``, ``ProtocolError`` for what JSON cannot carry."""
    return encode(to_wire(message), max_bytes)


def decode(line: bytes) -> Message:
    """Parse one line (newline optional) into its message; raises ProtocolError
    (``bad_message`` for what is not a message, ``bad_request`` for a bad field)."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_message", f"not a JSON line: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_message", f"a message must be a JSON object, got {obj!r:.80}")
    for key, cls in _HANDSHAKE.items():
        if key in obj and len(obj) == 1:
            body = obj[key]
            if not isinstance(body, dict):
                raise ProtocolError("bad_message", f"'{key}' must be an object, got {body!r:.80}")
            known = {k: v for k, v in body.items() if k in cls.__dataclass_fields__}
            return decode_object(cls, known, key)
    if "op" in obj:
        return decode_object(Request, {"args": {}, **obj}, "request")
    if "event" in obj:
        return decode_object(Event, {"data": {}, **obj}, "event")
    if "cancel" in obj:
        return Cancel(decode_object(Cancel, {"id": obj.pop("cancel"), **obj}, "cancel").id)
    if "id" in obj and ("ok" in obj or "error" in obj):
        return decode_object(Response, obj, "response")
    raise ProtocolError("bad_message", f"unknown message kind with keys {sorted(obj)[:8]}")
