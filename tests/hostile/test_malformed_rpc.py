"""Malformed JSON-RPC: every request with an id gets an answer, -32700 or -32600,
with its id when one can be read; a call before ``initialize`` is told "not initialized";
the server answers ``ping`` within 100 ms after each."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from support import HttpServer, HttpSession, RawServer, best_ms

pytestmark = pytest.mark.anyio

PARSE_ERROR, INVALID_REQUEST = -32700, -32600
DEEP = b"[" * 300 + b"]" * 300

# line, the id the answer must carry, the code
CASES = [
    pytest.param(b'{"jsonrpc":"2.0","id":3,"method":"ping"', 3, PARSE_ERROR, id="truncated"),
    pytest.param(b'{"jsonrpc":"1.0","id":4,"method":"ping"}', 4, INVALID_REQUEST, id="jsonrpc-1.0"),
    pytest.param(
        b'{"jsonrpc":"2.0","id":"deep","method":"tools/list","params":{"a":' + DEEP + b"}}",
        "deep",
        PARSE_ERROR,
        id="nested-300",
    ),
    pytest.param(b'{"jsonrpc":"2.0","id":6}', 6, INVALID_REQUEST, id="no-method"),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":5}', 7, INVALID_REQUEST, id="method-number"),
    pytest.param(
        b'{"jsonrpc":"2.0","id":8,"method":"tools/list","params":[1]}',
        8,
        INVALID_REQUEST,
        id="params-array",
    ),
    pytest.param(b"[]", None, INVALID_REQUEST, id="array"),
    pytest.param(b"\xff\xfe{", None, PARSE_ERROR, id="binary"),
]


def ping_ms(server: RawServer) -> float:
    return best_ms(lambda: server.request("ping"))


def own_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A module-wide server's own state and supervisor folders: it is started before any
    test sets them (and would otherwise meet the user's supervisor, which idles for 10
    minutes), and its supervisor idles out as a test's does."""
    return {
        "PROCESS_MCP_STATE_DIR": str(tmp_path_factory.mktemp("state")),
        "PROCESS_MCP_RUNTIME_DIR": str(tmp_path_factory.mktemp("run")),
        "PROCESS_MCP_SUPERVISOR_IDLE": "0.5",
    }


@pytest.fixture(scope="module")
def stdio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawServer]:
    """One server for every garbage line (none changes its state): starting one per case
    would cost seconds each."""
    server = RawServer(**own_folders(tmp_path_factory))
    try:
        server.initialize()
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def http_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpSession]:
    server = HttpServer("tok-malformed", **own_folders(tmp_path_factory))
    session = HttpSession(server.url, server.token)
    try:
        yield session
    finally:
        session.close()
        server.close()


@pytest.mark.parametrize(("line", "request_id", "code"), CASES)
def test_stdio_answers_every_malformed_request(
    stdio_server: RawServer, line: bytes, request_id: object, code: int
) -> None:
    stdio_server.send_line(line)
    reply = stdio_server.read_message(timeout=10)
    assert reply["id"] == request_id, reply
    assert reply["error"]["code"] == code, reply
    assert len(reply["error"]["message"]) < 300
    assert ping_ms(stdio_server) < 100


def test_stdio_does_not_answer_a_broken_response(stdio_server: RawServer) -> None:
    """Answering answers is how two peers loop: a malformed response is dropped."""
    stdio_server.send_line(b'{"jsonrpc":"1.0","id":41,"result":{}}')
    stdio_server.send_line(b'{"jsonrpc":"2.0","id":"after","method":"ping"}')
    assert stdio_server.read_message() == {"jsonrpc": "2.0", "id": "after", "result": {}}


def test_stdio_call_before_initialize_is_told_not_initialized() -> None:
    server = RawServer()
    try:
        reply = server.request("tools/list")
        assert "not initialized" in reply["error"]["message"], reply
        assert "initialize" in reply["error"]["message"]
        reply = server.request("tools/call", {"name": "list", "arguments": {}})
        assert "not initialized" in reply["error"]["message"], reply
        assert server.request("nope/nothing")["error"]["code"] == -32601  # still unknown
        assert ping_ms(server) < 100  # ping is allowed before initialize
        server.initialize()
        assert "result" in server.request("tools/list")
    finally:
        server.kill()


@pytest.mark.parametrize(("line", "request_id", "code"), CASES)
def test_http_answers_every_malformed_request(
    http_session: HttpSession, line: bytes, request_id: object, code: int
) -> None:
    response = http_session.post_raw(line)
    assert response.status_code == 400
    reply = response.json()
    assert reply["id"] == request_id, reply
    assert reply["error"]["code"] == code, reply
    assert best_ms(lambda: http_session.request("ping")) < 100


def test_http_valid_bodies_still_reach_the_sdk(http_session: HttpSession) -> None:
    """The guard answers only what is not JSON-RPC: an unknown session is still 404."""
    stale = http_session.post_raw(
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode(),
        **{"Mcp-Session-Id": "0" * 32},
    )
    assert stale.status_code == 404
    assert http_session.request("ping")["result"] == {}


def test_http_call_before_initialize_is_told_not_initialized(http_session: HttpSession) -> None:
    stranger = HttpSession(http_session.url, http_session.token, initialize=False)
    try:
        response = stranger.post({"jsonrpc": "2.0", "id": "early", "method": "tools/list"})
        assert response.status_code == 400
        reply = response.json()
        assert reply["id"] == "early"
        assert "not initialized" in reply["error"]["message"]
        assert "initialize" in reply["error"]["message"]
    finally:
        stranger.close()
