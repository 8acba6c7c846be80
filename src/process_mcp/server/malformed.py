"""The answer to a message that is not valid JSON-RPC 2.0: every request with an id gets one.

A client whose request is dropped without an answer waits for ever, so JSON-RPC's own
rule applies (both transports): unparseable JSON is ``-32700 Parse error``, parseable
JSON that is not a JSON-RPC 2.0 message is ``-32600 Invalid Request``. The reply carries
the request's id whenever one can be read, even from truncated or too deeply nested JSON
(a top-level ``"id"`` found before the damage), else ``null`` as the spec says. A broken
*response* (no ``method``, a ``result`` or ``error``) is never answered: answering
answers is how two peers end up in a loop.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

SCAN_LIMIT = 64 * 1024  # where to look for a top-level "id" in text that does not parse
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]')  # linear: no nested ambiguity
_DECODER = json.JSONDecoder()
_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def reply_for(exc: Exception) -> JSONRPCError | None:
    """The error reply to the message whose validation raised ``exc``; None when it must
    go unanswered (a broken response) or ``exc`` is not a validation failure."""
    if not isinstance(exc, ValidationError):
        return None
    errors = exc.errors(include_url=False)
    parse = next((e for e in errors if e["type"] == "json_invalid"), None)
    if parse is not None:
        detail = str(parse.get("ctx", {}).get("error") or parse["msg"])
        if "recursion limit" in detail:
            detail += " (JSON nested too deeply)"
        return _error(recover_id(parse.get("input")), PARSE_ERROR, f"Parse error: {detail}")
    message = _top_level(errors)
    is_response = isinstance(message, dict) and ("result" in message or "error" in message)
    if is_response and "method" not in message:
        return None
    return _error(_valid_id(message), INVALID_REQUEST, f"Invalid Request: {_problem(message)}")


def _error(request_id: Any, code: int, message: str) -> JSONRPCError:
    return JSONRPCError(
        jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message[:300])
    )


def _top_level(errors: list[Any]) -> Any:
    """The parsed message, as pydantic saw it: the input of an error about the whole
    value (``model_type``) or about a missing field (the input is the enclosing object)."""
    for error in errors:
        if len(error["loc"]) == 1:
            return error.get("input")
    for error in errors:
        if error["type"] == "missing" and len(error["loc"]) == 2:
            return error.get("input")
    return None


def _valid_id(message: Any) -> str | int | None:
    if not isinstance(message, dict):
        return None
    value = message.get("id")
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


def _problem(message: Any) -> str:
    """What is wrong with a parsed message, in the client's terms."""
    if not isinstance(message, dict):
        kind = _TYPES.get(type(message), "a number" if message is not None else "null")
        return f"a JSON-RPC message must be an object, got {kind}"
    if message.get("jsonrpc") != "2.0":
        return f'"jsonrpc" must be "2.0", got {json.dumps(message.get("jsonrpc"))}'
    if "method" not in message:
        return 'missing "method"'
    if not isinstance(message["method"], str):
        return '"method" must be a string'
    if "id" in message and _valid_id(message) is None:
        return '"id" must be a string or an integer'
    if "params" in message and not isinstance(message["params"], dict):
        return '"params" must be an object'
    return "not a JSON-RPC 2.0 request, notification or response"


def recover_id(text: Any) -> str | int | None:
    """The top-level ``"id"`` of (possibly broken) JSON text, if it appears in the first
    ``SCAN_LIMIT`` characters before the text breaks; else None. Never raises."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text[:SCAN_LIMIT]).decode("utf-8", "replace")
    if not isinstance(text, str):
        return None
    text = text[:SCAN_LIMIT]
    depth, previous = 0, ""
    for token in _TOKEN.finditer(text):
        kind = token.group()
        if kind in ("{", "["):
            depth += 1
        elif kind in ("}", "]"):
            depth -= 1
        elif kind == ":" and depth == 1 and previous == '"id"':
            start = len(text) - len(text[token.end() :].lstrip())
            try:
                value, _ = _DECODER.raw_decode(text, start)
            except ValueError:
                return None
            return _valid_id({"id": value})
        previous = kind
    return None
