"""``--transport http``: one long-lived server, several clients, a bearer token in front."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import anyio
import pytest
from support import HttpServer, call_over_http

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("frontend_mode")]

SLEEP = {"command": "sleep", "args": ["300"]}


def post_status(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def test_two_clients_share_one_server_and_the_token_is_required() -> None:
    server = HttpServer("tok-123")
    try:
        json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        assert post_status(server.url, json_headers) == 401
        assert post_status(server.url, {**json_headers, "Authorization": "Bearer wrong"}) == 401
        started = await call_over_http(
            server.url, server.token, "start", {"command": "sleep", "args": ["300"]}
        )
        listed = await call_over_http(server.url, server.token, "list", {})
        assert [p["id"] for p in listed["processes"]] == [started["id"]]
    finally:
        server.close()  # SIGTERM: the sleep must be gone too (leak check)


async def test_each_http_session_owns_its_processes_until_it_ends() -> None:
    """One supervisor session per MCP session: a session's processes stop when it ends
    (the client closed it); kept ones live on, and every session sees them."""
    server = HttpServer("tok-456")
    try:
        gone = await call_over_http(server.url, server.token, "start", SLEEP)
        kept = await call_over_http(server.url, server.token, "start", {**SLEEP, "keep": True})
        deadline = time.monotonic() + 10
        while True:  # the session ended with the client: its process is being stopped
            listed = await call_over_http(server.url, server.token, "list", {})
            statuses = {p["id"]: (p["status"], p["owner"]) for p in listed["processes"]}
            if statuses[gone["id"]][0] == "stopped" or time.monotonic() > deadline:
                break
            await anyio.sleep(0.1)
        assert statuses == {gone["id"]: ("stopped", "other"), kept["id"]: ("running", "kept")}
        stopped = await call_over_http(server.url, server.token, "stop", {"id": kept["id"]})
        assert stopped["status"] == "stopped"
    finally:
        server.close()
