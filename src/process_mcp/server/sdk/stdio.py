"""Serving MCP on stdin/stdout (part of :mod:`process_mcp.server.sdk`: SDK workarounds).

The SDK's stdio writer calls ``model_dump_json`` on the event loop and its reader hands a
line that is not JSON-RPC to the dispatcher, which drops it: :func:`run_stdio` builds a
large answer's JSON in a worker thread and answers malformed lines itself.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from process_mcp.server import malformed

if TYPE_CHECKING:
    from process_mcp.server.sdk import Server


async def run_stdio(server: Server, stdin: Any = None, stdout: Any = None) -> None:
    """Serve ``server`` on stdin/stdout until stdin closes, answering malformed lines.

    Messages pass through :func:`_relay`, so that a large answer is serialised off the
    event loop. ``stdin``/``stdout``: async text files to serve instead of the process's
    own (the tests' in-process server speaks the same lines over memory)."""
    options = server.create_initialization_options()
    async with stdio_server(stdin, stdout) as (read_stream, write_stream):
        to_relay, from_server = anyio.create_memory_object_stream[SessionMessage](0)
        answering = _AnsweringReadStream(read_stream, to_relay)
        async with anyio.create_task_group() as group:
            group.start_soon(_relay, from_server, write_stream)
            try:
                await server.run(answering, to_relay, options)  # type: ignore[arg-type]
            finally:
                to_relay.close()


LARGE_ANSWER_CHARS = 64 * 1024  # answers with more text than this are serialised in a thread


class _Serialized:
    """Stands in for a message whose JSON was built in a worker thread: the SDK's stdio
    writer only calls ``model_dump_json`` on what it is given (mcp 2.3)."""

    __slots__ = ("_json",)

    def __init__(self, json: str) -> None:
        self._json = json

    def model_dump_json(self, **_: Any) -> str:
        return self._json


def _text_chars(message: Any) -> int:
    """Characters of text in an answer (tool content, resource contents): a cheap measure
    of how long its JSON takes to build."""
    result = getattr(message, "result", None)
    if not isinstance(result, dict):
        return 0
    total = 0
    for key in ("content", "contents"):
        for item in result.get(key) or ():
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                total += len(item["text"])
    return total


async def _relay(source: Any, sink: Any) -> None:
    """Forward the server's messages to the stdio writer; an answer with more than
    ``LARGE_ANSWER_CHARS`` of text is serialised in a worker thread first (a 1 MiB log
    answer of binary output takes tens of milliseconds to turn into JSON), and messages
    behind it go ahead meanwhile, so ``ping`` is answered while it is built. Only whole
    answers overtake one another (JSON-RPC matches answers by id); the order of everything
    else is kept."""
    async with sink, source, anyio.create_task_group() as group:
        async for item in source:
            if isinstance(item, SessionMessage) and _text_chars(item.message) > LARGE_ANSWER_CHARS:
                group.start_soon(_send_serialized, item, sink)
            else:
                await sink.send(item)


async def _send_serialized(item: SessionMessage, sink: Any) -> None:
    json_text = await anyio.to_thread.run_sync(_to_json, item.message)
    await sink.send(SessionMessage(_Serialized(json_text)))  # type: ignore[arg-type]


def _to_json(message: Any) -> str:
    """The message as the SDK would write it, built with :func:`dumps_in_pieces`: pydantic
    encodes text that is not ASCII to UTF-8 and decodes it back, several times slower, in
    one call that holds the GIL (and so the event loop) throughout."""
    return dumps_in_pieces(message.model_dump(by_alias=True, exclude_unset=True, mode="json"))


PIECE_ITEMS = 128  # list items encoded by one json.dumps call in dumps_in_pieces


def dumps_in_pieces(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, built item by item
    for long lists: no single call holds the GIL for long, so the event loop keeps
    answering while a big answer is built in a worker thread. Raises as ``json.dumps``."""
    if isinstance(value, dict):
        items = ",".join(
            f"{json.dumps(key)}:{dumps_in_pieces(item)}" for key, item in value.items()
        )
        return "{" + items + "}"
    if isinstance(value, list) and len(value) > PIECE_ITEMS:
        pieces = (
            json.dumps(value[i : i + PIECE_ITEMS], ensure_ascii=False, separators=(",", ":"))
            for i in range(0, len(value), PIECE_ITEMS)
        )  # one C call per piece (not per item): few calls, none long
        return "[" + ",".join(piece[1:-1] for piece in pieces) + "]"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _AnsweringReadStream:
    """The stdio read stream, minus lines that are not JSON-RPC: each of those is
    answered on ``write_stream`` (:func:`malformed.reply_for`) instead of being handed
    to the dispatcher, which would drop it and leave the client waiting."""

    def __init__(self, inner: Any, write_stream: Any) -> None:
        self._inner = inner
        self._write = write_stream

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        while True:
            item = await self._inner.receive()
            if not isinstance(item, Exception):
                return item
            reply = malformed.reply_for(item)
            if reply is None:
                return item
            try:
                await self._write.send(SessionMessage(reply))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return item

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _AnsweringReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _AnsweringReadStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
